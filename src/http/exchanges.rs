//! Bounds on token exchanges: every exchange posts our client secret to
//! Yandex, and states cost strangers nothing to mint, so how many run at
//! once and how many start per minute (over all clients) are capped. Past
//! either, the caller answers 429 and Yandex is not called.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The length of the rate window.
const WINDOW: Duration = Duration::from_secs(60);

/// The two caps and their state.
#[derive(Debug)]
pub struct ExchangeLimits {
    running: Arc<Semaphore>,
    per_minute: usize,
    /// The current window's start and the exchanges started in it.
    window: Mutex<(Instant, usize)>,
}

/// Why an exchange may not start now, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// Seconds until a retry can succeed (`Retry-After`).
    pub retry_after: u64,
    /// Which cap was hit, for the answer.
    pub reason: &'static str,
}

impl ExchangeLimits {
    /// At most `at_once` running and `per_minute` started per minute.
    pub fn new(at_once: usize, per_minute: usize) -> ExchangeLimits {
        ExchangeLimits {
            running: Arc::new(Semaphore::new(at_once.max(1))),
            per_minute: per_minute.max(1),
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// A slot for one running exchange, held until dropped.
    pub fn slot(&self) -> Result<OwnedSemaphorePermit, Busy> {
        self.running
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy { retry_after: 1, reason: "too many token exchanges are running" })
    }

    /// Whether the rate allows one more exchange now, without counting it.
    pub fn check_rate(&self) -> Result<(), Busy> {
        let mut window = self.lock();
        self.roll(&mut window);
        if window.1 < self.per_minute {
            Ok(())
        } else {
            let left = WINDOW.saturating_sub(window.0.elapsed()).as_secs().max(1);
            Err(Busy { retry_after: left, reason: "too many token exchanges this minute" })
        }
    }

    /// Counts one exchange against the rate.
    pub fn count(&self) {
        let mut window = self.lock();
        self.roll(&mut window);
        window.1 += 1;
    }

    fn roll(&self, window: &mut (Instant, usize)) {
        if window.0.elapsed() >= WINDOW {
            *window = (Instant::now(), 0);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Instant, usize)> {
        self.window.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_come_back() {
        let limits = ExchangeLimits::new(2, 100);
        let first = limits.slot().unwrap();
        let _second = limits.slot().unwrap();
        assert_eq!(limits.slot().unwrap_err().retry_after, 1);
        drop(first);
        assert!(limits.slot().is_ok());
    }

    #[test]
    fn the_rate_counts_only_what_is_counted() {
        let limits = ExchangeLimits::new(8, 3);
        for _ in 0..3 {
            limits.check_rate().unwrap();
            limits.check_rate().unwrap();
            limits.count();
        }
        let busy = limits.check_rate().unwrap_err();
        assert!((1..=60).contains(&busy.retry_after), "{busy:?}");
    }
}
