//! The systemd glue, owned rather than borrowed from a crate: socket
//! activation (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, fds mapped by
//! name) and `sd_notify` (`READY=1`, `RELOADING=1` with `MONOTONIC_USEC=`,
//! `STOPPING=1`, `STATUS=`), including the abstract `@` socket form. Both do
//! nothing when systemd did not ask for them. Also the one other process
//! setting a server needs from libc, the open-files limit. This module
//! holds the crate's only `unsafe` code.
#![allow(unsafe_code, reason = "adopting inherited fds, the monotonic clock and rlimits need libc")]

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use crate::error::StartupError;
use crate::server::Listeners;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The socket-activation variables, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// `LISTEN_PID`: the process the fds are meant for.
    pub pid: u32,
    /// `LISTEN_FDS`: how many fds, starting at 3.
    pub fds: u32,
    /// `LISTEN_FDNAMES`, split at `:`; may be shorter than `fds` or empty.
    pub names: Vec<String>,
}

impl Activation {
    /// Reads the variables through `env`; `None` when `LISTEN_FDS` is unset.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Activation>, String> {
        let Some(fds) = env("LISTEN_FDS") else { return Ok(None) };
        let fds = fds.parse().map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))?;
        let pid = env("LISTEN_PID").unwrap_or_default();
        let pid = pid.parse().map_err(|_| format!("LISTEN_PID={pid:?} is not a process id"))?;
        let names = env("LISTEN_FDNAMES")
            .map(|names| names.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Some(Activation { pid, fds, names }))
    }
}

/// The fds socket activation passed, by role.
#[derive(Debug, PartialEq, Eq)]
pub struct Assigned {
    /// `https`: serve the app.
    pub https: Vec<RawFd>,
    /// `http`: redirect to https.
    pub http: Option<RawFd>,
    /// `metrics`: plain-HTTP `/metrics`.
    pub metrics: Option<RawFd>,
}

/// Which listener each inherited fd becomes, by name: `https` fds serve the
/// app, the `http` fd redirects, the `metrics` fd serves `/metrics`. One
/// unnamed fd alone is taken as `https`.
pub fn assign_fds(activation: &Activation) -> Result<Assigned, String> {
    let mut https = Vec::new();
    let mut http = None;
    let mut metrics = None;
    let count = usize::try_from(activation.fds).map_err(|_| "LISTEN_FDS is too large".to_owned())?;
    if count > 64 {
        return Err(format!("LISTEN_FDS={count} is more sockets than yandex-token uses"));
    }
    for index in 0..count {
        let fd = LISTEN_FDS_START + index as RawFd;
        let name = activation.names.get(index).map(String::as_str).unwrap_or("");
        match name {
            "https" => https.push(fd),
            "http" if http.is_none() => http = Some(fd),
            "http" => return Err("more than one socket is named http".to_owned()),
            "metrics" if metrics.is_none() => metrics = Some(fd),
            "metrics" => return Err("more than one socket is named metrics".to_owned()),
            // systemd names sockets after their unit when unset.
            "" | "unknown" | "yandex-token.socket" if count == 1 => https.push(fd),
            other => {
                return Err(format!(
                    "socket {index} is named {other:?}: name sockets FileDescriptorName=https, =http or =metrics"
                ));
            }
        }
    }
    if https.is_empty() {
        return Err("systemd passed no socket named https".to_owned());
    }
    Ok(Assigned { https, http, metrics })
}

