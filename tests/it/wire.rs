//! Correct on the wire: HEAD answers GET's head with no content on every
//! route over HTTP/1.1 and HTTP/2 (hyper's HTTP/2 client refuses DATA on a
//! HEAD stream, as curl does), answers to requests with a body reach an
//! HTTP/2 client that is still sending, and failures carry the journal
//! priorities that `journalctl -p warning` filters on.

use std::process::Command;

use hyper::Method;

use crate::support::World;
use crate::support::client::{Client, Reply, client_config};
use crate::support::fake_oauth::FakeOAuth;
use crate::support::pki::TestPki;
use crate::support::process::Running;
use crate::support::server::flags_for;

/// Headers whose values differ between two answers by design.
const VARYING: &[&str] = &["date", "set-cookie", "location", "content-length", "content-security-policy"];

fn assert_same_head(get: &Reply, head: &Reply, what: &str) {
    assert_eq!(head.status, get.status, "{what}");
    assert_eq!(head.body, "", "{what}: HEAD has no content");
    let names = |reply: &Reply| {
        // content-length is checked below: hyper adds `0` for an empty
        // body over HTTP/1.1 only, where a HEAD answer may leave it out.
        let mut names: Vec<String> = reply
            .headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .filter(|name| name != "content-length")
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(head), names(get), "{what}: the same header fields");
    for (name, value) in &get.headers {
        if !VARYING.contains(&name.as_str()) {
            assert_eq!(head.headers.get(name), Some(value), "{what}: {name}");
        }
    }
    if get.body.is_empty() {
        assert!(head.header("content-length").is_none_or(|length| length == "0"), "{what}");
    } else {
        assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()), "{what}");
    }
}

async fn every_route_answers_head_like_get(world: &World, alpn: &[u8], paths: &[&str]) {
    let config = client_config(&world.pki.ca_der, &[alpn], rustls::DEFAULT_VERSIONS);
    for path in paths {
        let what = format!("{} {path}", String::from_utf8_lossy(alpn));
        let get = Client::with_config(config.clone()).get(world.server.addr, path).await;
        let head = Client::with_config(config.clone()).send(world.server.addr, Method::HEAD, path, "").await;
        let expected = if alpn == b"h2" { hyper::Version::HTTP_2 } else { hyper::Version::HTTP_11 };
        assert_eq!(head.version, expected, "{what}");
        assert_same_head(&get, &head, &what);
    }
}

#[tokio::test]
async fn head_is_gets_head_on_every_route_over_http1_and_http2() {
    let world = World::new().await;
    let paths = ["/healthz", "/get_token", "/metrics", "/nope", "/get_token?error=access_denied"];
    for alpn in [b"http/1.1".as_slice(), b"h2"] {
        every_route_answers_head_like_get(&world, alpn, &paths).await;
    }
    let world = World::with_flags(&["--flow", "paste"], |_| {}).await;
    for alpn in [b"http/1.1".as_slice(), b"h2"] {
        every_route_answers_head_like_get(&world, alpn, &["/get_token", "/healthz"]).await;
    }
}

#[tokio::test]
async fn head_never_finishes_a_flow_and_allow_lists_head() {
    let world = World::new().await;
    for alpn in [b"http/1.1".as_slice(), b"h2"] {
        let mut client =
            Client::with_config(client_config(&world.pki.ca_der, &[alpn], rustls::DEFAULT_VERSIONS));
        let start = client.get(world.server.addr, "/get_token").await;
        let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
        let reply = client
            .send(world.server.addr, Method::HEAD, &format!("/get_token?code=abc&state={state}"), "")
            .await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some("GET"));
        // The state was not spent: GET still finishes the flow.
        let at_yandex = client_h1(&world).get_url(start.location()).await;
        let query = at_yandex.location().split_once('?').unwrap().1.to_owned();
        let done = client.get(world.server.addr, &format!("/get_token?{query}")).await;
        assert_eq!(done.status, 200, "{}", done.body);
    }
    assert_eq!(world.fake.token_calls(), 2);
    let mut client = world.client();
    for (method, path, allow) in
        [(Method::POST, "/get_token", "GET, HEAD"), (Method::DELETE, "/healthz", "GET, HEAD")]
    {
        let reply = client.send(world.server.addr, method.clone(), path, "").await;
        assert_eq!((reply.status, reply.header("allow")), (405, Some(allow)), "{method} {path}");
    }
}

fn client_h1(world: &World) -> Client {
    *world.fake.state.callback.lock().unwrap() = Some(crate::support::callback_for(&world.server));
    world.client()
}

/// The real binary, serving against a fake Yandex: (process, port, CA file).
async fn binary(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Running, u16, TestPki, FakeOAuth, tempfile::TempDir) {
    let pki = TestPki::new();
    let fake = FakeOAuth::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    let restricted = extra.contains(&"--allow-login");
    args.extend(
        flags_for(&pki, &fake.url(), &fake.state.secret, dir.path())
            .into_iter()
            .filter(|flag| !(restricted && flag == "--allow-any-login")),
    );
    args.extend(extra.iter().map(|flag| (*flag).to_owned()));
    let (server, addr) = Running::start_with_env(&args, env);
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));
    (server, addr.port(), pki, fake, dir)
}

