//! A slow-connection flood, for `bench/flood.sh`: holds N connections open
//! against a TLS server, half of them stuck mid-handshake (a ClientHello
//! that never ends) and half slowloris (a finished handshake, then a request
//! head sent a byte at a time). A connection the server closes is opened
//! again, so the pressure stays at N. Prints one status line per second.
//!
//!   cargo run --release --example flood -- 127.0.0.1:8443 CA.pem 10000 60 [mixed|idle|handshake]
//!
//! `idle` holds finished TLS handshakes that send nothing (for the
//! per-connection memory figure); `handshake` only half-finished ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;

#[derive(Default)]
struct Counters {
    held: AtomicUsize,
    opened: AtomicUsize,
    closed_by_server: AtomicUsize,
}

fn usage() -> ! {
    eprintln!("usage: flood ADDR CA.pem CONNECTIONS SECONDS [mixed|idle|handshake]");
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 && args.len() != 5 {
        usage();
    }
    let mode = args.get(4).cloned().unwrap_or_else(|| "mixed".to_owned());
    let addr: SocketAddr = args[0].parse().unwrap_or_else(|_| usage());
    let connections: usize = args[2].parse().unwrap_or_else(|_| usage());
    let seconds: u64 = args[3].parse().unwrap_or_else(|_| usage());

    let mut tls = common::client_config(&args[1]).unwrap_or_else(|_| usage());
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let counters = Arc::new(Counters::default());

    for index in 0..connections {
        let counters = counters.clone();
        let connector = connector.clone();
        let mode = mode.clone();
        tokio::spawn(async move {
            loop {
                counters.opened.fetch_add(1, Ordering::Relaxed);
                match (mode.as_str(), index % 2) {
                    ("idle", _) => idle(addr, &connector, &counters).await,
                    ("handshake", _) | ("mixed", 0) => half_handshake(addr, &counters).await,
                    _ => slowloris(addr, &connector, &counters).await,
                }
                counters.closed_by_server.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // Ramp up without a SYN storm.
        if index % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for second in 1..=seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "t={second}s held={} opened={} closed_by_server={}",
            counters.held.load(Ordering::Relaxed),
            counters.opened.load(Ordering::Relaxed),
            counters.closed_by_server.load(Ordering::Relaxed)
        );
    }
}

/// Counts a connection as held while alive.
struct Held<'a>(&'a Counters);

impl<'a> Held<'a> {
    fn new(counters: &'a Counters) -> Held<'a> {
        counters.held.fetch_add(1, Ordering::Relaxed);
        Held(counters)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TLS record header promising a long ClientHello, then a byte now and then.
async fn half_handshake(addr: SocketAddr, counters: &Counters) {
    let Ok(mut tcp) = TcpStream::connect(addr).await else { return };
    let _held = Held::new(counters);
    if tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if tcp.write_all(&[0x03]).await.is_err() {
            return;
        }
    }
}

/// A real handshake, then a request head that never ends, a byte a second.
async fn slowloris(addr: SocketAddr, connector: &tokio_rustls::TlsConnector, counters: &Counters) {
    let Ok(tcp) = TcpStream::connect(addr).await else { return };
    let _held = Held::new(counters);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else { return };
    let head = b"GET /get_token HTTP/1.1\r\nHost: localhost\r\n";
    for byte in head.iter().chain(b"X-Slow: ".iter()).chain(std::iter::repeat(&b'a')) {
        if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A finished handshake, then silence.
async fn idle(addr: SocketAddr, connector: &tokio_rustls::TlsConnector, counters: &Counters) {
    let Ok(tcp) = TcpStream::connect(addr).await else { return };
    let _held = Held::new(counters);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else { return };
    let mut buf = [0u8; 1];
    // Returns when the server closes the connection.
    tokio::io::AsyncReadExt::read(&mut tls, &mut buf).await.ok();
}
