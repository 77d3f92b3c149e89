//! End to end, as a user checks a deployment: the real binary, the real
//! `curl` with a cookie jar, `-L` and `--cacert`, through the fake Yandex to
//! the token JSON; then `show`, the logs (no secrets), and SIGTERM.

use std::path::Path;
use std::process::Command;

use crate::support::fake_oauth::FakeOAuth;
use crate::support::pki::TestPki;
use crate::support::process::{Running, run};
use crate::support::server::flags_for;

/// `curl -sS -L` with a cookie jar and `--cacert`, as a user checks a
/// deployment, off the runtime's threads.
async fn curl_as_a_user(jar: &Path, ca: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    let mut command = Command::new("curl");
    command.args(["-sS", "-L", "--max-time", "20"]).args(extra).arg("-c").arg(jar).arg("-b").arg(jar);
    command.arg("--cacert").arg(ca).arg(url);
    tokio::task::spawn_blocking(move || command.output().expect("curl is installed")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_a_token_through_the_whole_flow() {
    let pki = TestPki::new();
    let fake = FakeOAuth::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags_for(&pki, &fake.url(), &fake.state.secret, dir.path()));
    let (mut server, addr) = Running::start(&args);
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));

    let jar = dir.path().join("cookies.txt");
    let url = format!("https://localhost:{}/get_token", addr.port());
    let curl = curl_as_a_user(&jar, &pki.ca_pem, &url, &["-w", "\n%{http_code}"]).await;
    let stdout = String::from_utf8_lossy(&curl.stdout);
    assert!(curl.status.success(), "curl failed: {}", String::from_utf8_lossy(&curl.stderr));
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{body}");
    let token: serde_json::Value = serde_json::from_str(body).unwrap();
    let issued = fake.state.issued_tokens.lock().unwrap().clone();
    assert_eq!(issued.len(), 1);
    assert_eq!(token["access_token"], issued[0].as_str());

    // `show` prints exactly that token.
    let token_dir = dir.path().join("tokens");
    let (code, shown, _) = run(&["show", "--token-dir", token_dir.to_str().unwrap()]);
    assert_eq!((code, shown.trim()), (0, issued[0].as_str()));

    // A graceful stop exits 0.
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");

    // The logs tell what happened and nothing secret.
    let stderr = server.stderr();
    assert!(stderr.contains("method=GET path=/get_token status=302"), "{stderr}");
    assert!(stderr.contains("method=GET path=/get_token status=200"), "{stderr}");
    let code = fake.state.issued_codes.lock().unwrap()[0].clone();
    let refresh = token["refresh_token"].as_str().unwrap();
    for secret in [fake.state.secret.as_str(), code.as_str(), issued[0].as_str(), refresh, "state=", "code="]
    {
        assert!(!stderr.contains(secret), "stderr leaks {secret:?}:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_whole_flow_for_curl() {
    let dir = tempfile::tempdir().unwrap();
    let token_dir = dir.path().join("demo");
    let args: Vec<String> = vec![
        "demo".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--token-dir".into(),
        token_dir.display().to_string(),
    ];
    let (mut demo, addr) = Running::start(&args);
    let ca = token_dir.join("demo-cert.pem");
    let jar = dir.path().join("jar.txt");
    let curl = async |url: String| {
        let out = curl_as_a_user(&jar, &ca, &url, &[]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let base = format!("https://localhost:{}", addr.port());
    let page = curl(format!("{base}/get_token")).await;
    assert!(page.contains("DEMO"), "{page}");
    let allow =
        page.split("id=\"allow\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let body = curl(format!("{base}{allow}")).await;
    let token: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert!(token["access_token"].as_str().unwrap().starts_with("demo-"));
    let (code, shown, _) = run(&["show", "--token-dir", token_dir.to_str().unwrap()]);
    assert_eq!((code, shown.trim()), (0, token["access_token"].as_str().unwrap()));
    assert!(demo.terminate().success());
}
