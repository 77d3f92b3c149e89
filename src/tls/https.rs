//! The one HTTPS client: a request on a fresh connection over rustls, with
//! a connect timeout, a total timeout (the caller's, [`with_timeout`]) and
//! a cap on the answer's body. Yandex OAuth, the Direct API and ACME each
//! turn its [`HttpsError`] into their own errors.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::util::endpoint::Endpoint;

/// Why an HTTPS request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpsError {
    /// A phase (`connect`, `total`) did not finish in time.
    Timeout(&'static str),
    /// DNS, TCP, TLS or HTTP failed.
    Unreachable(String),
    /// The answer's body is over the cap, in bytes.
    TooLarge(usize),
}

impl fmt::Display for HttpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpsError::Timeout(phase) => write!(f, "no answer in time ({phase})"),
            HttpsError::Unreachable(why) => write!(f, "unreachable: {why}"),
            HttpsError::TooLarge(max) => write!(f, "an answer larger than {max} bytes"),
        }
    }
}

impl std::error::Error for HttpsError {}

/// Timeouts and caps for one HTTPS request.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Time for DNS and the TCP connect.
    pub connect_timeout: Duration,
    /// Time for the whole exchange.
    pub total_timeout: Duration,
    /// Largest response body read.
    pub max_body: usize,
}

/// One HTTPS request on a fresh connection: TCP (connect timeout), TLS,
/// HTTP/1.1, the answer's body read up to the cap. The request's target
/// is sent as given; `Host`, `Accept` (unless set) and `User-Agent` are
/// added. Yandex OAuth, the Direct API and the ACME server all go through here.
pub async fn https_request(
    connector: &TlsConnector,
    limits: &ClientLimits,
    endpoint: &Endpoint,
    mut request: Request<Full<Bytes>>,
) -> Result<(hyper::http::response::Parts, Bytes), HttpsError> {
    let headers = request.headers_mut();
    headers
        .insert(HOST, endpoint.authority().parse().map_err(|_| HttpsError::Unreachable("bad host".into()))?);
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, hyper::header::HeaderValue::from_static("application/json"));
    }
    headers.insert(
        USER_AGENT,
        hyper::header::HeaderValue::from_static(concat!("yandex-token/", env!("CARGO_PKG_VERSION"))),
    );
    let tcp = with_timeout(
        limits.connect_timeout,
        "connect",
        TcpStream::connect((endpoint.host(), endpoint.port())),
    )
    .await?
    .map_err(|err| HttpsError::Unreachable(format!("connect to {}: {err}", endpoint.authority())))?;
    tcp.set_nodelay(true).ok();
    let tls = connector
        .connect(endpoint.server_name(), tcp)
        .await
        .map_err(|err| HttpsError::Unreachable(format!("TLS with {}: {err}", endpoint.authority())))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|err| HttpsError::Unreachable(format!("HTTP with {}: {err}", endpoint.authority())))?;
    // The connection is driven by its own task and torn down with this
    // future, whichever way it ends (a timeout included).
    let _connection = AbortOnDrop(tokio::spawn(async move {
        connection.await.ok();
    }));
    let response = sender.send_request(request).await.map_err(|err| {
        HttpsError::Unreachable(format!("request to {} failed: {err}", endpoint.authority()))
    })?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, limits.max_body)
        .collect()
        .await
        .map_err(|err| {
            if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                HttpsError::TooLarge(limits.max_body)
            } else {
                HttpsError::Unreachable(format!("reading the answer failed: {err}"))
            }
        })?
        .to_bytes();
    Ok((parts, body))
}

/// Runs `future` for at most `limit`, naming the phase on timeout.
pub async fn with_timeout<T>(
    limit: Duration,
    phase: &'static str,
    future: impl Future<Output = T>,
) -> Result<T, HttpsError> {
    tokio::time::timeout(limit, future).await.map_err(|_| HttpsError::Timeout(phase))
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
