//! The accept loops and connection handling: a permit per connection (and
//! shedding at the cap), the TLS handshake under a deadline in the
//! connection's own task, hyper-util's auto (HTTP/1.1 + HTTP/2) builder with
//! explicit limits, a watchdog for slow heads and idle connections, graceful
//! shutdown with a bounded drain, and the optional plain-HTTP redirect
//! listener.
//!
//! Listeners and the shutdown signal are passed in, so tests run the real
//! server on a loopback port and systemd can hand over its sockets.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::http::app::App;
use crate::http::connections::{Activity, Answer, ClientAddr, LINGER_MAX_BYTES, Tracked, Tracker, linger};
use crate::http::error::AppError;
use crate::http::response::Body;
use crate::http::router;
use crate::tls::challenge::{ACME_TLS_ALPN, HTTP01_PREFIX};
use crate::tls::opening::{Opening, read_opening};
use crate::tls::stream::TlsStream;

/// The sockets to serve: HTTPS on one or more, the redirect on at most one.
#[derive(Debug)]
pub struct Listeners {
    /// TLS listeners serving the app.
    pub https: Vec<StdTcpListener>,
    /// The plain-HTTP listener answering with redirects to https.
    pub http: Option<StdTcpListener>,
    /// The plain-HTTP listener for `/metrics` (`--metrics-listen`), off the
    /// public port.
    pub metrics: Option<StdTcpListener>,
}

/// What a listener serves.
#[derive(Clone, Copy)]
enum Role {
    Https,
    /// Plain HTTP redirecting to the HTTPS port given.
    Redirect(u16),
    /// Plain HTTP serving `/metrics`.
    Metrics,
}

/// What every accept loop shares.
struct Shared {
    app: Arc<App>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// Turns true when the server stops accepting.
    stop: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
    tracker: Tracker,
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish within the drain limit, and returns.
pub async fn run(listeners: Listeners, app: Arc<App>, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let https_port = match listeners.https.first() {
        Some(listener) => listener.local_addr()?.port(),
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "no HTTPS listener")),
    };
    let mut roles = Vec::new();
    for listener in listeners.https {
        roles.push((listener, Role::Https));
    }
    if let Some(listener) = listeners.http {
        roles.push((listener, Role::Redirect(https_port)));
    }
    if let Some(listener) = listeners.metrics {
        roles.push((listener, Role::Metrics));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (http1, http2) = http_builders(&app);
    let shared = Arc::new(Shared {
        http1,
        http2,
        stop: stop_rx.clone(),
        permits: Arc::new(Semaphore::new(app.limits.max_connections)),
        tracker: Tracker::new(app.limits.max_connections),
        app,
    });
    // Only the accept loops and this function hold it, never a connection.
    let graceful = Arc::new(GracefulShutdown::new());
    let mut loops = JoinSet::new();
    for (listener, role) in roles {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        loops.spawn(accept_loop(listener, role, shared.clone(), graceful.clone(), stop_rx.clone()));
    }
    shutdown.await;
    stop_tx.send(true).ok();
    while loops.join_next().await.is_some() {}
    let drain_timeout = shared.app.limits.drain_timeout;
    let open = graceful.count();
    if open > 0 {
        crate::info!("shutting down: waiting for {open} open connection(s)");
    }
    let Ok(graceful) = Arc::try_unwrap(graceful) else { unreachable!("the accept loops have ended") };
    if tokio::time::timeout(drain_timeout, graceful.shutdown()).await.is_err() {
        crate::warn!("shutdown: connections still open after {}s; closing them", drain_timeout.as_secs());
    }
    Ok(())
}

/// The HTTP builders with the limits hyper enforces itself. The header-read
/// and idle timeouts are the connection watchdog's (see [`watchdog`]).
fn http_builders(app: &App) -> (http1::Builder, http2::Builder<TokioExecutor>) {
    let limits = &app.limits;
    let mut http1 = http1::Builder::new();
    // hyper's read buffer bounds the request head; 8 KiB is its floor.
    http1.max_buf_size(limits.max_header_bytes.max(8192));
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.h2_max_concurrent_streams);
    (http1, http2)
}

/// Accepts until told to stop. Never ends on an accept error and never
/// waits on a peer: the handshake runs in the connection's task. At the
/// connection cap it sheds the oldest connection without a request, then
/// waits for its slot.
async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    crate::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // The permit is taken after accept, so an idle listener never holds
        // one (nor sheds for one).
        let permit = match shared.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                shared.tracker.shed_oldest();
                tokio::select! {
                    permit = shared.permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    _ = stop.changed() => return,
                }
            }
        };
        tcp.set_nodelay(true).ok();
        let activity = shared.tracker.register();
        let watcher = graceful.watcher();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new(&shared.app.keeper.metrics);
            tokio::select! {
                _ = serve(tcp, peer.ip(), role, &shared, watcher, activity.clone()) => {}
                _ = activity.shed() => {}
            }
        });
    }
}

