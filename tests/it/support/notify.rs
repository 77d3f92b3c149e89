//! A stand-in for systemd's notify socket: receives sd_notify datagrams
//! on an abstract Unix socket, so tests can read READY=1 and STATUS=.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Receives sd_notify datagrams on an abstract socket.
pub struct NotifyReceiver {
    socket: UnixDatagram,
    name: String,
}

impl NotifyReceiver {
    pub fn new() -> NotifyReceiver {
        let name = format!("yandex-token-it-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let socket =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        NotifyReceiver { socket, name }
    }

    pub fn env_value(&self) -> String {
        format!("@{}", self.name)
    }

    pub fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("an sd_notify message in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}
