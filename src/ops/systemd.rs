//! Socket activation by hand (smaller and clearer than a crate): the fds
//! that `config::Activation` describes, mapped to listeners by name. Also
//! the one other process setting a server needs from libc, the open-files
//! limit. (`sd_notify` is `util::notify`.)
#![allow(unsafe_code, reason = "adopting inherited fds, the monotonic clock and rlimits need libc")]

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use crate::config::Activation;
use crate::http::server::Listeners;
use crate::util::error::StartupError;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

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
    fn the_open_files_limit_ends_at_the_hard_limit() {
        let soft = raise_open_files_limit().unwrap();
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in raise_open_files_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!((soft, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }
}
