//! Routing and the TLS edge: /healthz, 404, 405 with Allow, the headers on
//! every response, HTTP/2 through ALPN, TLS 1.2 accepted, TLS 1.1 refused,
//! the session ticket sent at once, and the plain-HTTP redirect listener.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::World;
use crate::support::client::{Client, client_config, tls_connect};

#[tokio::test]
async fn healthz_answers_get_and_head() {
    let world = World::new().await;
    let mut client = world.client();
    let get = client.get(world.server.addr, "/healthz").await;
    assert_eq!((get.status, get.body.as_str()), (200, "ok\n"));
    assert!(get.header("strict-transport-security").is_some());
    let head = client.send(world.server.addr, Method::HEAD, "/healthz", "").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

#[tokio::test]
async fn bodies_carry_nosniff_and_a_csp_and_the_bodiless_redirect_does_not() {
    let world = World::new().await;
    let mut client = world.client();
    const CSP: &str = "default-src 'none'; frame-ancestors 'none'";
    for path in ["/healthz", "/nowhere"] {
        let reply = client.get(world.server.addr, path).await;
        assert!(!reply.body.is_empty(), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(reply.header("content-security-policy"), Some(CSP), "{path}");
    }
    // Nothing to sniff or render: the headers that matter to a redirect
    // (get_token_flow.rs) stay, these two would only add bytes.
    let redirect = client.get(world.server.addr, "/get_token").await;
    assert_eq!((redirect.status, redirect.body.as_str()), (302, ""));
    assert_eq!(redirect.header("x-content-type-options"), None);
    assert_eq!(redirect.header("content-security-policy"), None);
    assert_eq!(redirect.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let world = World::new().await;
    let mut client = world.client();
    for path in ["/", "/get_token/", "/GET_TOKEN", "/demo/oauth/authorize", "/healthz/x"] {
        let reply = client.get(world.server.addr, path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["error"], "not_found");
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let world = World::new().await;
    let mut client = world.client();
    for (method, path, allow) in [
        (Method::POST, "/get_token", "GET, HEAD"),
        (Method::DELETE, "/get_token", "GET, HEAD"),
        // HEAD with a state would spend it: GET only.
        (Method::HEAD, "/get_token?code=a&state=b", "GET"),
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::from_bytes(b"BREW").unwrap(), "/healthz", "GET, HEAD"),
    ] {
        let reply = client.send(world.server.addr, method.clone(), path, "x=1").await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        if method != Method::HEAD {
            assert_eq!(reply.json()["error"], "method_not_allowed");
        }
    }
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_and_serves_the_flow() {
    let world = World::new().await;
    let tls = client_config(&world.pki.ca_der, &[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut client = Client::with_config(tls);
    let reply = client.get(world.server.addr, "/get_token").await;
    assert_eq!(reply.version, hyper::Version::HTTP_2);
    assert_eq!(reply.status, 302);
    let callback = client.get_url(reply.location()).await.location().to_owned();
    let done = client.get_url(&callback).await;
    assert_eq!((done.version, done.status), (hyper::Version::HTTP_2, 200), "{}", done.body);
}

#[tokio::test]
async fn tls12_is_accepted() {
    let world = World::new().await;
    let tls = client_config(&world.pki.ca_der, &[b"http/1.1"], &[&rustls::version::TLS12]);
    let reply = Client::with_config(tls).get(world.server.addr, "/healthz").await;
    assert_eq!(reply.status, 200);
}

/// Counts the TLS 1.3 session tickets a client is given.
#[derive(Debug, Default)]
struct TicketWatch {
    given: tokio::sync::Notify,
}

impl rustls::client::ClientSessionStore for TicketWatch {
    fn set_kx_hint(&self, _: ServerName<'static>, _: rustls::NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        None
    }
    fn set_tls12_session(&self, _: ServerName<'static>, _: rustls::client::Tls12ClientSessionValue) {}
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: rustls::client::Tls13ClientSessionValue) {
        self.given.notify_one();
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

/// A client with Nagle's algorithm on (most TLS libraries' default) holds
/// a request written after its Finished until the server acknowledges the
/// Finished. The session ticket does that at once; without it the kernel's
/// delayed ACK made every such request wait 40 ms.
#[tokio::test]
async fn the_session_ticket_is_sent_right_after_the_handshake() {
    let world = World::new().await;
    let watch = Arc::new(TicketWatch::default());
    let mut config =
        Arc::unwrap_or_clone(client_config(&world.pki.ca_der, &[b"http/1.1"], &[&rustls::version::TLS13]));
    config.resumption = rustls::client::Resumption::store(watch.clone());
    let mut tls = tls_connect(world.server.addr, "localhost", Arc::new(config)).await;
    // Send nothing; reading makes the client take in what the server sends.
    let mut byte = [0u8; 1];
    tokio::select! {
        _ = watch.given.notified() => {}
        read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)) => {
            panic!("no session ticket before the request: {read:?}");
        }
    }
}

/// A TLS 1.1 ClientHello (legacy_version 0x0302, no supported_versions
/// extension), written by hand because no modern client library will send one.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x11; 32]); // random
    hello.push(0); // session id
    // Suites the server does support (ECDHE-ECDSA/RSA-AES128-GCM-SHA256), so
    // only the version can be the reason for refusal.
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let sni_name = b"localhost";
    let mut sni = vec![0x00, 0x00]; // extension type server_name
    let list_len = (sni_name.len() + 3) as u16;
    sni.extend_from_slice(&(list_len + 2).to_be_bytes());
    sni.extend_from_slice(&list_len.to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(sni_name.len() as u16).to_be_bytes());
    sni.extend_from_slice(sni_name);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
    let mut extensions = sni;
    extensions.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls11_is_refused_with_a_protocol_version_alert() {
    let world = World::new().await;
    let mut tcp = tokio::net::TcpStream::connect(world.server.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    // An alert record (21), fatal (2), protocol_version (70); never a ServerHello (22).
    assert!(answer.len() >= 7, "{answer:?}");
    assert_eq!(answer[0], 21, "{answer:?}");
    assert_eq!(&answer[5..7], &[2, 70], "{answer:?}");
    let mut client = world.client();
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn plain_http_gets_a_redirect_to_https() {
    let world = World::new().await;
    let http = world.server.http_addr.unwrap();
    let https_port = world.server.addr.port();
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    tcp.write_all(b"GET /get_token?x=1 HTTP/1.1\r\nHost: localhost:80\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("location: https://localhost:{https_port}/get_token?x=1\r\n")),
        "{answer}"
    );
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Without --public-host, the redirect goes only to a name the served
/// certificate covers (localhost, 127.0.0.1 and ::1 here); any other Host
/// gets 400, so a crafted Host cannot send a browser to another site.
#[tokio::test]
async fn the_redirect_trusts_only_names_the_certificate_covers() {
    let world = World::new().await;
    let http = world.server.http_addr.unwrap();
    let port = world.server.addr.port();
    for (host, expected) in [
        ("evil.test", None),
        ("localhost.evil.test", None),
        ("127.0.0.2", None),
        ("127.0.0.1:8080", Some(format!("https://127.0.0.1:{port}/"))),
        ("[::1]", Some(format!("https://[::1]:{port}/"))),
        ("LOCALHOST", Some(format!("https://localhost:{port}/"))),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        match expected {
            None => assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}"),
            Some(location) => {
                assert!(answer.starts_with("HTTP/1.1 308"), "{host}: {answer}");
                assert!(answer.to_ascii_lowercase().contains(&format!("location: {location}")), "{answer}");
            }
        }
    }
}

#[tokio::test]
async fn graceful_stop_returns() {
    let world = World::new().await;
    let mut client = world.client();
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
    let addr = world.server.addr;
    tokio::time::timeout(std::time::Duration::from_secs(10), world.server.stop())
        .await
        .expect("shutdown finishes");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after stop");
}

#[tokio::test]
async fn public_host_pins_the_redirect_and_bad_hosts_get_400() {
    let world = World::with(|config| config.public_host = Some("token.example.test".into())).await;
    let http = world.server.http_addr.unwrap();
    let port = world.server.addr.port();
    for (host, expected) in [
        ("evil.test", format!("308 location: https://token.example.test:{port}/get_token")),
        ("bad host!", format!("308 location: https://token.example.test:{port}/get_token")),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let request = format!("GET /get_token HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        let (status, location) = expected.split_once(' ').unwrap();
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        assert!(answer.to_ascii_lowercase().contains(location), "{answer}");
    }
}

#[tokio::test]
async fn an_invalid_host_header_gets_400_without_public_host() {
    let world = World::new().await;
    let http = world.server.http_addr.unwrap();
    for host in ["bad host", "evil.test/path", "a@b"] {
        let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
    }
}
