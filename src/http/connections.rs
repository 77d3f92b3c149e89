//! What each connection is doing, so the server can enforce the limits
//! hyper does not: the header-read timeout (first byte, or connection start,
//! to a complete request head), the idle keep-alive timeout (between
//! requests), and shedding at the connection cap: the oldest connection that
//! has not yet sent a complete request goes first, so a flood of slow
//! connections cannot lock a real user out.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// "No time recorded" in the millisecond fields.
const NONE: u64 = u64::MAX;

/// One connection's activity, shared by its reader, its request handlers,
/// its watchdog and the shedder.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// Requests being handled now.
    in_flight: AtomicU32,
    /// Whether any request head was ever completed on this connection.
    served: AtomicBool,
    /// Milliseconds after `started` when bytes of a request head began to
    /// arrive (0 at the start: the first request must come promptly).
    head_since: AtomicU64,
    /// Milliseconds after `started` when the last response was handed over.
    last_done: AtomicU64,
    /// Signalled to shed this connection.
    shed: Notify,
}

/// Why a connection's watchdog closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took longer than the header-read timeout.
    HeaderRead,
    /// Nothing was sent for longer than the idle timeout.
    Idle,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            head_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            shed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Bytes arrived: if no request head is under way, one starts now.
    pub fn bytes_read(&self) {
        let now = self.now_ms();
        self.head_since.compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed).ok();
    }

    /// A complete request head arrived; the guard marks the response handed over.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// When the watchdog must look next, and what expires then. `None`
    /// while a request is being handled: its own timeouts bound it.
    pub fn deadline(&self, header_read: Duration, idle: Duration) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Relaxed) {
            NONE => Some((self.at(self.last_done.load(Ordering::Relaxed)) + idle, Expiry::Idle)),
            since => Some((self.at(since) + header_read, Expiry::HeaderRead)),
        }
    }

    /// Resolves when the shedder picks this connection.
    pub async fn shed(&self) {
        self.shed.notified().await;
    }
}

/// Held while a request is handled; dropping it records the time.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.last_done.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every connection that has not completed a request yet, oldest first.
#[derive(Debug)]
pub struct Tracker {
    unserved: Mutex<VecDeque<Weak<Activity>>>,
    max: usize,
}

impl Tracker {
    /// A tracker for a server holding at most `max` connections.
    pub fn new(max: usize) -> Tracker {
        Tracker { unserved: Mutex::new(VecDeque::new()), max: max.max(1) }
    }

    /// Records a new connection.
    pub fn register(&self) -> Arc<Activity> {
        let activity = Arc::new(Activity::new());
        let mut unserved = self.lock();
        // Entries of served or closed connections are dropped lazily; keep
        // the queue from outgrowing the connections themselves.
        if unserved.len() >= 2 * self.max {
            unserved.retain(|weak| weak.upgrade().is_some_and(|a| !a.served.load(Ordering::Relaxed)));
        }
        unserved.push_back(Arc::downgrade(&activity));
        activity
    }

    /// Tells the oldest connection that has not completed a request to
    /// close. Returns whether there was one.
    pub fn shed_oldest(&self) -> bool {
        let mut unserved = self.lock();
        while let Some(weak) = unserved.pop_front() {
            if let Some(activity) = weak.upgrade() {
                if !activity.served.load(Ordering::Relaxed) {
                    activity.shed.notify_one();
                    return true;
                }
            }
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<Activity>>> {
        self.unserved.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A stream that reports reads to its connection's [`Activity`].
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        poll
    }
}

/// Writes pass straight through.
impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_connection_must_send_a_head_within_the_header_timeout() {
        let activity = Arc::new(Activity::new());
        let (at, why) = activity.deadline(SECOND, 60 * SECOND).unwrap();
        assert_eq!(why, Expiry::HeaderRead);
        assert!(at <= Instant::now() + SECOND);
    }

    #[test]
    fn between_requests_the_idle_timeout_applies_until_bytes_arrive() {
        let activity = Arc::new(Activity::new());
        let guard = activity.request_started();
        assert_eq!(activity.deadline(SECOND, 60 * SECOND), None, "a request is in flight");
        drop(guard);
        assert_eq!(activity.deadline(SECOND, 60 * SECOND).unwrap().1, Expiry::Idle);
        activity.bytes_read();
        assert_eq!(activity.deadline(SECOND, 60 * SECOND).unwrap().1, Expiry::HeaderRead);
    }

    #[test]
    fn shedding_picks_the_oldest_unserved_connection() {
        let tracker = Tracker::new(10);
        let oldest = tracker.register();
        let served = tracker.register();
        let newest = tracker.register();
        drop(served.request_started());
        // `oldest` was served after all: the next unserved one is `newest`.
        drop(oldest.request_started());
        assert!(tracker.shed_oldest());
        assert!(newest.shed.notified().now_or_never_for_test());
        assert!(!tracker.shed_oldest());
    }

    trait NowOrNever {
        fn now_or_never_for_test(self) -> bool;
    }

    impl<F: Future> NowOrNever for F {
        fn now_or_never_for_test(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut future = std::pin::pin!(self);
            future.as_mut().poll(&mut cx).is_ready()
        }
    }
}