/// Takes over the sockets systemd passed, when they are meant for this
/// process, and clears the variables so no child inherits them. `None`
/// when not socket-activated (or the fds are another process's).
///
/// Call before any thread starts: it changes the process environment.
pub fn take_listeners(activation: Option<&Activation>) -> Result<Option<Listeners>, StartupError> {
    let Some(activation) = activation else { return Ok(None) };
    // SAFETY: called from `main`'s thread before the runtime or any other
    // thread exists, so nothing reads the environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if activation.pid != std::process::id() {
        return Ok(None);
    }
    let Assigned { https, http, metrics } =
        assign_fds(activation).map_err(|why| StartupError::msg(format!("socket activation: {why}")))?;
    let adopt = |fd: RawFd| -> Result<TcpListener, StartupError> {
        // SAFETY: systemd passed fds 3..3+LISTEN_FDS to this very process
        // (LISTEN_PID matched); each is adopted exactly once, here.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        listener.local_addr().map_err(|err| {
            StartupError::with(format!("socket activation: fd {fd} is not a listening TCP socket"), err)
        })?;
        Ok(listener)
    };
    Ok(Some(Listeners {
        https: https.into_iter().map(adopt).collect::<Result<_, _>>()?,
        http: http.map(adopt).transpose()?,
        metrics: metrics.map(adopt).transpose()?,
    }))
}

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

/// Raises the soft open-files limit to the hard limit, so a connection
/// flood meets the connection cap before it meets EMFILE. Returns the new
/// soft limit; errors (e.g. setrlimit filtered by seccomp) leave it as is.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that only raises the soft limit
        // up to the hard one, which an unprivileged process may do.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// `CLOCK_MONOTONIC` in microseconds, the clock `MONOTONIC_USEC=` is read on.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activation(fds: u32, names: &[&str]) -> Activation {
        Activation { pid: 1, fds, names: names.iter().map(|n| n.to_string()).collect() }
    }

    #[test]
    fn fds_are_mapped_by_name_in_any_order() {
        let assigned = |https: Vec<RawFd>, http, metrics| Ok(Assigned { https, http, metrics });
        assert_eq!(assign_fds(&activation(2, &["http", "https"])), assigned(vec![4], Some(3), None));
        assert_eq!(assign_fds(&activation(2, &["https", "http"])), assigned(vec![3], Some(4), None));
        assert_eq!(
            assign_fds(&activation(3, &["https", "http", "https"])),
            assigned(vec![3, 5], Some(4), None)
        );
        assert_eq!(
            assign_fds(&activation(3, &["metrics", "https", "http"])),
            assigned(vec![4], Some(5), Some(3))
        );
        assert!(assign_fds(&activation(3, &["https", "metrics", "metrics"])).is_err());
    }

    #[test]
    fn a_single_unnamed_fd_is_https() {
        let alone = Ok(Assigned { https: vec![3], http: None, metrics: None });
        assert_eq!(assign_fds(&activation(1, &[])), alone);
        assert_eq!(assign_fds(&activation(1, &["unknown"])), alone);
    }

    #[test]
    fn ambiguous_or_foreign_names_are_refused() {
        assert!(assign_fds(&activation(2, &[])).is_err());
        assert!(assign_fds(&activation(1, &["admin"])).unwrap_err().contains("admin"));
        assert!(assign_fds(&activation(1, &["metrics"])).unwrap_err().contains("https"));
        assert!(assign_fds(&activation(1, &["http"])).unwrap_err().contains("https"));
        assert!(assign_fds(&activation(2, &["http", "http"])).is_err());
    }

    #[test]
    fn variables_parse() {
        let env = |name: &str| match name {
            "LISTEN_FDS" => Some("2".to_owned()),
            "LISTEN_PID" => Some("42".to_owned()),
            "LISTEN_FDNAMES" => Some("https:http".to_owned()),
            _ => None,
        };
        assert_eq!(
            Activation::from_env(env),
            Ok(Some(Activation { pid: 42, fds: 2, names: vec!["https".into(), "http".into()] }))
        );
        assert_eq!(Activation::from_env(|_| None), Ok(None));
        assert!(Activation::from_env(|n| (n == "LISTEN_FDS").then(|| "x".to_owned())).is_err());
    }

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
    fn the_open_files_limit_ends_at_the_hard_limit() {
        let soft = raise_open_files_limit().unwrap();
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in raise_open_files_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!((soft, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