/// One connection, start to end: the TLS handshake (or a plain-HTTP
/// answer), a wait for the first request bytes, then hyper (HTTP/2 or
/// HTTP/1.1 as ALPN chose) under the watchdog.
async fn serve(
    tcp: TcpStream,
    peer: IpAddr,
    role: Role,
    shared: &Shared,
    watcher: Watcher,
    activity: Arc<Activity>,
) {
    let limits = &shared.app.limits;
    match role {
        Role::Https => {
            // Boxed, as is the connection below: a future moved into an
            // async fn is otherwise laid out in this task more than once,
            // and every byte here is paid per connection.
            let handshake = Box::pin(async {
                let mut tcp = tcp;
                match read_opening(&mut tcp).await {
                    Opening::Tls(record) => {
                        TlsStream::accept(tcp, shared.app.server_tls.clone(), record).await.ok()
                    }
                    Opening::PlainHttp => {
                        answer_plain_http_on_tls_port(tcp).await;
                        None
                    }
                    Opening::Gone => None,
                }
            });
            // Failed and timed-out handshakes are scanners' daily bread;
            // logging each would let them flood the journal.
            let Ok(Some(mut tls)) = tokio::time::timeout(limits.tls_handshake_timeout, handshake).await
            else {
                return;
            };
            if tls.alpn_protocol() == Some(ACME_TLS_ALPN) {
                // A tls-alpn-01 validator has seen the challenge certificate:
                // that was the whole exchange (RFC 8737 §3).
                tls.shutdown().await.ok();
                return;
            }
            // What TLS still owes (the session ticket) goes out with the
            // first response when the request came with the handshake's
            // end. Otherwise it goes now: it also acknowledges the client's
            // Finished at once, and a client with Nagle's algorithm on holds
            // its request until then (40 ms of delayed ACK without it).
            if !tls.has_buffered_input()
                && (tls.flush().await.is_err() || !first_bytes(tls.get_ref(), &activity, shared).await)
            {
                return;
            }
            let h2 = tls.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(Tracked::new(tls, activity.clone()));
            let service = app_service(shared.app.clone(), activity.clone(), peer);
            if h2 {
                let connection = watcher.watch(shared.http2.serve_connection(io, service));
                watchdog(Box::pin(connection), &activity, limits).await;
            } else {
                let connection = watcher.watch(shared.http1.serve_connection(io, service));
                watchdog(Box::pin(connection), &activity, limits).await;
                // hyper has closed (close_notify, FIN); bytes of a body it
                // left unread may still be arriving.
                if let Some(socket) = activity.take_lingering() {
                    let between = LINGER_BETWEEN_READS.min(limits.header_read_timeout);
                    // Boxed: its state is no part of an idle connection's.
                    Box::pin(linger(socket, limits.header_read_timeout, between, LINGER_MAX_BYTES)).await;
                }
            }
        }
        Role::Redirect(https_port) => {
            serve_plain(tcp, shared, watcher, activity, move |request, app| {
                match request.uri().path().strip_prefix(HTTP01_PREFIX) {
                    Some(token) if app.certs.is_acme() => answer_http01(request, token, app),
                    _ => redirect_to_https(request, https_port, app),
                }
            })
            .await;
        }
        Role::Metrics => serve_plain(tcp, shared, watcher, activity, router::metrics).await,
    }
}

/// Serves a plain-HTTP/1.1 connection (the redirect and metrics
/// listeners) with `answer`, under the same watchdog as TLS connections.
async fn serve_plain(
    tcp: TcpStream,
    shared: &Shared,
    watcher: Watcher,
    activity: Arc<Activity>,
    answer: impl Fn(&Request<Incoming>, &App) -> Response<Body> + Send + Sync + 'static,
) {
    if !first_bytes(&tcp, &activity, shared).await {
        return;
    }
    let app = shared.app.clone();
    let on_request = activity.clone();
    let service = service_fn(move |request| {
        let _guard = on_request.request_started();
        let response = answer(&request, &app);
        async move { Ok::<_, Infallible>(response) }
    });
    let io = TokioIo::new(Tracked::new(tcp, activity.clone()));
    let connection = watcher.watch(shared.http1.serve_connection(io, service));
    watchdog(Box::pin(connection), &activity, &shared.app.limits).await;
}

/// The app as a hyper service: marks each request on the connection's
/// activity and never fails.
fn app_service(
    app: Arc<App>,
    activity: Arc<Activity>,
    peer: IpAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Answer>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Answer>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |mut request: Request<Incoming>| {
        let guard = activity.request_started();
        let app = app.clone();
        request.extensions_mut().insert(ClientAddr(peer));
        let version = request.version();
        let activity = activity.clone();
        async move {
            let (response, unread) = router::route(request, &app).await;
            // A body left unread: HTTP/2 ends the stream after the answer
            // (the response body holds it until then); HTTP/1.1 closes by
            // lingering (`connections::linger`).
            // The request counts as in flight until its body is read to the
            // end or given up (bounded), so the connection's watchdog does
            // not take the body's DATA for the start of a new request head.
            let keep = match unread {
                Some(body) if version == hyper::Version::HTTP_2 => Some((body, guard)),
                unread => {
                    if unread.is_some() {
                        activity.request_linger();
                    }
                    drop(guard);
                    None
                }
            };
            let within = app.limits.header_read_timeout;
            Ok(response.map(|body| Answer::new(body, keep, within)))
        }
    })
}