async fn curl(args: Vec<String>) -> (bool, String) {
    let output = tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output().unwrap())
        .await
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_head_works_over_http2_and_http1() {
    let (_server, port, pki, _fake, _dir) = binary(&[], &[]).await;
    let ca = pki.ca_pem.display().to_string();
    for (path, status) in [("/healthz", "200"), ("/get_token", "302"), ("/nope", "404")] {
        let url = format!("https://localhost:{port}{path}");
        for (flag, version) in [("--http2", "HTTP/2"), ("--http1.1", "HTTP/1.1")] {
            let args = vec![
                "-sSI".into(),
                "--max-time".into(),
                "10".into(),
                flag.into(),
                "--cacert".into(),
                ca.clone(),
                url.clone(),
            ];
            let (ok, out) = curl(args).await;
            assert!(ok, "curl -sI {flag} {path} failed:\n{out}");
            let first = out.lines().next().unwrap_or("");
            assert!(first.starts_with(&format!("{version} {status}")), "{flag} {path}: {out}");
            assert!(out.to_ascii_lowercase().contains("strict-transport-security"), "{out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_post_over_http2_gets_its_answer() {
    for flow in ["callback", "paste"] {
        let (_server, port, pki, fake, _dir) = binary(&["--flow", flow], &[]).await;
        let expected = if flow == "callback" { "405" } else { "400" };
        let ca = pki.ca_pem.display().to_string();
        for attempt in 0..40 {
            let args = vec![
                "-s".into(),
                "--http2".into(),
                "--max-time".into(),
                "10".into(),
                "--cacert".into(),
                ca.clone(),
                "-X".into(),
                "POST".into(),
                "--data".into(),
                "code=1&state=2".into(),
                "-o".into(),
                "/dev/null".into(),
                "-w".into(),
                "%{http_code} %{http_version}".into(),
                format!("https://localhost:{port}/get_token"),
            ];
            let (_, out) = curl(args).await;
            assert_eq!(out, format!("{expected} 2"), "{flow}: attempt {attempt}");
        }
        assert_eq!(fake.token_calls(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_warnings_or_errors_in_the_journal_and_routine_is_info() {
    // Under journald (JOURNAL_STREAM set), every line carries its priority.
    let (mut server, port, pki, fake, _dir) =
        binary(&["--allow-login", "somebody-else"], &[("JOURNAL_STREAM", "8:12345")]).await;
    let mut client = Client::new(&pki.ca_der);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(client.get(addr, "/healthz").await.status, 200);
    assert_eq!(client.get(addr, "/nope").await.status, 404);
    // A token of an account not on the allow-list: refused, a warning.
    let start = client.get(addr, "/get_token").await;
    let at_yandex = client.get_url(start.location()).await;
    assert_eq!(client.get_url(at_yandex.location()).await.status, 403);
    // The token endpoint fails: a 502, an error.
    fake.set_mode(crate::support::fake_oauth::Mode::Status500);
    let start = client.get(addr, "/get_token").await;
    let at_yandex = client.get_url(start.location()).await;
    assert_eq!(client.get_url(at_yandex.location()).await.status, 502);
    assert!(server.terminate().success());
    let stderr = server.stderr();
    let line = |needle: &str| {
        stderr
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{stderr}"))
    };
    assert!(line("path=/healthz status=200").starts_with("<6>"), "{stderr}");
    assert!(line("path=/nope status=404").starts_with("<6>"), "{stderr}");
    assert!(line("status=403").starts_with("<4>"), "{stderr}");
    assert!(line("status=502").starts_with("<3>"), "{stderr}");
    // `journalctl -p warning` would show exactly the failures.
    let warnings: Vec<&str> =
        stderr.lines().filter(|line| line.starts_with("<3>") || line.starts_with("<4>")).collect();
    assert!(
        warnings.iter().all(|line| line.contains("status=403")
            || line.contains("status=502")
            || line.contains("revoke")),
        "{warnings:#?}"
    );
    for line in stderr.lines() {
        assert!(line.starts_with('<'), "a line without a priority: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2s_own_warnings_reach_the_journal_at_warning_priority() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut server, port, pki, _fake, _dir) = binary(&[], &[("JOURNAL_STREAM", "8:12345")]).await;
    let config = client_config(&pki.ca_der, &[b"h2"], rustls::DEFAULT_VERSIONS);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut tls = crate::support::client::tls_connect(addr, "localhost", config).await;
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
    // A PING acknowledgement for a PING the server never sent: h2 warns.
    frames.extend_from_slice(&[0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    tls.write_all(&frames).await.unwrap();
    tls.flush().await.unwrap();
    // Frames until the server acknowledges our SETTINGS: it has read what
    // we sent. Then a request, whose answer comes after the PING was seen.
    loop {
        let mut head = [0u8; 9];
        tls.read_exact(&mut head).await.unwrap();
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; length];
        tls.read_exact(&mut payload).await.unwrap();
        if head[3] == 4 && head[4] & 1 == 1 {
            break;
        }
    }
    drop(tls);
    assert!(server.terminate().success());
    let stderr = server.stderr();
    let line = stderr.lines().find(|line| line.contains("PING ack")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("<4>") && line.contains("h2"), "{line}");
}
