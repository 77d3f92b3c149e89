//! Every limit really acts: the connection cap (shedding the oldest
//! connection that has not sent a request), the TLS handshake, header-read
//! and idle timeouts, the header size caps (HTTP/1 and HTTP/2), the HTTP/2
//! stream cap, and the token endpoint's connect timeout and body cap.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::World;
use crate::support::client::{Client, client_config};

const WAIT: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(120);

/// Reads until EOF or error; true if the peer closed within `limit`.
async fn closed_within<S: AsyncReadExt + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

async fn tls_stream(world: &World) -> tokio_rustls::client::TlsStream<TcpStream> {
    world.tls(&[b"http/1.1"]).await
}

#[tokio::test]
async fn at_the_cap_the_oldest_silent_connection_is_shed_for_a_real_user() {
    let world = World::with(|c| {
        c.limits.max_connections = 4;
        c.limits.tls_handshake_timeout = LONG;
    })
    .await;
    // A user with a finished request on a keep-alive connection...
    let mut user = tls_stream(&world).await;
    user.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    assert!(user.read(&mut buf).await.unwrap() > 0);
    // ...then three silent connections fill the cap.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(world.server.addr).await.unwrap());
    }
    // A new user still gets in: the oldest silent one makes room.
    let mut client = world.client();
    let reply = tokio::time::timeout(WAIT, client.get(world.server.addr, "/healthz")).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(closed_within(&mut silent[0], WAIT).await, "the oldest silent connection was not shed");
    assert!(!closed_within(&mut silent[2], SHORT).await, "the newest silent connection was shed");
    // The served connection is never shed.
    user.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let n = tokio::time::timeout(WAIT, user.read(&mut buf)).await.unwrap().unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    let world = World::with(|c| {
        c.limits.tls_handshake_timeout = SHORT;
        c.limits.header_read_timeout = LONG;
        c.limits.idle_timeout = LONG;
    })
    .await;
    let mut silent = TcpStream::connect(world.server.addr).await.unwrap();
    let mut half = TcpStream::connect(world.server.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap(); // a ClientHello that never ends
    assert!(closed_within(&mut silent, WAIT).await);
    assert!(closed_within(&mut half, WAIT).await);
}

#[tokio::test]
async fn a_slow_request_head_is_closed() {
    let world = World::with(|c| {
        c.limits.header_read_timeout = SHORT;
        c.limits.idle_timeout = LONG;
    })
    .await;
    let mut slow = tls_stream(&world).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: local").await.unwrap();
    assert!(closed_within(&mut slow, WAIT).await, "a partial head was kept");
    // Slowloris: a byte at a time, each well inside any per-read timeout.
    let mut drip = tls_stream(&world).await;
    let started = std::time::Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for byte in head {
        if drip.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed_within(&mut drip, WAIT).await);
    assert!(started.elapsed() < Duration::from_secs(5), "the slow head lived {:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let world = World::with(|c| {
        c.limits.header_read_timeout = LONG;
        c.limits.idle_timeout = SHORT;
    })
    .await;
    let mut conn = tls_stream(&world).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    assert!(conn.read(&mut buf).await.unwrap() > 0);
    assert!(closed_within(&mut conn, WAIT).await, "the idle connection was kept");
}

#[tokio::test]
async fn oversized_http1_headers_get_431() {
    let world = World::with(|c| c.limits.max_header_bytes = 8 * 1024).await;
    let mut client = world.client();
    for (size, expected) in [(4 * 1024, "HTTP/1.1 200"), (10 * 1024, "HTTP/1.1 431")] {
        let mut conn = tls_stream(&world).await;
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n", "a".repeat(size));
        conn.write_all(request.as_bytes()).await.ok();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, conn.read_buf(&mut answer)).await;
        assert!(
            String::from_utf8_lossy(&answer).starts_with(expected),
            "{size}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
}

async fn h2_connection(
    world: &World,
) -> (h2::client::SendRequest<hyper::body::Bytes>, tokio::task::JoinHandle<()>, usize) {
    let tls = world.tls(&[b"h2"]).await;
    let (send, mut connection) = h2::client::handshake(tls).await.unwrap();
    // The server's SETTINGS arrive with the first exchange.
    let mut send = send.ready().await.unwrap();
    let request = hyper::Request::get(format!("https://localhost:{}/healthz", world.server.addr.port()))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::select! {
        response = response => response.unwrap(),
        _ = &mut connection => panic!("connection ended"),
    };
    assert_eq!(response.status(), 200);
    let streams = connection.max_concurrent_send_streams();
    let driver = tokio::spawn(async move {
        connection.await.ok();
    });
    (send, driver, streams)
}

#[tokio::test]
async fn the_http2_stream_cap_is_announced() {
    let world = World::with(|c| c.limits.h2_max_concurrent_streams = 3).await;
    let (_send, driver, streams) = h2_connection(&world).await;
    assert_eq!(streams, 3);
    driver.abort();
}

#[tokio::test]
async fn an_oversized_http2_header_list_is_refused() {
    let world = World::with(|c| c.limits.max_header_bytes = 8 * 1024).await;
    let stream = world.tls(&[b"h2"]).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(format!("https://localhost:{}/healthz", world.server.addr.port()))
        .header("x-big", "a".repeat(20 * 1024))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    match sender.send_request(request).await {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    let mut client =
        Client::with_config(client_config(&world.pki.ca_der, &[b"h2"], rustls::DEFAULT_VERSIONS));
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
}

/// A port whose accept queue is full: connects to it hang, as to a host
/// that drops SYNs.
async fn blackhole() -> (tokio::net::TcpListener, Vec<TcpStream>, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Fill the queue; connects that still complete fast are queued ones.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    (listener, fillers, addr)
}

#[tokio::test]
async fn the_upstream_connect_timeout_acts() {
    let (_listener, _fillers, hole) = blackhole().await;
    let pki = crate::support::pki::TestPki::new();
    let server = crate::support::server::TestServer::start_with(
        &pki,
        &format!("https://127.0.0.1:{}/", hole.port()),
        "secret",
        |c| {
            c.limits.upstream_connect_timeout = SHORT;
            c.limits.upstream_timeout = LONG;
        },
    )
    .await;
    let mut client = Client::new(&pki.ca_der);
    let start = client.get(server.addr, "/get_token").await;
    let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let reply =
        tokio::time::timeout(WAIT, client.get(server.addr, &format!("/get_token?code=c&state={state}")))
            .await
            .unwrap();
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.json()["error_description"].as_str().unwrap().contains("connect"), "{}", reply.body);
}

#[tokio::test]
async fn the_upstream_body_cap_acts() {
    // A normal token answer is ~150 bytes: a 64-byte cap refuses it.
    let world = World::with(|c| c.limits.upstream_max_body = 64).await;
    let mut client = world.client();
    let reply = crate::support::complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.json()["error_description"].as_str().unwrap().contains("larger than 64 bytes"));
}

