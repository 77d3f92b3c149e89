//! Authorization flows in progress: each `state` maps to its PKCE verifier,
//! is bound to the browser that started it (a random id in a `__Host-`
//! cookie), is single use, and expires. Memory is bounded: a few flows per
//! browser and a global cap, the oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::secret::Secret;

/// Why a callback's state was refused. The text goes to the browser.
pub type Refusal = &'static str;

struct Flow {
    seq: u64,
    state: Secret<String>,
    verifier: Secret<String>,
    created: Instant,
}

#[derive(Default)]
struct Inner {
    browsers: HashMap<Arc<str>, VecDeque<Flow>>,
    /// Every flow in creation order, for expiry and the global cap. Entries
    /// of flows already taken stay until they reach the front.
    order: VecDeque<(u64, Instant, Arc<str>)>,
    flows: usize,
    next_seq: u64,
}

/// The store of flows in progress. Cheap to share: one short lock per call.
pub struct PendingStates {
    inner: Mutex<Inner>,
    ttl: Duration,
    per_browser: usize,
    total: usize,
}

impl std::fmt::Debug for PendingStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // States and verifiers are secrets: only the count is shown.
        f.debug_struct("PendingStates").field("flows", &self.len()).finish_non_exhaustive()
    }
}

impl PendingStates {
    /// A store where flows live `ttl`, at most `per_browser` per browser and
    /// `total` in all.
    pub fn new(ttl: Duration, per_browser: usize, total: usize) -> PendingStates {
        PendingStates {
            inner: Mutex::new(Inner::default()),
            ttl,
            per_browser: per_browser.max(1),
            total: total.max(1),
        }
    }

    /// Records a new flow for `browser`, evicting that browser's oldest flow
    /// past the per-browser cap and the oldest flows past the global cap.
    pub fn insert(&self, browser: &str, state: Secret<String>, verifier: Secret<String>, now: Instant) {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let key: Arc<str> = match inner.browsers.get_key_value(browser) {
            Some((key, _)) => key.clone(),
            None => Arc::from(browser),
        };
        let flows = inner.browsers.entry(key.clone()).or_default();
        let mut evicted = 0;
        while flows.len() >= self.per_browser {
            flows.pop_front();
            evicted += 1;
        }
        flows.push_back(Flow { seq, state, verifier, created: now });
        inner.flows = inner.flows + 1 - evicted;
        inner.order.push_back((seq, now, key));
        while inner.flows > self.total {
            Self::pop_oldest(&mut inner);
        }
        // Taken or evicted flows leave entries in `order`; compact before
        // they can outgrow the flows themselves.
        if inner.order.len() > 2 * self.total {
            let Inner { browsers, order, .. } = &mut *inner;
            order.retain(|(seq, _, browser)| {
                browsers.get(browser).is_some_and(|flows| flows.iter().any(|f| f.seq == *seq))
            });
        }
    }

    /// Consumes the flow `state` of `browser` and returns its PKCE verifier.
    /// Unknown, reused, expired and other browsers' states are refused.
    pub fn take(&self, browser: &str, state: &str, now: Instant) -> Result<Secret<String>, Refusal> {
        let mut inner = self.lock();
        let flows = inner.browsers.get_mut(browser).ok_or(
            "unknown state for this browser: start again at /get_token in the same browser, with cookies enabled",
        )?;
        let index = flows
            .iter()
            .position(|flow| flow.state.expose() == state)
            .ok_or("unknown or already used state: start again at /get_token")?;
        let flow = flows.remove(index).expect("index is in range");
        if flows.is_empty() {
            inner.browsers.remove(browser);
        }
        inner.flows -= 1;
        if now.saturating_duration_since(flow.created) >= self.ttl {
            return Err("the state has expired (flows last 10 minutes): start again at /get_token");
        }
        Ok(flow.verifier)
    }

