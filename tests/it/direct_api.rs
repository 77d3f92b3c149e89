//! Ready for the Direct API (issue 18): every new token is checked with a
//! fake Direct `clients.get` over TLS, the outcome is stored with the
//! account and said in the answer, `status` re-checks with exit codes a
//! timer can alert on, `show --env` hands over in Direct's terms, and
//! `/metrics` counts tokens by Direct status.

use std::time::Duration;

use serde_json::Value;

use crate::support::fake_oauth::DirectMode;
use crate::support::process::run;
use crate::support::server::flags_for;
use crate::support::{World, callback_target, complete_flow};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The command-line flags that reach this world's fake Yandex and token dir.
fn cli(world: &World, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    all.extend(flags_for(&world.pki, &world.fake.url(), &world.fake.state.secret, world.server.dir.path()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run(&all)
}

async fn cli_async(world: &World, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    all.extend(flags_for(&world.pki, &world.fake.url(), &world.fake.state.secret, world.server.dir.path()));
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&all)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_ready_token_is_stored_with_directs_client_login_not_the_e_mail() {
    let world = World::new().await;
    *world.fake.state.login.lock().unwrap() = "shop.owner@yandex.ru".to_owned();
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["login"], "shop.owner@yandex.ru");
    assert_eq!(answer["direct"]["status"], "ok");
    assert_eq!(answer["direct"]["client_login"], "shop.owner");
    let stored = read_json(&world.server.dir.path().join("tokens/accounts/shop.owner@yandex.ru.json"));
    assert_eq!(stored["direct"]["client_login"], "shop.owner");
    assert!(stored["direct"]["checked_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(world.fake.state.direct_calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    let (code, out, stderr) = cli_async(&world, &["show", "--env", "--login", "shop.owner@yandex.ru"]).await;
    assert_eq!(code, 0, "{stderr}");
    let token = world.fake.state.issued_tokens.lock().unwrap()[0].clone();
    assert_eq!(out, format!("YANDEX_DIRECT_TOKEN={token}\nYANDEX_DIRECT_LOGIN=shop.owner\n"));
}

#[tokio::test]
async fn directs_refusals_are_stored_and_told_with_their_fix_and_the_token_is_kept() {
    for (code, fix) in [(53, "log in again"), (58, "API settings"), (513, "no Direct client")] {
        let world = World::new().await;
        *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Error(code);
        let reply = complete_flow(&mut world.client(), &world.server).await;
        assert_eq!(reply.status, 200, "the token is stored whatever Direct says: {}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["direct"]["status"], format!("error {code}"));
        assert_eq!(answer["direct"]["error_code"], code);
        assert!(answer["direct"]["fix"].as_str().unwrap().contains(fix), "{answer}");
        assert!(world.server.token_file().exists());
    }
}

#[tokio::test]
async fn a_browser_is_told_whether_direct_accepts_the_token() {
    let world = World::new().await;
    let mut client = world.client();
    let target = callback_target(&mut client, &world.server).await;
    let page = client
        .send_with(world.server.addr, hyper::Method::GET, &target, &[("accept", "text/html")], String::new())
        .await;
    assert!(page.body.contains("ready for the Direct API as client login test-user"), "{}", page.body);
}

#[tokio::test]
async fn a_failing_direct_api_never_fails_the_store() {
    for mode in [DirectMode::Status500, DirectMode::Garbage, DirectMode::Slow(Duration::from_secs(3))] {
        let world = World::with(|config| config.limits.upstream_timeout = Duration::from_secs(1)).await;
        *world.fake.state.direct_mode.lock().unwrap() = mode.clone();
        let reply = complete_flow(&mut world.client(), &world.server).await;
        assert_eq!(reply.status, 200, "{mode:?}: {}", reply.body);
        assert_eq!(reply.json()["direct"]["status"], "unreachable", "{mode:?}");
        assert!(world.server.token_file().exists());
    }
}

#[tokio::test]
async fn direct_check_false_calls_nothing() {
    let world = World::with(|config| config.direct_url = None).await;
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 200);
    assert!(reply.json().get("direct").is_none());
    assert_eq!(world.fake.state.direct_calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (code, _, stderr) = cli(&world, &["status", "--direct-check=false"]);
    assert_eq!(code, 78, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_1_for_each_failure_and_0_when_all_are_fine() {
    let world = World::new().await;
    for login in ["alice", "bob"] {
        *world.fake.state.login.lock().unwrap() = login.to_owned();
        assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    }
    let (code, out, stderr) = cli_async(&world, &["status", "--all"]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("alice\tclient alice\t") && lines[0].ends_with("direct ok"), "{out}");
    assert!(!stderr.contains("warning"), "{stderr}");

    for (mode, status) in [
        (DirectMode::Error(53), "error 53"),
        (DirectMode::Error(58), "error 58"),
        (DirectMode::Error(513), "error 513"),
        (DirectMode::Status500, "unreachable"),
        (DirectMode::Garbage, "unreachable"),
    ] {
        *world.fake.state.direct_mode.lock().unwrap() = mode.clone();
        let (code, out, stderr) = cli_async(&world, &["status", "--login", "bob", "--json"]).await;
        assert_eq!(code, 1, "{mode:?}: {stderr}");
        let rows: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rows[0]["direct"], status, "{out}");
        assert_eq!(rows[0]["usable"], false);
        assert!(stderr.contains("warning: bob:"), "a warning naming the login: {stderr}");
        // The outcome is stored with the account, and /metrics... and list say so.
        let stored = read_json(&world.server.dir.path().join("tokens/accounts/bob.json"));
        assert_eq!(stored["direct"]["status"], status);
    }
    let (code, out, _) = cli_async(&world, &["list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|line| line.starts_with("bob\tclient -\t") && line.ends_with("direct unreachable")),
        "{out}"
    );
    assert!(
        out.lines().any(|line| line.starts_with("alice\tclient alice\t") && line.ends_with("direct ok")),
        "{out}"
    );

    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Ok;
    let (code, _, stderr) = cli_async(&world, &["status"]).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_about_tokens_expiring_within_30_days() {
    let world = World::new().await;
    world.fake.state.expires_in.store(10 * 86_400, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    let (code, out, stderr) = cli_async(&world, &["status"]).await;
    assert_eq!(code, 0, "usable, if soon expiring: {stderr}");
    assert!(out.contains("\t9 days left\t") || out.contains("\t10 days left\t"), "{out}");
    assert!(stderr.contains("warning: test-user: the token expires in"), "{stderr}");
}

/// The trust anchors are read when the server starts, not inside the first
/// exchange, where the blocking read would stall every connection.
#[tokio::test]
async fn the_trust_anchors_are_read_at_start() {
    let world = World::new().await;
    assert!(world.server.app.keeper.oauth.tls().is_built());
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn metrics_count_stored_tokens_by_direct_status_without_logins() {
    let world = World::with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    *world.fake.state.login.lock().unwrap() = "alice".to_owned();
    assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    *world.fake.state.login.lock().unwrap() = "bob".to_owned();
    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Error(58);
    assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    let metrics = world.server.metrics_addr.unwrap();
    let text = crate::support::client::plain(metrics, hyper::Method::GET, "/metrics").await.body;
    assert!(text.contains("yandex_token_direct_tokens{status=\"ok\"} 1"), "{text}");
    assert!(text.contains("yandex_token_direct_tokens{status=\"error_58\"} 1"), "{text}");
    assert!(!text.contains("alice") && !text.contains("bob"), "{text}");
    // A scrape renders what the logins counted; it reads no token file.
    std::fs::remove_dir_all(world.server.dir.path().join("tokens/accounts")).unwrap();
    let text = crate::support::client::plain(metrics, hyper::Method::GET, "/metrics").await.body;
    assert!(text.contains("yandex_token_direct_tokens{status=\"ok\"} 1"), "{text}");
}

/// Direct's codes read right: 52 is "retry later", never "log in again";
/// a token Direct refused (53) is still handed out by `show --env`, but
/// not silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directs_codes_read_right_and_show_env_says_a_refusal() {
    let world = World::new().await;
    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Error(52);
    assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    let (code, out, stderr) = cli_async(&world, &["status"]).await;
    assert_eq!(code, 1, "{out}{stderr}");
    assert!(out.contains("direct unreachable"), "{out}");
    assert!(stderr.contains("temporarily unavailable") && stderr.contains("later"), "{stderr}");
    assert!(!stderr.contains("log in again"), "{stderr}");

    *world.fake.state.direct_mode.lock().unwrap() = DirectMode::Error(53);
    let (code, _, _) = cli_async(&world, &["status"]).await;
    assert_eq!(code, 1);
    let (code, out, stderr) = cli_async(&world, &["show", "--env"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.starts_with("YANDEX_DIRECT_TOKEN="), "{out}");
    assert!(stderr.contains("refused this token") && stderr.contains("error 53"), "{stderr}");
    assert!(stderr.contains("log in again"), "{stderr}");
}
