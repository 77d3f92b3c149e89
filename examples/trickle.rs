//! Server CPU per received byte when a peer trickles TLS records one byte
//! at a time (issue 16): records of 16 B to 16 KiB, and a 64 KiB
//! ClientHello over four records. The server's TLS stream runs in process
//! over a transport that hands it exactly one byte per read, so every
//! byte is a separate read, as one byte per TCP segment would be; its
//! thread's CPU time is measured around the whole handshake attempt (the
//! bytes are a well-formed record layer around a bogus ClientHello, so it
//! ends in an alert once the last byte is in). A linear record path shows
//! the same nanoseconds per byte for every size.
//!
//! `cargo run --release --example trickle`

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yandex_token::tls::stream::TlsStream;

/// A transport that yields `bytes` one per read and swallows writes.
struct OneByteAtATime {
    bytes: Vec<u8>,
    at: usize,
}

impl AsyncRead for OneByteAtATime {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(&byte) = self.bytes.get(self.at) {
            buf.put_slice(&[byte]);
            self.at += 1;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for OneByteAtATime {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A handshake message of `length` bytes (a ClientHello header, then
/// zeros) split into records of at most 16 KiB.
fn records(length: usize) -> Vec<u8> {
    let mut message = vec![1, (length >> 16) as u8, (length >> 8) as u8, length as u8];
    message.resize(4 + length, 0);
    let mut wire = Vec::new();
    for fragment in message.chunks(16 * 1024) {
        wire.extend_from_slice(&[22, 3, 1, (fragment.len() >> 8) as u8, fragment.len() as u8]);
        wire.extend_from_slice(fragment);
    }
    wire
}

fn thread_cpu_nanos() -> u128 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
}

fn main() {
    let config = server_config();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    println!("{:>28} {:>10} {:>12} {:>10}", "input", "bytes", "server CPU", "ns/byte");
    let cases: Vec<(String, usize)> = [16, 256, 1024, 4096, 16 * 1024 - 4]
        .into_iter()
        .map(|length| (format!("one record, {} B", length + 4), length))
        .chain(std::iter::once(("ClientHello of 64 KiB, 4 records".to_owned(), 0xffff)))
        .collect();
    for (label, length) in cases {
        let wire = records(length);
        let bytes = wire.len();
        // The best of three runs: the least disturbed by the machine.
        let best = (0..3)
            .map(|_| {
                let io = OneByteAtATime { bytes: wire.clone(), at: 0 };
                let started = thread_cpu_nanos();
                let outcome = runtime.block_on(TlsStream::accept(io, config.clone(), Vec::new()));
                assert!(outcome.is_err(), "a bogus ClientHello is refused");
                thread_cpu_nanos() - started
            })
            .min()
            .unwrap();
        println!(
            "{label:>28} {bytes:>10} {:>9.2} ms {:>10.1}",
            best as f64 / 1e6,
            best as f64 / bytes as f64
        );
    }
}

fn server_config() -> Arc<rustls::ServerConfig> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let pair = yandex_token::tls::certified_key(vec![made.cert.der().clone()], key).unwrap();
    yandex_token::tls::server_config(Arc::new(yandex_token::tls::CertResolver::new(pair, None))).unwrap()
}
