//! End to end, as a user checks a deployment: the real binary, the real
//! `curl` with a cookie jar, `-L` and `--cacert`, through the fake Yandex to
//! the token JSON; then `show`, the logs (no secrets), and SIGTERM.

use std::path::Path;
use std::process::Command;

use crate::support::fake_oauth::{FakeOAuth, Mode};
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

/// The real binary serving, pointed at a fake Yandex that calls it back.
struct Deployed {
    pki: TestPki,
    fake: FakeOAuth,
    dir: tempfile::TempDir,
    server: Running,
    addr: std::net::SocketAddr,
}

async fn deploy() -> Deployed {
    let pki = TestPki::new();
    let fake = FakeOAuth::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags_for(&pki, &fake.url(), &fake.state.secret, dir.path()));
    let (server, addr) = Running::start(&args);
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));
    Deployed { pki, fake, dir, server, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_a_token_through_the_whole_flow() {
    let Deployed { pki, fake, dir, mut server, addr } = deploy().await;

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
    assert!(token.get("refresh_token").is_none(), "the refresh token stays on the server");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(token_dir.join("token.json")).unwrap()).unwrap();
    let refresh = stored["refresh_token"].as_str().unwrap();
    for secret in [fake.state.secret.as_str(), code.as_str(), issued[0].as_str(), refresh, "state=", "code="]
    {
        assert!(!stderr.contains(secret), "stderr leaks {secret:?}:\n{stderr}");
    }
}

/// A user whose curl gives up (`--max-time`) while Yandex is slow to
/// answer the exchange: the token is stored all the same, and the journal
/// says what was stored, for whom, with nobody left to read the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curl_that_gives_up_mid_exchange_still_gets_its_token_stored() {
    let Deployed { pki, fake, dir, mut server, addr } = deploy().await;
    fake.set_mode(Mode::Slow(std::time::Duration::from_millis(2500)));

    let jar = dir.path().join("cookies.txt");
    let url = format!("https://localhost:{}/get_token", addr.port());
    let curl = curl_as_a_user(&jar, &pki.ca_pem, &url, &["--max-time", "1.5"]).await;
    assert_eq!(curl.status.code(), Some(28), "curl should have timed out: {curl:?}");
    let line = tokio::task::block_in_place(|| server.wait_for_line("stored the token of "));
    assert!(line.starts_with("test-user in "), "{line}");
    let issued = fake.state.issued_tokens.lock().unwrap().clone();
    let token_dir = dir.path().join("tokens");
    let (code, shown, _) = run(&["show", "--token-dir", token_dir.to_str().unwrap()]);
    assert_eq!((code, shown.trim()), (0, issued[0].as_str()));
    server.terminate();
    assert!(!server.stderr().contains(issued[0].as_str()), "the journal leaks the token");
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

/// The command line the demo printed after `label`, split into arguments.
fn printed_command(stderr: &str, label: &str) -> Vec<String> {
    let line = stderr.lines().find_map(|line| line.trim_start().strip_prefix(label)).unwrap_or_else(|| {
        panic!("no {label:?} line in:\n{stderr}");
    });
    line.split_whitespace().map(str::to_owned).collect()
}

