//! Startup time, for `bench/run.sh`: runs a server command and measures the
//! time from exec to its first HTTPS answer on 127.0.0.1:PORT.
//!
//!   cargo run --release --example startup -- PORT CA.pem -- yandex-token serve ...
//!
//! Prints milliseconds. Polls every 100 µs; the TLS client verifies the
//! certificate against CA.pem.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").expect("usage: startup PORT CA.pem -- COMMAND...");
    let port: u16 = args[0].parse().expect("a port");
    let config = Arc::new(common::client_config(&args[1]).expect("a CA file"));
    let command = &args[split + 1..];
    let started = Instant::now();
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    let answered = loop {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().ok();
            panic!("no answer within 10 s");
        }
        if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) {
            let mut tls =
                rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
            let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
            let mut answer = [0u8; 12];
            if stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .is_ok()
                && stream.read_exact(&mut answer).is_ok()
                && answer.starts_with(b"HTTP/1.1 ")
            {
                break started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    println!("{:.2}", answered.as_secs_f64() * 1000.0);
    // SIGTERM, so a master process (nginx) takes its workers with it.
    std::process::Command::new("kill").arg(child.id().to_string()).status().ok();
    child.wait().ok();
}
