//! Bounds on token exchanges: every exchange posts our client secret to
//! Yandex, and states cost strangers nothing to mint, so how many run at
//! once, how many start per minute from one client address, and how many
//! per minute over all clients are capped. The per-address budget comes
//! first, so one address cannot use up the global one for everybody; a
//! refusal at Yandex (`?error=…&state=…`) spends a state too and is
//! charged the same. Past any cap, the caller answers 429 and Yandex is
//! not called.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The length of the rate windows.
const WINDOW: Duration = Duration::from_secs(60);

/// A window: when it started and what was counted in it.
type Window = (Instant, usize);

/// The caps and their state.
#[derive(Debug)]
pub struct ExchangeLimits {
    running: Arc<Semaphore>,
    per_minute: usize,
    per_client: usize,
    /// The global window, and one per client address seen in the last
    /// minute. The map holds only addresses that were counted, and every
    /// count passed the global cap, so it never holds more than
    /// `per_minute` live entries; older ones are dropped as it is used.
    windows: Mutex<(Window, HashMap<ClientKey, Window>)>,
}

/// Why an exchange may not start now, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// Seconds until a retry can succeed (`Retry-After`).
    pub retry_after: u64,
    /// Which cap was hit, for the answer.
    pub reason: &'static str,
}

/// A client address as the budget sees it: IPv4 whole, IPv6 by its /64
/// (one host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(addr: IpAddr) -> ClientKey {
        match addr {
            IpAddr::V4(v4) => ClientKey::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.to_bits()),
                None => ClientKey::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

impl ExchangeLimits {
    /// At most `at_once` running, `per_minute` started per minute over all
    /// clients and `per_client` per minute from one address.
    pub fn new(at_once: usize, per_minute: usize, per_client: usize) -> ExchangeLimits {
        ExchangeLimits {
            running: Arc::new(Semaphore::new(at_once.max(1))),
            per_minute: per_minute.max(1),
            per_client: per_client.max(1),
            windows: Mutex::new(((Instant::now(), 0), HashMap::new())),
        }
    }

    /// A slot for one running exchange, held until dropped.
    pub fn slot(&self) -> Result<OwnedSemaphorePermit, Busy> {
        self.running
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy { retry_after: 1, reason: "too many token exchanges are running" })
    }

    /// Whether the rates allow one more exchange from `client` now,
    /// without counting it: the client's budget first, then the global one.
    pub fn check_rate(&self, client: Option<IpAddr>) -> Result<(), Busy> {
        let mut windows = self.lock();
        let (global, clients) = &mut *windows;
        roll(global);
        if let Some(window) = client.and_then(|client| clients.get_mut(&ClientKey::from(client))) {
            roll(window);
            if window.1 >= self.per_client {
                return Err(Busy {
                    retry_after: seconds_left(window),
                    reason: "too many token exchanges from this address this minute",
                });
            }
        }
        if global.1 >= self.per_minute {
            return Err(Busy {
                retry_after: seconds_left(global),
                reason: "too many token exchanges this minute",
            });
        }
        Ok(())
    }

    /// Counts one exchange (or refusal) from `client` against the rates.
    pub fn count(&self, client: Option<IpAddr>) {
        let mut windows = self.lock();
        let (global, clients) = &mut *windows;
        roll(global);
        global.1 += 1;
        clients.retain(|_, window| window.0.elapsed() < WINDOW);
        if let Some(client) = client {
            let window = clients.entry(ClientKey::from(client)).or_insert((Instant::now(), 0));
            window.1 += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Window, HashMap<ClientKey, Window>)> {
        self.windows.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Starts a new window when the current one is over.
fn roll(window: &mut Window) {
    if window.0.elapsed() >= WINDOW {
        *window = (Instant::now(), 0);
    }
}

fn seconds_left(window: &Window) -> u64 {
    WINDOW.saturating_sub(window.0.elapsed()).as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_come_back() {
        let limits = ExchangeLimits::new(2, 100, 100);
        let first = limits.slot().unwrap();
        let _second = limits.slot().unwrap();
        assert_eq!(limits.slot().unwrap_err().retry_after, 1);
        drop(first);
        assert!(limits.slot().is_ok());
    }

    #[test]
    fn the_rate_counts_only_what_is_counted() {
        let limits = ExchangeLimits::new(8, 3, 100);
        for _ in 0..3 {
            limits.check_rate(None).unwrap();
            limits.check_rate(None).unwrap();
            limits.count(None);
        }
        let busy = limits.check_rate(None).unwrap_err();
        assert!((1..=60).contains(&busy.retry_after), "{busy:?}");
    }

    #[test]
    fn one_address_spends_its_own_budget_not_everybodys() {
        let limits = ExchangeLimits::new(8, 10, 3);
        let greedy: IpAddr = "203.0.113.7".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:1:2::99".parse().unwrap();
        let same_host: IpAddr = "2001:db8:1:2::1234".parse().unwrap();
        for _ in 0..3 {
            limits.check_rate(Some(greedy)).unwrap();
            limits.count(Some(greedy));
        }
        assert!(limits.check_rate(Some(greedy)).unwrap_err().reason.contains("this address"));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert!(limits.check_rate(Some(mapped)).is_err(), "the same IPv4 address, mapped");
        for _ in 0..3 {
            limits.check_rate(Some(neighbour)).unwrap();
            limits.count(Some(same_host));
        }
        assert!(limits.check_rate(Some(neighbour)).is_err(), "one /64 is one client");
        limits.check_rate(Some("198.51.100.1".parse().unwrap())).unwrap();
    }
}
