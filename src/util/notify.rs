//! `sd_notify` by hand (a datagram of `KEY=value` lines to
//! `NOTIFY_SOCKET`, path or abstract `@` name): smaller and clearer than a
//! crate for five messages. Does nothing when systemd did not ask for it.
#![allow(unsafe_code, reason = "the monotonic clock for RELOADING=1 needs libc")]

use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

/// Sends `sd_notify` messages; does nothing at all without `NOTIFY_SOCKET`.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// A notifier for `NOTIFY_SOCKET`'s value (`/path` or `@abstract`).
    pub fn new(socket: Option<String>) -> Notifier {
        Notifier { socket: socket.filter(|s| s.starts_with('/') || s.starts_with('@')) }
    }

    /// Listeners bound and certificate loaded: ready to serve.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// Not ready yet (waiting for a certificate): says what for, and asks
    /// systemd for `extend` more time to start, since the wait is progress.
    pub fn waiting(&self, status: &str, extend: std::time::Duration) {
        self.send(&format!("STATUS={status}\nEXTEND_TIMEOUT_USEC={}", extend.as_micros()));
    }

    /// A new status line while serving.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    /// A reload starts; systemd waits for the next `READY=1`.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing in-flight requests");
    }

    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(err) = send_to(socket, message) {
            crate::warn!("sd_notify to {socket} failed: {err}");
        }
    }
}

fn send_to(socket: &str, message: &str) -> std::io::Result<()> {
    let addr = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            UnixAddr::from_abstract_name(name.as_bytes())?
        }
        None => UnixAddr::from_pathname(socket)?,
    };
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr).map(drop)
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_an_abstract_socket() {
        let name = format!("yandex-token-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let receiver =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        Notifier::new(Some(format!("@{name}"))).ready("serving");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