/// Starts `demo` with `extra` flags: (process, https base URL, token dir, CA).
fn start_demo(dir: &Path, extra: &[&str]) -> (Running, String, std::path::PathBuf, std::path::PathBuf) {
    let token_dir = dir.join("demo");
    let mut args: Vec<String> = vec![
        "demo".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--token-dir".into(),
        token_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|flag| (*flag).to_owned()));
    let (demo, addr) = Running::start(&args);
    let ca = token_dir.join("demo-cert.pem");
    (demo, format!("https://localhost:{}", addr.port()), token_dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_paste_flow_for_curl() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, base, token_dir, ca) = start_demo(dir.path(), &["--flow", "paste"]);
    let jar = dir.path().join("jar.txt");
    let curl = async |url: String, extra: &[&str]| {
        let out = curl_as_a_user(&jar, &ca, &url, extra).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let page = curl(format!("{base}/get_token"), &[]).await;
    let attribute = |page: &str, marker: &str, name: &str| {
        let from = &page[page.find(marker).unwrap_or_else(|| panic!("{marker} in {page}"))..];
        from.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&")
    };
    let authorize = attribute(&page, "id=\"authorize\"", "href");
    let state = attribute(&page, "name=\"state\"", "value");
    let consent = curl(authorize, &[]).await;
    assert!(consent.contains("DEMO"), "{consent}");
    // Allow leads (-L) to the stand-in's verification_code page.
    let shown = curl(format!("{base}{}", attribute(&consent, "id=\"allow\"", "href")), &[]).await;
    let code = shown.split("<b id=\"code\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_eq!(code.len(), 16, "{shown}");
    let body = curl(
        format!("{base}/get_token"),
        &["--data-urlencode", &format!("code={code}"), "--data-urlencode", &format!("state={state}")],
    )
    .await;
    let token: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    let (status, shown, _) = run(&["show", "--token-dir", token_dir.to_str().unwrap()]);
    assert_eq!((status, shown.trim()), (0, token["access_token"].as_str().unwrap()));
    assert!(demo.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_login_and_device_lines_work_against_it() {
    use std::io::Write;

    use crate::support::process::{finished, line};

    let dir = tempfile::tempdir().unwrap();
    let (mut demo, base, token_dir, ca) = start_demo(dir.path(), &[]);
    let spawn = |label: &str| {
        let command = printed_command(&demo.stderr(), label);
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        (child, stdout)
    };
    let jar = dir.path().join("jar.txt");

    // login: the URL on stdout; Allow in the "browser"; the code on stdin.
    let (mut child, stdout) = spawn("login ");
    let (url, stdout) = line(stdout).await;
    let consent = String::from_utf8(curl_as_a_user(&jar, &ca, &url, &[]).await.stdout).unwrap();
    let allow = consent
        .split("id=\"allow\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let shown =
        String::from_utf8(curl_as_a_user(&jar, &ca, &format!("{base}{allow}"), &[]).await.stdout).unwrap();
    let code = shown.split("<b id=\"code\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    child.stdin.take().unwrap().write_all(format!("{code}\n").as_bytes()).unwrap();
    let (status, summary, stderr) = finished(child, stdout).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(summary.contains("demo-user"), "{summary}");

    // device: the code on stdout; entered and allowed at the device page.
    let (child, stdout) = spawn("device ");
    let (open, stdout) = line(stdout).await;
    let (user_code, stdout) = line(stdout).await;
    let page = open.strip_prefix("open: ").unwrap().to_owned();
    assert_eq!(page, format!("{base}/demo/oauth/device"));
    let user_code = user_code.strip_prefix("code: ").unwrap().to_owned();
    let form = format!("user_code={user_code}&choice=allow");
    let answer = curl_as_a_user(&jar, &ca, &page, &["--data", &form]).await;
    assert!(String::from_utf8_lossy(&answer.stdout).contains("Allowed"));
    let (status, summary, stderr) = finished(child, stdout).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(summary.contains("demo-user"), "{summary}");
    assert!(token_dir.join("accounts/demo-user.json").exists());
    assert!(demo.terminate().success());
}

/// Every client sees its answer, whatever its body's size: the real curl,
/// over HTTP/2 and HTTP/1.1, POSTs 20 kB to 2 MB where no such body is
/// taken (the paste form's 8 KiB cap: 413; a route without POST: 405).
/// Without lingering (HTTP/1.1) or a clean end of the stream (HTTP/2) the
/// client's send fails or the stream is reset before it reads the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_every_answer_to_an_oversized_post() {
    let paste = crate::support::World::with_flags(&["--flow", "paste"], |_| {}).await;
    let callback = crate::support::World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for size in [20_000, 64 * 1024 + 1, 200_000, 1_000_000, 2_000_000] {
        let body = dir.path().join(format!("body-{size}"));
        std::fs::write(&body, "x".repeat(size)).unwrap();
        for protocol in ["--http2", "--http1.1"] {
            for (world, path, expected) in [
                (&paste, "/get_token", "413"),
                (&paste, "/healthz", "405"),
                (&callback, "/get_token", "405"),
                (&callback, "/healthz", "405"),
            ] {
                let url = format!("https://localhost:{}{path}", world.server.addr.port());
                let mut command = Command::new("curl");
                command
                    .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", protocol])
                    .args(["-H", "Expect:", "-H", "Content-Type: application/x-www-form-urlencoded"])
                    .arg("--cacert")
                    .arg(&world.pki.ca_pem)
                    .arg("--data-binary")
                    .arg(format!("@{}", body.display()))
                    .arg(&url);
                runs.push((size, protocol, path, expected, command));
            }
        }
    }
    assert_eq!(runs.len(), 40);
    let mut failures = Vec::new();
    for (size, protocol, path, expected, mut command) in runs {
        let output =
            tokio::task::spawn_blocking(move || command.output().expect("curl is installed")).await.unwrap();
        let seen = String::from_utf8_lossy(&output.stdout).into_owned();
        if seen != expected {
            failures.push(format!(
                "{protocol} POST {path} with {size} bytes: saw {seen:?}, wanted {expected} ({})",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of 40 answers not seen:\n{}", failures.len(), failures.join("\n"));
}
