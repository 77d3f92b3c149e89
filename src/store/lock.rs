//! [`StoreLock`]: the token directory's advisory lock (`flock(2)` on the
//! directory itself). Every read-modify-write of the store holds it, in
//! this process and every other (`serve`, `refresh`, `status`, `login`),
//! so two writers never interleave. It is released when dropped, and by
//! the kernel when the process dies.
#![allow(unsafe_code, reason = "flock(2) needs libc")]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Proof that the token directory is locked; the lock goes with it.
#[derive(Debug)]
pub struct StoreLock {
    _dir: File,
}

impl StoreLock {
    /// Waits for the exclusive lock on `dir`, which must exist. A lock is
    /// per open file, so two holders in one process exclude each other too.
    pub fn acquire(dir: &Path) -> io::Result<StoreLock> {
        let file = File::open(dir)?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(StoreLock { _dir: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let _second = StoreLock::acquire(&path).unwrap();
            tx.send(()).unwrap();
        });
        // The second holder cannot have the lock while the first holds it.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
