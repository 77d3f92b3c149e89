//! `login` (the pasted code read from stdin) and `device` (the device
//! flow) as the real binary, against the fake Yandex over TLS, with no
//! server of ours running: every outcome, what is stored, and the exit
//! status a script sees.

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::fake_oauth::FakeOAuth;
use crate::support::pki::TestPki;
use crate::support::process::{BIN, finished, line};
use crate::support::server::flags_for;

struct Setup {
    pki: TestPki,
    fake: FakeOAuth,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let pki = TestPki::new();
        let fake = FakeOAuth::start(&pki).await;
        Setup { pki, fake, dir: tempfile::tempdir().unwrap() }
    }

    /// `yandex-token COMMAND` with flags pointing at the fake, stdin and
    /// stdout piped.
    /// `--wrong-secret PATH` in `extra` puts PATH in place of the right
    /// secret's file.
    fn spawn(&self, command: &str, extra: &[&str]) -> (Child, BufReader<ChildStdout>) {
        let mut flags = flags_for(&self.pki, &self.fake.url(), &self.fake.state.secret, self.dir.path());
        let mut extra = extra.to_vec();
        if let Some(at) = extra.iter().position(|flag| *flag == "--wrong-secret") {
            let wrong = extra.remove(at + 1);
            extra.remove(at);
            let secret = flags.iter().position(|flag| flag == "--client-secret-file").unwrap();
            flags[secret + 1] = wrong.to_owned();
        }
        let mut child = Command::new(BIN)
            .arg(command)
            .args(
                flags
                    .into_iter()
                    .filter(|flag| !(extra.contains(&"--allow-login") && flag == "--allow-any-login")),
            )
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        (child, stdout)
    }

    fn tokens(&self) -> std::path::PathBuf {
        self.dir.path().join("tokens")
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Plays the user at Yandex: opens the authorize URL, reads the code the
/// `verification_code` page shows.
async fn code_at_yandex(setup: &Setup, url: &str) -> String {
    let mut browser = crate::support::client::Client::new(&setup.pki.ca_der);
    let at_yandex = browser.get_url(url).await;
    assert_eq!(at_yandex.status, 302, "{}", at_yandex.body);
    let shown = browser.get_url(at_yandex.location()).await;
    shown.body.split("<b id=\"code\">").nth(1).unwrap().split('<').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_reads_the_pasted_code_from_stdin_and_stores_the_token() {
    let setup = Setup::new().await;
    let (mut child, stdout) = setup.spawn("login", &["--login-hint", "test-user", "--force-confirm"]);
    let (url, stdout) = line(stdout).await;
    assert!(url.starts_with(&format!("{}authorize?", setup.fake.url())), "{url}");
    assert_eq!(query_param(&url, "redirect_uri"), Some(format!("{}verification_code", setup.fake.url())));
    assert_eq!(query_param(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(&url, "login_hint").as_deref(), Some("test-user"));
    assert_eq!(query_param(&url, "force_confirm").as_deref(), Some("yes"));
    assert!(query_param(&url, "state").is_some());
    let code = code_at_yandex(&setup, &url).await;
    assert_eq!(code.len(), 16);
    // As a person pastes it: spaces around, then Enter.
    child.stdin.take().unwrap().write_all(format!("  {code} \n").as_bytes()).unwrap();
    let (status, rest, stderr) = finished(child, stdout).await;
    assert_eq!(status, 0, "{stderr}");
    let token = setup.fake.state.issued_tokens.lock().unwrap().last().cloned().unwrap();
    assert!(rest.contains("test-user") && rest.contains("accounts/test-user.json"), "{rest}");
    assert!(!rest.contains(&token) && !stderr.contains(&token), "the token is never printed");
    assert!(!stderr.contains(&code), "the code is never logged");
    for file in ["token.json", "accounts/test-user.json"] {
        let path = setup.tokens().join(file);
        let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(stored["access_token"], token.as_str());
        assert_eq!(stored["login"], "test-user");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_a_bad_code_exits_1_with_yandexs_description() {
    let setup = Setup::new().await;
    let (mut child, stdout) = setup.spawn("login", &[]);
    let (_url, stdout) = line(stdout).await;
    child.stdin.take().unwrap().write_all(b"0123456789abcdef\n").unwrap();
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("invalid_grant") && stderr.contains("Invalid code"), "{stderr}");
    assert!(!setup.tokens().join("token.json").exists());

    // Nothing on stdin at all.
    let (child, stdout) = setup.spawn("login", &[]);
    let (_url, stdout) = line(stdout).await;
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("no code"), "{stderr}");
    assert_eq!(setup.fake.token_calls(), 1, "an empty stdin calls nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_honours_the_allow_list() {
    let setup = Setup::new().await;
    let (mut child, stdout) = setup.spawn("login", &["--allow-login", "somebody-else"]);
    let (url, stdout) = line(stdout).await;
    let code = code_at_yandex(&setup, &url).await;
    child.stdin.take().unwrap().write_all(format!("{code}\n").as_bytes()).unwrap();
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("test-user") && stderr.contains("not revoked"), "{stderr}");
    assert!(!setup.tokens().join("token.json").exists());
    assert!(setup.fake.state.revoked.lock().unwrap().is_empty(), "Yandex revokes only device tokens");
}

/// Starts `device`, reads the two lines it prints: (URL, user code).
async fn start_device(setup: &Setup, extra: &[&str]) -> (Child, BufReader<ChildStdout>, String, String) {
    let (child, stdout) = setup.spawn("device", extra);
    let (open, stdout) = line(stdout).await;
    let (code, stdout) = line(stdout).await;
    let url = open.strip_prefix("open: ").unwrap_or_else(|| panic!("{open}")).to_owned();
    let code = code.strip_prefix("code: ").unwrap_or_else(|| panic!("{code}")).to_owned();
    (child, stdout, url, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn device_polls_until_allowed_then_stores_the_token() {
    let setup = Setup::new().await;
    let (child, stdout, url, user_code) =
        start_device(&setup, &["--device-id", "build-box-01", "--device-name", "CI runner"]).await;
    assert_eq!(url, "https://ya.ru/device", "the URL from the answer, as given");
    let request = setup.fake.state.device_requests.lock().unwrap()[0].clone();
    assert_eq!(request.get("device_id").map(String::as_str), Some("build-box-01"));
    assert_eq!(request.get("device_name").map(String::as_str), Some("CI runner"));
    assert!(!request.contains_key("client_secret"), "device/code takes no secret");
    // Let it see `authorization_pending` at least once, then allow.
    while setup.fake.state.devices.lock().unwrap().values().all(|grant| grant.polls.is_empty()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(setup.fake.decide_device(&user_code, true));
    let (status, rest, stderr) = finished(child, stdout).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(rest.contains("test-user"), "{rest}");
    let token = setup.fake.state.issued_tokens.lock().unwrap().last().cloned().unwrap();
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(setup.tokens().join("accounts/test-user.json")).unwrap())
            .unwrap();
    assert_eq!(stored["access_token"], token.as_str());
    assert!(!stderr.contains(&token) && !rest.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn device_follows_slow_down() {
    let setup = Setup::new().await;
    setup.fake.state.device_slow_downs.store(1, Ordering::SeqCst);
    let (child, stdout, _, user_code) = start_device(&setup, &[]).await;
    // Allow at once: the first poll still gets slow_down, the next the token.
    assert!(setup.fake.decide_device(&user_code, true));
    let grant_polls =
        || setup.fake.state.devices.lock().unwrap().values().next().map(|grant| grant.polls.clone());
    let first_poll = loop {
        match grant_polls() {
            Some(polls) if !polls.is_empty() => break polls[0],
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            None => panic!("the flow ended before its first poll was seen"),
        }
    };
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 0, "{stderr}");
    // interval 1 s + 5 s for slow_down before the second poll.
    let waited = first_poll.elapsed();
    assert!(waited >= Duration::from_secs(6), "polled again after {waited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_denied_or_expired_exits_1_and_stores_nothing() {
    let setup = Setup::new().await;
    let (child, stdout, _, user_code) = start_device(&setup, &[]).await;
    assert!(setup.fake.decide_device(&user_code, false));
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");

    setup.fake.state.device_expires_in.store(2, Ordering::SeqCst);
    let (child, stdout, _, _) = start_device(&setup, &[]).await;
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("expired") && stderr.contains("run yandex-token device again"), "{stderr}");
    assert!(!setup.tokens().join("token.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn device_stops_on_expired_token_or_invalid_grant_from_yandex() {
    let setup = Setup::new().await;
    let (child, stdout, _, _) = start_device(&setup, &[]).await;
    // Yandex forgets the flow: the next poll gets invalid_grant.
    setup.fake.state.devices.lock().unwrap().clear();
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_waiting_exits_130_and_leaves_nothing() {
    let setup = Setup::new().await;
    let (child, stdout, _, _) = start_device(&setup, &[]).await;
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 130, "{stderr}");
    assert!(!setup.tokens().exists() || std::fs::read_dir(setup.tokens()).unwrap().next().is_none());
    assert_eq!(setup.fake.state.issued_tokens.lock().unwrap().len(), 0);
}

#[test]
fn device_flags_are_checked() {
    let (code, _, stderr) = crate::support::process::run(&["device", "--device-id", "abc"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--device-id") && stderr.contains("\"abc\""), "{stderr}");
    let long = "x".repeat(101);
    let (code, _, stderr) = crate::support::process::run(&["device", "--device-name", &long]);
    assert_eq!(code, 2, "{stderr}");
}

/// Refused app credentials end the wait at once, naming what to fix,
/// instead of polling until the code expires and calling it "expired".
#[tokio::test(flavor = "multi_thread")]
async fn device_with_a_wrong_secret_stops_at_the_first_poll() {
    let setup = Setup::new().await;
    // The secret file holds another secret: Yandex answers invalid_client.
    let wrong = setup.dir.path().join("wrong_secret");
    std::fs::write(&wrong, "not-the-secret\n").unwrap();
    let started = std::time::Instant::now();
    let (child, stdout, _, _) = start_device(&setup, &["--wrong-secret", wrong.to_str().unwrap()]).await;
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("invalid_client") && stderr.contains("client secret file"), "{stderr}");
    assert!(!stderr.contains("expired"), "{stderr}");
    assert_eq!(setup.fake.token_calls(), 1, "one poll, then it stopped");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A token endpoint that times out is polled less and less often (RFC 8628
/// §3.5: double the interval), not at the same pace until the code expires.
#[tokio::test(flavor = "multi_thread")]
async fn device_backs_off_when_the_endpoint_times_out() {
    let setup = Setup::new().await;
    setup.fake.state.device_expires_in.store(10, Ordering::SeqCst);
    setup.fake.set_mode(crate::support::fake_oauth::Mode::Slow(Duration::from_secs(5)));
    let (child, stdout, _, _) = start_device(&setup, &["--upstream-timeout", "1"]).await;
    let (status, _, stderr) = finished(child, stdout).await;
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("trying again in 2 s") && stderr.contains("trying again in 4 s"), "{stderr}");
    // Polls at about 1, 4 and 9 s; at the old steady pace (1 s plus the
    // 1 s timeout) there would have been 5.
    assert!(setup.fake.token_calls() <= 3, "{} polls: {stderr}", setup.fake.token_calls());
}