/// One address that keeps starting flows (each followed by its callback,
/// or by a refusal, which spends a state too) meets its own budget; a
/// second address still completes a flow, because the per-address budget
/// comes before the global one.
#[tokio::test]
async fn one_address_exhausts_its_budget_while_another_completes_a_flow() {
    let world = World::with_flags(&["--exchange-rate-per-client", "3", "--exchange-rate", "5"], |_| {}).await;
    let mut greedy = world.client();
    greedy.source = Some("127.0.0.2".parse().unwrap());
    for _ in 0..2 {
        assert_eq!(crate::support::complete_flow(&mut greedy, &world.server).await.status, 200);
    }
    // A refusal at Yandex with a real state is charged too.
    let start = greedy.get(world.server.addr, "/get_token").await;
    let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let denied =
        greedy.get(world.server.addr, &format!("/get_token?error=access_denied&state={state}")).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let refused = crate::support::complete_flow(&mut greedy, &world.server).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.json()["error_description"].as_str().unwrap().contains("from this address"),
        "{}",
        refused.body
    );
    assert!(refused.header("retry-after").is_some());
    let calls = world.fake.token_calls();
    // The global budget (5) has room left for somebody else.
    let mut neighbour = world.client();
    assert_eq!(crate::support::complete_flow(&mut neighbour, &world.server).await.status, 200);
    assert_eq!(world.fake.token_calls(), calls + 1);
}

/// What is left of an unread body is read for a bounded time only: a
/// sender that never stops cannot hold the connection (HTTP/1.1: the
/// lingering close ends) or the stream (HTTP/2: it is reset with NO_ERROR)
/// past the header-read timeout, after it got its answer.
#[tokio::test]
async fn an_endless_body_is_cut_off_after_its_answer() {
    let world = World::with(|c| c.limits.header_read_timeout = Duration::from_secs(1)).await;
    let chunk = vec![b'x'; 8 * 1024];

    let mut tls = world.tls(&[b"http/1.1"]).await;
    let head = format!(
        "POST /healthz HTTP/1.1\r\nHost: localhost:{}\r\nContent-Length: 100000000\r\n\r\n",
        world.server.addr.port()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&chunk).await.unwrap();
    let mut answer = [0u8; 12];
    tls.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 405");
    let started = std::time::Instant::now();
    let (mut read, mut write) = tokio::io::split(tls);
    let sender = tokio::spawn(async move {
        loop {
            if write.write_all(&[b'x'; 1024]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // The rest of the answer and close_notify come at once; the socket
    // stays open (lingering) while the client sends, for a second.
    assert!(closed_within(&mut read, WAIT).await, "no close_notify");
    tokio::time::timeout(WAIT, sender).await.expect("the lingering close never ended").unwrap();
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(900) && held < Duration::from_secs(5), "lingered {held:?}");

    let tls = world.tls(&[b"h2"]).await;
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut ready = send.ready().await.unwrap();
    let request = hyper::Request::post(format!("https://localhost:{}/healthz", world.server.addr.port()))
        .body(())
        .unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    stream.send_data(hyper::body::Bytes::from(chunk), false).unwrap();
    assert_eq!(response.await.unwrap().status(), 405);
    let started = std::time::Instant::now();
    let keep_sending = async {
        loop {
            stream.reserve_capacity(1024);
            if stream.send_data(hyper::body::Bytes::from_static(&[b'x'; 1024]), false).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, keep_sending).await.expect("the stream was held open");
    // The stream is reset with NO_ERROR; the connection stays.
    let reset =
        std::future::poll_fn(|cx| stream.poll_reset(cx)).await.expect("the stream, not the connection");
    assert_eq!(reset, h2::Reason::NO_ERROR);
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(900) && held < Duration::from_secs(5), "read on for {held:?}");
    // The same connection still serves.
    let mut again = ready.ready().await.expect("the connection is still open");
    let request = hyper::Request::get(format!("https://localhost:{}/healthz", world.server.addr.port()))
        .body(())
        .unwrap();
    let (response, _) = again.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}
