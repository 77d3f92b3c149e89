//! A new-connection load generator for `bench/run.sh`, cheaper per
//! connection than wrk: wrk's OpenSSL 3 client spends about 430 us of its one
//! core on each new connection, so wrk, not the server, sets the rate that
//! `wrk -H 'Connection: close'` reports once a server needs less. This one
//! does what wrk does there (a TLS 1.3 handshake, resumed with the last
//! ticket when it can; `GET PATH` with `Connection: close`; the answer read
//! to the end; close_notify back) with rustls on one thread, so the figure
//! it prints is set by the server.
//!
//!   cargo run --release --example handshakes -- 127.0.0.1:8443 CA.pem PATH CONNECTIONS SECONDS
//!
//! Prints `connections/s N failed M`. The certificate is verified against
//! CA.pem on every full handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

fn usage() -> ! {
    eprintln!("usage: handshakes ADDR CA.pem PATH CONNECTIONS SECONDS");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ca, path, connections, seconds] = &args[..] else { usage() };
    let addr: SocketAddr = addr.parse().unwrap_or_else(|_| usage());
    let connections: usize = connections.parse().unwrap_or_else(|_| usage());
    let seconds: u64 = seconds.parse().unwrap_or_else(|_| usage());
    let mut tls = common::client_config(ca).unwrap_or_else(|_| usage());
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let request: Arc<[u8]> =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes().into();

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let loops: Vec<_> = (0..connections)
        .map(|_| {
            // Like each of wrk's connections, each loop resumes with the
            // ticket its own last connection got. (A shared store would
            // hold 8 tickets for 64 loops; the rest would do full handshakes.)
            let mut tls = tls.clone();
            tls.resumption = rustls::client::Resumption::in_memory_sessions(4);
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
            let (request, done, failed) = (request.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let counter = if one(addr, &connector, &request).await { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in loops {
        task.await.ok();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "connections/s {:.0} failed {}",
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
}

/// One connection: handshake, request, the whole answer, close_notify.
/// True when a redirect (the answer both benchmarked servers give) came back.
async fn one(addr: SocketAddr, connector: &tokio_rustls::TlsConnector, request: &[u8]) -> bool {
    let Ok(tcp) = TcpStream::connect(addr).await else { return false };
    tcp.set_nodelay(true).ok();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("a valid name");
    let Ok(mut tls) = connector.connect(name, tcp).await else { return false };
    if tls.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::with_capacity(2048);
    // A server that closes without close_notify ends this with an error;
    // the answer counts if its head arrived.
    tls.read_to_end(&mut answer).await.ok();
    tls.shutdown().await.ok();
    answer.starts_with(b"HTTP/1.1 3")
}
