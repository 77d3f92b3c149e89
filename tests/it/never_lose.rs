//! A keeper never loses what Yandex issued: a client that closes the
//! connection (HTTP/1.1) or resets the stream (HTTP/2) during a slow
//! exchange or a slow Direct check; `status` checking an old token while a
//! new one lands; two `refresh --all` at once; a refresh that cannot
//! write; a broken account file; and `revoke`, told as it happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::fake_oauth::{DirectMode, Mode};
use crate::support::process::{BIN, run};
use crate::support::server::flags_for;
use crate::support::{World, callback_target, complete_flow};

/// The longest any awaited outcome may take.
const WAIT: Duration = Duration::from_secs(20);
/// The fake's login: the account every flow here logs in as.
const USER: &str = "test-user";

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Waits, checking the file every 20 ms for at most [`WAIT`], until `path`
/// holds a document that `done` accepts.
async fn until_file(path: &Path, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(doc) = read_json(path).filter(|doc| done(doc)) {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held what was expected: {:?}",
            path.display(),
            read_json(path)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn account_file(world: &World, login: &str) -> PathBuf {
    world.server.dir.path().join(format!("tokens/accounts/{login}.json"))
}

fn last_issued(world: &World, login: &str) -> String {
    world.fake.state.last_issued.lock().unwrap().get(login).cloned().expect("a token was issued")
}

/// Logs in as `login` through the server; returns the access token.
async fn login_as(world: &World, login: &str) -> String {
    *world.fake.state.login.lock().unwrap() = login.to_owned();
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// Runs the binary with the server's flags (token directory, fake Yandex).
async fn cli(world: &World, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
    args.extend(flags_for(&world.pki, &world.fake.url(), &world.fake.state.secret, world.server.dir.path()));
    tokio::task::spawn_blocking(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// The token endpoint takes its time.
    Exchange,
    /// The Direct API takes its time.
    Direct,
}

/// Sends the callback, waits until the slow phase has begun at the fake,
/// then leaves: closes the connection (HTTP/1.1) or resets the stream
/// (HTTP/2). The token must land on disk anyway, and its verdict after it.
async fn leave_during(phase: Phase, h2: bool) {
    let world = World::new().await;
    let mut client = world.client();
    let target = callback_target(&mut client, &world.server).await;
    match phase {
        Phase::Exchange => world.fake.set_mode(Mode::Slow(Duration::from_millis(1500))),
        Phase::Direct => {
            *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Slow(Duration::from_secs(2))
        }
    }
    let cookie: Vec<String> = client.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let cookie = cookie.join("; ");
    let state = world.fake.state.clone();
    let began = async move {
        match phase {
            Phase::Exchange => state.token_request_seen.notified().await,
            Phase::Direct => state.direct_request_seen.notified().await,
        }
    };
    let port = world.server.addr.port();
    if h2 {
        let tls = world.tls(&[b"h2"]).await;
        let (send, connection) = h2::client::handshake(tls).await.unwrap();
        let driver = tokio::spawn(connection);
        let mut ready = send.ready().await.unwrap();
        let request = hyper::Request::get(format!("https://localhost:{port}{target}"))
            .header("cookie", cookie)
            .body(())
            .unwrap();
        let (_response, mut stream) = ready.send_request(request, true).unwrap();
        tokio::time::timeout(WAIT, began).await.expect("the slow phase never began");
        stream.send_reset(h2::Reason::CANCEL);
        // The connection stays; only the stream is gone.
        let token = until_file(&account_file(&world, USER), |doc| doc["access_token"].is_string()).await;
        driver.abort();
        assert_eq!(token["access_token"], last_issued(&world, USER));
    } else {
        let mut tls = world.tls(&[b"http/1.1"]).await;
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\nCookie: {cookie}\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        tokio::time::timeout(WAIT, began).await.expect("the slow phase never began");
        drop(tls);
    }
    let stored = until_file(&account_file(&world, USER), |doc| doc["direct"]["status"] == "ok").await;
    let issued = last_issued(&world, USER);
    assert_eq!(stored["access_token"], issued.as_str());
    assert!(stored["refresh_token"].is_string());
    let token_json = read_json(&world.server.dir.path().join("tokens/token.json")).unwrap();
    assert_eq!(token_json["access_token"], issued.as_str());
    assert_eq!(world.fake.token_calls(), 1);
}

#[tokio::test]
async fn a_closed_connection_during_a_slow_exchange_loses_nothing() {
    leave_during(Phase::Exchange, false).await;
}

#[tokio::test]
async fn a_reset_stream_during_a_slow_exchange_loses_nothing() {
    leave_during(Phase::Exchange, true).await;
}

#[tokio::test]
async fn a_closed_connection_during_a_slow_direct_check_loses_nothing() {
    leave_during(Phase::Direct, false).await;
}

#[tokio::test]
async fn a_reset_stream_during_a_slow_direct_check_loses_nothing() {
    leave_during(Phase::Direct, true).await;
}

/// A Direct API that does not answer keeps nobody waiting its whole
/// timeout: the answer comes once the token is stored and a few seconds
/// have passed, says the check still runs, and the verdict lands later.
#[tokio::test]
async fn a_slow_direct_api_does_not_hold_the_answer() {
    let world = World::new().await;
    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Slow(Duration::from_secs(6));
    let started = Instant::now();
    let reply = complete_flow(&mut world.client(), &world.server).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(waited < Duration::from_secs(5), "the answer waited {waited:?} for the Direct API");
    assert_eq!(reply.json()["direct"]["status"], "checking", "{}", reply.body);
    let stored = read_json(&account_file(&world, USER)).unwrap();
    assert_eq!(stored["access_token"], reply.json()["access_token"]);
    let checked = until_file(&account_file(&world, USER), |doc| doc["direct"]["status"] == "ok").await;
    assert_eq!(checked["access_token"], reply.json()["access_token"]);
}

/// `status` loads a token and waits on a slow Direct API; meanwhile the
/// same account logs in again. The new token stays on disk, with its own
/// verdict; the old token's verdict goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_a_slow_direct_api_keeps_a_login_that_lands_meanwhile() {
    let world = World::new().await;
    let first = login_as(&world, USER).await;
    // The first login's check used the fake's one stored signal.
    world.fake.state.direct_request_seen.notified().await;
    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Slow(Duration::from_secs(3));
    let status = {
        let mut args = vec!["status".to_owned(), "--login".into(), USER.into()];
        args.extend(flags_for(
            &world.pki,
            &world.fake.url(),
            &world.fake.state.secret,
            world.server.dir.path(),
        ));
        tokio::task::spawn_blocking(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    tokio::time::timeout(WAIT, world.fake.state.direct_request_seen.notified()).await.unwrap();
    let second = login_as(&world, USER).await;
    assert_ne!(first, second);
    let (code, stdout, stderr) = status.await.unwrap();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("replaced while it was checked"), "{stderr}");
    let stored = until_file(&account_file(&world, USER), |doc| doc["direct"]["status"] == "ok").await;
    assert_eq!(stored["access_token"], second.as_str());
    assert_eq!(
        read_json(&world.server.dir.path().join("tokens/token.json")).unwrap()["access_token"],
        second.as_str()
    );
}

/// Two `refresh --all` at once: one call to Yandex per account, no
/// refresh token spent twice, and the last token issued is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refreshes_at_once_make_one_call_per_account() {
    let world = World::new().await;
    for login in ["alice", "bob", "carol"] {
        login_as(&world, login).await;
    }
    let before = world.fake.token_calls();
    world.fake.set_mode(Mode::Slow(Duration::from_millis(400)));
    let (one, two) = tokio::join!(cli(&world, &["refresh", "--all"]), cli(&world, &["refresh", "--all"]));
    for (code, stdout, stderr) in [&one, &two] {
        assert_eq!(*code, 0, "{stdout}{stderr}");
    }
    assert_eq!(world.fake.state.spent_refreshes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(world.fake.token_calls() - before, 3, "{}\n{}", one.2, two.2);
    for login in ["alice", "bob", "carol"] {
        assert_eq!(
            read_json(&account_file(&world, login)).unwrap()["access_token"],
            last_issued(&world, login)
        );
    }
}

/// A refresh whose new token cannot be written (here: a file size limit
/// of 0, which fails every write as a full disk does, even for root)
/// prints the new document on stdout and says so; saved by hand, it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_cannot_write_hands_the_new_token_back() {
    let world = World::new().await;
    login_as(&world, "alice").await;
    let before = read_json(&account_file(&world, "alice")).unwrap();
    let mut args =
        vec!["-c".to_owned(), "trap '' XFSZ; ulimit -f 0; exec \"$0\" \"$@\"".to_owned(), BIN.to_owned()];
    args.extend(["refresh".to_owned(), "--login".to_owned(), "alice".to_owned()]);
    args.extend(flags_for(&world.pki, &world.fake.url(), &world.fake.state.secret, world.server.dir.path()));
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("sh").args(&args).output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("printed on stdout") && stderr.contains("alice.json"), "{stderr}");
    assert!(!stderr.contains("intact"), "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("the new document on stdout");
    assert_eq!(printed["access_token"], last_issued(&world, "alice"));
    assert_ne!(printed["refresh_token"], before["refresh_token"]);
    assert_eq!(read_json(&account_file(&world, "alice")).unwrap(), before, "the old file is untouched");
    // The operator saves it; the next refresh spends the new refresh token.
    std::fs::write(account_file(&world, "alice"), stdout.as_bytes()).unwrap();
    let (code, _, stderr) = cli(&world, &["refresh", "--login", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(world.fake.state.spent_refreshes.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// One malformed account file is named and skipped; the rest are listed,
/// checked and refreshed, and status and refresh exit 1 for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_account_file_spoils_nothing_else() {
    let world = World::new().await;
    let alice = login_as(&world, "alice").await;
    login_as(&world, "bob").await;
    std::fs::write(account_file(&world, "broken"), b"{\"access_token\": ").unwrap();

    let (code, stdout, stderr) = cli(&world, &["list"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stderr.contains("broken.json"), "{stderr}");

    let (code, stdout, stderr) = cli(&world, &["status", "--all"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("alice\t") && stdout.contains("bob\t"), "{stdout}");
    assert!(stderr.contains("broken.json"), "{stderr}");

    let (code, _, stderr) = cli(&world, &["refresh", "--all"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("broken.json") && stderr.contains("alice: refreshed"), "{stderr}");
    assert_ne!(read_json(&account_file(&world, "alice")).unwrap()["access_token"], alice.as_str());
}

/// `revoke`: a regular token is not revocable by the app, so its files go
/// and the output says where its owner revokes it; a device token is
/// revoked at Yandex too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_says_what_happened_at_yandex_and_here() {
    let world = World::new().await;
    login_as(&world, "alice").await;
    let (code, stdout, stderr) = cli(&world, &["revoke", "--login", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("not revoked at Yandex") && stdout.contains("id.yandex.ru"), "{stdout}");
    assert!(stdout.contains("token.json"), "token.json held alice: {stdout}");
    assert!(!account_file(&world, "alice").exists());
    assert!(!world.server.dir.path().join("tokens/token.json").exists());
    assert!(world.fake.state.revoked.lock().unwrap().is_empty());
    let (code, _, stderr) = cli(&world, &["revoke", "--login", "alice"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no token of alice"), "{stderr}");
    let (code, _, stderr) = cli(&world, &["revoke"]).await;
    assert_eq!(code, 2, "{stderr}");

    let world = World::with_flags(&["--device-id", "box-0001"], |_| {}).await;
    let token = login_as(&world, "bob").await;
    assert_eq!(read_json(&account_file(&world, "bob")).unwrap()["device_id"], "box-0001");
    let (code, stdout, stderr) = cli(&world, &["revoke", "--login", "bob"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("bob: revoked at Yandex"), "{stdout}");
    assert_eq!(*world.fake.state.revoked.lock().unwrap(), vec![token]);
    assert!(!account_file(&world, "bob").exists());
}

fn random_below(limit: usize) -> usize {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    (u64::from_le_bytes(bytes) % limit as u64) as usize
}

/// The stress run: logins through the server, `refresh` and `status` as
/// separate processes, interleaved by four workers for a few hundred
/// operations against a fake Yandex whose refresh tokens work once. At the
/// end each account's file holds the last token Yandex issued for it,
/// every file parses, and no refresh spent a refresh token twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_logins_refreshes_and_status_runs_interleaved() {
    const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
    const WORKERS: usize = 4;
    const EACH: usize = 60;
    // Logins here come faster than --exchange-rate lets strangers make them.
    let world =
        World::with_flags(&["--exchange-rate", "100000", "--exchange-rate-per-client", "100000"], |_| {})
            .await;
    for login in ACCOUNTS {
        login_as(&world, login).await;
    }
    let started = Instant::now();
    let counts: [std::sync::atomic::AtomicUsize; 3] = Default::default();
    let worker = |_: usize| async {
        for _ in 0..EACH {
            let account = ACCOUNTS[random_below(ACCOUNTS.len())];
            match random_below(4) {
                0 => {
                    login_as(&world, account).await;
                    counts[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                kind @ (1 | 2) => {
                    let args: &[&str] =
                        if kind == 1 { &["refresh", "--login", account] } else { &["refresh", "--all"] };
                    let (code, stdout, stderr) = cli(&world, args).await;
                    assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
                    assert!(!stderr.contains("invalid_grant"), "{stderr}");
                    counts[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {
                    let (code, stdout, stderr) = cli(&world, &["status", "--all"]).await;
                    assert_eq!(code, 0, "{stdout}{stderr}");
                    counts[2].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    };
    tokio::join!(worker(0), worker(1), worker(2), worker(3));
    let took = started.elapsed();
    assert_eq!(world.fake.state.spent_refreshes.load(std::sync::atomic::Ordering::SeqCst), 0);
    for login in ACCOUNTS {
        let stored = read_json(&account_file(&world, login)).expect("every account file parses");
        assert_eq!(stored["access_token"], last_issued(&world, login), "{login}");
    }
    let token_json =
        read_json(&world.server.dir.path().join("tokens/token.json")).expect("token.json parses");
    assert!(ACCOUNTS.iter().any(|login| token_json["access_token"] == last_issued(&world, login)));
    let [logins, refreshes, statuses] = counts.map(|count| count.into_inner());
    eprintln!(
        "stress: {} operations ({logins} logins, {refreshes} refreshes, {statuses} status runs) by {WORKERS} \
         workers in {took:?}; {} tokens issued, 0 refresh tokens spent twice",
        WORKERS * EACH,
        world.fake.state.issued_tokens.lock().unwrap().len()
    );
}
