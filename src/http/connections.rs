//! What each connection is doing, so the server can enforce the limits
//! hyper does not: the header-read timeout (first byte, or connection start,
//! to a complete request head), the idle keep-alive timeout (between
//! requests), and shedding at the connection cap: the oldest connection that
//! has not yet sent a complete request goes first, so a flood of slow
//! connections cannot lock a real user out.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::response::Body;
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
    /// A request's body was left unread (HTTP/1.1): the socket must not be
    /// closed with bytes still arriving, or the kernel's reset destroys the
    /// answer before the client reads it.
    linger: AtomicBool,
    /// A second descriptor of the socket, taken once `linger` is set, so
    /// the socket outlives hyper's close until the lingering read is done.
    lingering: Mutex<Option<OwnedFd>>,
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
            linger: AtomicBool::new(false),
            lingering: Mutex::new(None),
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

    /// A request's body was not read to its end: close by lingering.
    pub fn request_linger(&self) {
        self.linger.store(true, Ordering::Release);
    }

    /// The socket's second descriptor, once the connection has closed
    /// with a body left unread: [`linger`] reads the rest, then closes it.
    pub fn take_lingering(&self) -> Option<OwnedFd> {
        self.lingering.lock().unwrap_or_else(|poison| poison.into_inner()).take()
    }

    /// Keeps a second descriptor of `socket` when a lingering close was
    /// asked for and none is kept yet. Called from the stream's writes,
    /// while the socket is surely open.
    fn keep_for_lingering(&self, socket: &impl AsFd) {
        if !self.linger.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut lingering = self.lingering.lock().unwrap_or_else(|poison| poison.into_inner());
        if lingering.is_none() {
            *lingering = socket.as_fd().try_clone_to_owned().ok();
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

/// The address a request came from, as the kernel saw the connection: a
/// request extension, for the per-client exchange budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

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

/// Writes pass straight through; the first write after a body was left
/// unread keeps the socket for a lingering close.
impl<S: AsyncWrite + AsFd + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.activity.keep_for_lingering(&self.inner);
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.activity.keep_for_lingering(&self.inner);
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.keep_for_lingering(&self.inner);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The most a lingering close (or the rest of an HTTP/2 request body)
/// reads and discards.
pub const LINGER_MAX_BYTES: usize = 8 * 1024 * 1024;

/// nginx's lingering close: the socket hyper has closed (our close_notify
/// and FIN are sent) is read and discarded until the client closes its end,
/// for at most `within` in all, `between` between reads and `max_bytes`,
/// then closed, so no reset reaches the client before it reads the answer.
pub async fn linger(socket: OwnedFd, within: Duration, between: Duration, max_bytes: usize) {
    let socket = std::net::TcpStream::from(socket);
    if socket.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(socket) = tokio::net::TcpStream::from_std(socket) else { return };
    let read_all = async {
        // On the heap, and only here: a connection that never lingers
        // carries none of it.
        let mut discard = vec![0u8; 16 * 1024];
        let mut seen = 0;
        while seen < max_bytes {
            let read = tokio::time::timeout(between, async {
                socket.readable().await?;
                socket.try_read(&mut discard)
            });
            match read.await {
                Ok(Ok(0)) | Err(_) => return,
                Ok(Ok(n)) => seen += n,
                Ok(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
                Ok(Err(_)) => return,
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok();
}

/// What the TLS connections send: a response body, holding on to the
/// request's body when that was not read to its end (HTTP/2). Once the
/// response is sent and this is dropped, the rest of the request body is
/// read and discarded (at most `within` and [`LINGER_MAX_BYTES`], as
/// nginx does), so the stream ends cleanly for the client; past either
/// bound, dropping it makes h2 end the stream with `RST_STREAM(NO_ERROR)`
/// (RFC 9113 §8.1). curl 7.88 (Debian 12) reports even `NO_ERROR` before
/// its upload ends as an error, and loses the answer.
#[derive(Debug)]
pub struct Answer {
    body: Body,
    request_body: Option<(Incoming, RequestGuard)>,
    within: Duration,
}

impl Answer {
    /// `body`, reading what is left of `request_body` after it is sent;
    /// its request stays in flight until then.
    pub fn new(body: Body, request_body: Option<(Incoming, RequestGuard)>, within: Duration) -> Answer {
        Answer { body, request_body, within }
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let Some((mut request_body, in_flight)) = self.request_body.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let within = self.within;
        runtime.spawn(async move {
            let _in_flight = in_flight;
            let discard = async {
                let mut seen = 0;
                while let Some(Ok(frame)) = request_body.frame().await {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    if seen > LINGER_MAX_BYTES {
                        return;
                    }
                }
            };
            tokio::time::timeout(within, discard).await.ok();
        });
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
