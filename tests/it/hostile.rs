//! Hostile input over real TLS: each gets a clear 4xx (or is served
//! correctly when it is legal), and the server keeps serving afterwards.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::World;
use crate::support::client::{client_config, tls_connect};

const WAIT: Duration = Duration::from_secs(10);

/// Sends raw bytes over a fresh TLS connection and returns everything the
/// server answers until it closes (or goes quiet).
async fn raw(world: &World, bytes: &[u8]) -> String {
    let mut tls = world.tls(&[b"http/1.1"]).await;
    // The server may answer and close before a huge request is all written.
    let _ = tls.write_all(bytes).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Wait for the answer to start, then read until the server closes or
    // goes quiet (keep-alive).
    let mut quiet = WAIT;
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, tls.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        quiet = Duration::from_millis(300);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn assert_still_serving(world: &World) {
    let answer = raw(world, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "not serving any more: {answer}");
}

fn status_of(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_a_4xx() {
    let world = World::new().await;
    let header = |size: usize| {
        format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(size))
            .into_bytes()
    };
    let mut cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("20 KiB header", header(20 * 1024), &["431"]),
        ("1 MiB header", header(1024 * 1024), &["431"]),
        (
            "100 KiB query",
            format!(
                "GET /get_token?code={}&state=s HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "c".repeat(100 * 1024)
            )
            .into_bytes(),
            &["414", "431"],
        ),
        (
            "20 KiB cookie",
            format!(
                "GET /get_token HTTP/1.1\r\nHost: localhost\r\nCookie: a={}\r\n\r\n",
                "b".repeat(20 * 1024)
            )
            .into_bytes(),
            &["431"],
        ),
        ("raw space in the target", b"GET /get token HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["400"]),
        ("CR in the target", b"GET /get_token\rX HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["400"]),
        ("LF in the target", b"GET /get_\ntoken HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["400"]),
        (
            "non-UTF-8 path",
            b"GET /get_token\xff\xfe HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400", "404"],
        ),
        (
            "non-UTF-8 query",
            b"GET /get_token?code=\xff&state=s HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400"],
        ),
        (
            "percent-encoded non-UTF-8",
            b"GET /get_token?code=%ff&state=s HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400"],
        ),
        (
            "invalid percent-encoding",
            b"GET /get_token?code=%g1&state=s HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400"],
        ),
        (
            "duplicate state",
            b"GET /get_token?code=c&state=a&state=b HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400"],
        ),
        (
            "empty values",
            b"GET /get_token?code=&state= HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            &["400"],
        ),
        ("empty error", b"GET /get_token?error= HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["400"]),
        ("unknown method", b"FROB /get_token HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["405"]),
        ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(), &["400"]),
        ("garbage", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(), &["400"]),
    ];
    let oversized_state =
        format!("GET /get_token?code=c&state={} HTTP/1.1\r\nHost: localhost\r\n\r\n", "s".repeat(1025));
    cases.push(("oversized state", oversized_state.into_bytes(), &["400"]));
    for (name, request, expected) in cases {
        let answer = raw(&world, &request).await;
        assert!(
            expected.contains(&status_of(&answer)),
            "{name}: expected {expected:?}, got: {}",
            &answer[..answer.len().min(300)]
        );
        if status_of(&answer) == "400" && answer.contains("application/json") {
            assert!(answer.contains("\"error\""), "{name}: {answer}");
        }
        assert_still_serving(&world).await;
    }
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn legal_but_unusual_requests_are_served() {
    let world = World::new().await;
    // Absolute-form target (RFC 9112 §3.2.2).
    let answer = raw(
        &world,
        b"GET https://localhost/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), "200", "{answer}");
    // HTTP/1.0 without Host.
    let answer = raw(&world, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A body on GET is read past; the pipelined request after it is answered.
    let answer = raw(
        &world,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    // A cookie that is not UTF-8 is ignored: the flow starts with a new one.
    let answer = raw(&world, b"GET /get_token HTTP/1.1\r\nHost: localhost\r\nCookie: __Host-yandex-token-browser=\xff\xfe\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), "302", "{answer}");
    // A big but allowed cookie header is fine too.
    let big = format!(
        "GET /get_token HTTP/1.1\r\nHost: localhost\r\nCookie: a={}\r\nConnection: close\r\n\r\n",
        "b".repeat(8 * 1024)
    );
    assert_eq!(status_of(&raw(&world, big.as_bytes()).await), "302");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_clear_400() {
    let world = World::new().await;
    let mut tcp = TcpStream::connect(world.server.addr).await.unwrap();
    tcp.write_all(b"GET /get_token HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"error\":\"tls_required\""), "{answer}");
    assert_still_serving(&world).await;
}

#[tokio::test]
async fn tls_without_sni_is_served() {
    let world = World::new().await;
    // An IP address as server name: rustls sends no SNI.
    let config = client_config(&world.pki.ca_der, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut tls = tls_connect(world.server.addr, "127.0.0.1", config).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_unknown_sni_is_served() {
    let world = World::new().await;
    let port = world.server.addr.port();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "unknown.example",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("HTTP/1.1 200"), "{stdout}");
}

#[tokio::test]
async fn http2_rapid_reset_is_cut_off_and_the_server_keeps_serving() {
    let world = World::new().await;
    let tls = world.tls(&[b"h2"]).await;
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let uri = format!("https://localhost:{}/healthz", world.server.addr.port());
    let mut opened = 0;
    for _ in 0..20_000 {
        let Ok(mut ready) = send.clone().ready().await else { break };
        let request = hyper::Request::get(&uri).body(()).unwrap();
        match ready.send_request(request, false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                opened += 1;
            }
            Err(_) => break,
        }
    }
    let ended =
        tokio::time::timeout(WAIT, driver).await.expect("the abusive connection was not closed").unwrap();
    assert!(ended.is_err() || opened < 20_000, "the server let {opened} rapid resets through");
    assert_still_serving(&world).await;
}