    /// Drops `state` if it is `browser`'s, without saying whether it was.
    pub fn discard(&self, browser: &str, state: &str) {
        let mut inner = self.lock();
        if let Some(flows) = inner.browsers.get_mut(browser) {
            if let Some(index) = flows.iter().position(|flow| flow.state.expose() == state) {
                flows.remove(index);
                if flows.is_empty() {
                    inner.browsers.remove(browser);
                }
                inner.flows -= 1;
            }
        }
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.lock().flows
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn sweep(&self, inner: &mut Inner, now: Instant) {
        while let Some((_, created, _)) = inner.order.front() {
            if now.saturating_duration_since(*created) < self.ttl {
                break;
            }
            Self::pop_oldest(inner);
        }
    }

    /// Removes the front of `order` and, if it is still held, its flow.
    fn pop_oldest(inner: &mut Inner) {
        let Some((seq, _, browser)) = inner.order.pop_front() else { return };
        if let Some(flows) = inner.browsers.get_mut(&browser) {
            // A browser's flows are in creation order, so a live flow for
            // this entry can only be at the front.
            if flows.front().is_some_and(|flow| flow.seq == seq) {
                flows.pop_front();
                inner.flows -= 1;
                if flows.is_empty() {
                    inner.browsers.remove(&browser);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    fn store() -> PendingStates {
        PendingStates::new(TTL, 3, 5)
    }

    #[test]
    fn a_state_is_taken_once() {
        let pending = store();
        let now = Instant::now();
        pending.insert("b1", Secret::new("s1".into()), Secret::new("v1".into()), now);
        assert_eq!(pending.take("b1", "s1", now), Ok(Secret::new("v1".to_owned())));
        assert!(pending.take("b1", "s1", now).is_err());
        assert!(pending.is_empty());
    }

    #[test]
    fn another_browser_cannot_take_it() {
        let pending = store();
        let now = Instant::now();
        pending.insert("b1", Secret::new("s1".into()), Secret::new("v1".into()), now);
        assert!(pending.take("b2", "s1", now).is_err());
        assert_eq!(pending.take("b1", "s1", now), Ok(Secret::new("v1".to_owned())));
    }

    #[test]
    fn expired_states_are_refused() {
        let pending = store();
        let now = Instant::now();
        pending.insert("b1", Secret::new("s1".into()), Secret::new("v1".into()), now);
        let err = pending.take("b1", "s1", now + TTL).unwrap_err();
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn expired_states_are_swept_on_insert() {
        let pending = store();
        let now = Instant::now();
        pending.insert("b1", Secret::new("s1".into()), Secret::new("v1".into()), now);
        pending.insert("b2", Secret::new("s2".into()), Secret::new("v2".into()), now + TTL);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn two_tabs_both_complete() {
        let pending = store();
        let now = Instant::now();
        pending.insert("b1", Secret::new("s1".into()), Secret::new("v1".into()), now);
        pending.insert("b1", Secret::new("s2".into()), Secret::new("v2".into()), now);
        assert_eq!(pending.take("b1", "s2", now), Ok(Secret::new("v2".to_owned())));
        assert_eq!(pending.take("b1", "s1", now), Ok(Secret::new("v1".to_owned())));
    }

    #[test]
    fn per_browser_cap_evicts_the_oldest() {
        let pending = store();
        let now = Instant::now();
        for i in 0..4 {
            pending.insert("b1", Secret::new(format!("s{i}")), Secret::new(format!("v{i}")), now);
        }
        assert_eq!(pending.len(), 3);
        assert!(pending.take("b1", "s0", now).is_err());
        assert_eq!(pending.take("b1", "s3", now), Ok(Secret::new("v3".to_owned())));
    }

    #[test]
    fn global_cap_evicts_the_oldest() {
        let pending = store();
        let now = Instant::now();
        for i in 0..7 {
            pending.insert(&format!("b{i}"), Secret::new(format!("s{i}")), Secret::new(format!("v{i}")), now);
        }
        assert_eq!(pending.len(), 5);
        assert!(pending.take("b0", "s0", now).is_err());
        assert!(pending.take("b1", "s1", now).is_err());
        assert_eq!(pending.take("b6", "s6", now), Ok(Secret::new("v6".to_owned())));
    }

    #[test]
    fn the_order_queue_stays_bounded_under_one_browser_flood() {
        let pending = store();
        let now = Instant::now();
        for i in 0..1000 {
            pending.insert("b1", Secret::new(format!("s{i}")), Secret::new("v".into()), now);
        }
        assert_eq!(pending.len(), 3);
        assert!(pending.lock().order.len() <= 2 * 5 + 1);
    }
}