/// A lingering close waits at most this long for each read (nginx's
/// `lingering_timeout`); the whole of it lasts at most the header-read
/// timeout (its `lingering_time`).
const LINGER_BETWEEN_READS: Duration = Duration::from_secs(5);

/// Waits for the first request bytes before hyper allocates its buffers,
/// so an idle connection costs only its TLS state. False when the
/// header-read deadline passes first or the server is stopping.
async fn first_bytes(tcp: &TcpStream, activity: &Activity, shared: &Shared) -> bool {
    let limits = &shared.app.limits;
    let mut stop = shared.stop.clone();
    if *stop.borrow_and_update() {
        return false;
    }
    let deadline = activity
        .deadline(limits.header_read_timeout, limits.idle_timeout)
        .map_or_else(|| Instant::now() + limits.header_read_timeout, |(at, _)| at);
    tokio::select! {
        ready = tcp.readable() => ready.is_ok(),
        _ = tokio::time::sleep_until(deadline.into()) => false,
        _ = stop.changed() => false,
    }
}

/// Counts a connection in `/metrics` while it is open.
struct OpenConnection<'a>(&'a crate::util::metrics::Metrics);

impl<'a> OpenConnection<'a> {
    fn new(metrics: &'a crate::util::metrics::Metrics) -> OpenConnection<'a> {
        metrics.connections(1);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections(-1);
    }
}

/// Drives `connection` until it ends, or until a request head is too slow
/// or the connection idles too long; then drops it.
async fn watchdog(
    mut connection: Pin<Box<impl Future>>,
    activity: &Activity,
    limits: &crate::config::Limits,
) {
    // Requests move the deadline without waking us: look again at least
    // this often.
    let recheck = limits.header_read_timeout.min(limits.idle_timeout);
    loop {
        let next_look = Instant::now() + recheck;
        let deadline = activity
            .deadline(limits.header_read_timeout, limits.idle_timeout)
            .map_or(next_look, |(at, _)| at.min(next_look));
        tokio::select! {
            _ = &mut connection => return,
            _ = tokio::time::sleep_until(deadline.into()) => {
                // The deadline may have moved while we slept (a request came).
                if activity
                    .deadline(limits.header_read_timeout, limits.idle_timeout)
                    .is_some_and(|(at, _)| at <= Instant::now())
                {
                    return;
                }
            }
        }
    }
}

/// Plain HTTP sent to the TLS port (a request line where a TLS record,
/// byte 0x16, belongs) gets a clear 400 instead of an alert it cannot read.
async fn answer_plain_http_on_tls_port(mut tcp: TcpStream) {
    const BODY: &str = "{\"error\":\"tls_required\",\"error_description\":\"this port speaks HTTPS: use an https:// URL\"}\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    tcp.write_all(response.as_bytes()).await.ok();
    tcp.shutdown().await.ok();
}

/// The plain-HTTP answer: a permanent redirect to the same path on https at
/// `--public-host` (by default the ACME domain), or else at the request's
/// host when the served certificate covers it; 400 for any other host, so
/// a crafted Host header cannot send a browser to another name.
fn redirect_to_https(request: &Request<Incoming>, https_port: u16, app: &App) -> Response<Body> {
    let started = Instant::now();
    let requested = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .and_then(crate::util::endpoint::host_without_port);
    let host = match app.public_host.as_deref() {
        Some(pinned) => Some(pinned),
        None => requested.filter(|host| app.certs.covers(host)),
    };
    let response = match host {
        Some(host) => {
            let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
            let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let location = format!("https://{host}{port}{target}");
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            match HeaderValue::try_from(location) {
                Ok(location) => {
                    response.headers_mut().insert(header::LOCATION, location);
                    response
                }
                Err(_) => AppError::BadRequest("unusable request target".into()).into_response(),
            }
        }
        None => AppError::BadRequest(
            "missing Host header, or one this server's certificate does not cover".into(),
        )
        .into_response(),
    };
    router::log_access(request.method(), request.uri().path(), response.status(), started, None);
    router::without_body_for_head(request.method(), response)
}

/// An http-01 validator's fetch (RFC 8555 §8.3): the key authorization
/// for an open challenge, 404 JSON for any other token.
fn answer_http01(request: &Request<Incoming>, token: &str, app: &App) -> Response<Body> {
    let started = Instant::now();
    let response = match app.certs.challenges().http(token) {
        Some(key_authorization) if request.method() == hyper::Method::GET => {
            let mut response = Response::new(Body::new(key_authorization.into()));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            response
        }
        Some(_) => AppError::MethodNotAllowed("GET").into_response(),
        None => AppError::NotFound.into_response(),
    };
    // The path holds the token: log the prefix only.
    router::log_access(request.method(), HTTP01_PREFIX, response.status(), started, None);
    router::without_body_for_head(request.method(), response)
}
