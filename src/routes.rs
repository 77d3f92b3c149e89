//! The router: one visible `match` on method and path, the response helpers,
//! the headers every TLS response carries, and the access log line. The
//! service built on [`route`] never fails: every error is a response.

use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::error::AppError;
use crate::{demo, get_token};

/// Every response body: small and fully buffered.
pub type Body = Full<Bytes>;

/// How many headers [`route`] adds to every response.
const ADDED_HEADERS: usize = 6;

/// A response whose header map has room for `own` headers and the ones
/// [`route`] adds: allocated once, instead of growing (and rehashing) as
/// they arrive.
pub fn response(status: StatusCode, body: Body, own: usize) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = HeaderMap::with_capacity(own + ADDED_HEADERS);
    response
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_vec(value).expect("a JSON value serialises");
    body.push(b'\n');
    let mut response = response(status, Full::new(Bytes::from(body)), 1);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response with a small plain-text body.
pub fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = response(status, Full::new(Bytes::from_static(text.as_bytes())), 1);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Answers one request on the TLS listener and logs it.
pub async fn route(request: Request<Incoming>, app: &App) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    // For the log line: hyper's URI shares the request's bytes, so this
    // copies no path.
    let uri = request.uri().clone();
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is malformed (HTTP/2
    // carries it as :authority, HTTP/1.0 may omit it).
    let hostless = request.version() == hyper::Version::HTTP_11
        && !request.headers().contains_key(header::HOST)
        && request.uri().authority().is_none();
    let result = match (request.method(), request.uri().path()) {
        _ if hostless => Err(AppError::BadRequest("HTTP/1.1 requires a Host header".into())),
        _ if app.certs.pending() => Err(AppError::CertificatePending),
        (&Method::GET, "/get_token") => get_token::handle(&request, app).await,
        (_, "/get_token") => Err(AppError::MethodNotAllowed("GET")),
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(text_response(StatusCode::OK, "ok\n")),
        (_, "/healthz") => Err(AppError::MethodNotAllowed("GET, HEAD")),
        (&Method::GET, "/metrics") if app.metrics_enabled => {
            let mut response = Response::new(Full::new(Bytes::from(app.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(response)
        }
        (_, path) if path.starts_with(demo::PREFIX) => match &app.demo {
            // Boxed for the same reason as the exchange (get_token::handle).
            Some(provider) => Box::pin(provider.handle(request)).await,
            None => Err(AppError::NotFound),
        },
        _ => Err(AppError::NotFound),
    };
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => {
            let label = err.kind();
            app.metrics.error(label);
            let detail = match &err {
                AppError::Upstream(upstream) => Some(upstream.to_string()),
                AppError::StoreFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            (err.into_response(), Some((label, detail)))
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::STRICT_TRANSPORT_SECURITY, app.hsts.clone());
    // RFC 6749 §5.1 and RFC 9700: tokens and codes must not be cached or
    // leak through Referer. Cheap enough to send on every response.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Nothing we serve needs to load anything; the demo page sets its own.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    log_access(&method, uri.path(), response.status(), started, error);
    response
}

/// The access log: method, path without the query, status, milliseconds,
/// and for errors a secret-free label. Nothing else from the request.
pub fn log_access(
    method: &Method,
    path: &str,
    status: StatusCode,
    started: Instant,
    error: Option<(&str, Option<String>)>,
) {
    let ms = Millis(started.elapsed());
    // The path is peer-controlled: cap it so one request cannot write a
    // huge line. hyper has already refused control characters.
    let path = path.char_indices().nth(200).map_or(path, |(end, _)| &path[..end]);
    match error {
        None => {
            crate::log::access(format_args!("method={method} path={path} status={} ms={ms}", status.as_u16()))
        }
        Some((label, None)) => crate::log::access(format_args!(
            "method={method} path={path} status={} ms={ms} error={label}",
            status.as_u16()
        )),
        Some((label, Some(detail))) => crate::log::access(format_args!(
            "method={method} path={path} status={} ms={ms} error={label} detail={detail:?}",
            status.as_u16()
        )),
    }
}

/// A duration as milliseconds with two decimals, in integer arithmetic
/// (float formatting was 1 % of a redirect's CPU).
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hundredths = (self.0.as_micros() + 5) / 10;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Millis;

    #[test]
    fn milliseconds_have_two_rounded_decimals() {
        let ms = |micros| Millis(Duration::from_micros(micros)).to_string();
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(4), "0.00");
        assert_eq!(ms(5), "0.01");
        assert_eq!(ms(1_234), "1.23");
        assert_eq!(ms(1_235), "1.24");
        assert_eq!(ms(99_999), "100.00");
        assert_eq!(ms(12_345_678), "12345.68");
    }
}
