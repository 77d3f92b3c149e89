//! [`RecentLogins`]: the logins this server started in the last two
//! minutes, by state. A browser that sends the same state again (a double
//! click on the paste form cancels the first POST; a reload of the
//! callback) gets the first login's outcome instead of "state already
//! used". The state is kept only as a hash; the caller has already proved
//! the flow cookie is this browser's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::keeper::login::Login;

/// How long a login's outcome is kept for a retry.
const KEEP_FOR: Duration = Duration::from_secs(120);
/// At most this many are kept; the oldest go first.
const CAP: usize = 256;

/// The recent logins, oldest first.
#[derive(Debug, Default)]
pub struct RecentLogins {
    logins: Mutex<VecDeque<([u8; 32], Instant, Login)>>,
}

impl RecentLogins {
    /// Remembers the login started for `state`.
    pub fn add(&self, state: &str, login: Login) {
        let mut logins = self.lock();
        prune(&mut logins);
        if logins.len() >= CAP {
            logins.pop_front();
        }
        logins.push_back((key(state), Instant::now(), login));
    }

    /// The login started for `state`, if it is recent.
    pub fn find(&self, state: &str) -> Option<Login> {
        let mut logins = self.lock();
        prune(&mut logins);
        let key = key(state);
        logins.iter().find(|(k, _, _)| *k == key).map(|(_, _, login)| login.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<([u8; 32], Instant, Login)>> {
        self.logins.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

fn prune(logins: &mut VecDeque<([u8; 32], Instant, Login)>) {
    while logins.front().is_some_and(|(_, at, _)| at.elapsed() >= KEEP_FOR) {
        logins.pop_front();
    }
}

fn key(state: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, state.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}
