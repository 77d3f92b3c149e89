//! The router: one visible `match` on method and path, the headers every
//! TLS response carries, HEAD, and the access log line. The
//! service built on [`route`] never fails: every error is a response.

use std::time::Instant;

use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::Flow;
use crate::http::app::App;
use crate::http::error::AppError;
use crate::http::response::{Body, text_response};
use crate::http::{accept, demo, get_token};

/// The `--metrics-listen` listener's one route: `GET`/`HEAD /metrics` in
/// the Prometheus text format; 404 elsewhere, 405 for other methods.
pub fn metrics(request: &Request<Incoming>, app: &App) -> Response<Body> {
    let started = Instant::now();
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let text = app.keeper.metrics.render();
            let mut response = Response::new(Body::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (_, "/metrics") => AppError::MethodNotAllowed("GET, HEAD").into_response(),
        _ => AppError::NotFound.into_response(),
    };
    log_access(request.method(), request.uri().path(), response.status(), started, None);
    without_body_for_head(request.method(), response)
}

/// Answers one request on the TLS listener and logs it. Also returns the
/// request's body when it was not read to its end (a body where none is
/// taken, a form over its cap): the connection then ends it so that the
/// client still reads the answer (see `http::server`).
pub async fn route(request: Request<Incoming>, app: &App) -> (Response<Body>, Option<Incoming>) {
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
    let paste = app.flow == Flow::Paste;
    let (parts, mut body) = request.into_parts();
    // An error is a page for a browser, JSON for everyone else; `Accept`
    // is read only when there is an error to answer.
    let page = |headers: &HeaderMap, result: &Result<Response<Body>, AppError>| {
        result.is_err() && accept::wants_html(headers)
    };
    let mut unread = None;
    let (result, page) = match (&method, uri.path()) {
        _ if hostless => {
            let result = Err(AppError::BadRequest("HTTP/1.1 requires a Host header".into()));
            let page = page(&parts.headers, &result);
            (result, page)
        }
        _ if app.certs.pending() => {
            let result = Err(AppError::CertificatePending);
            let page = page(&parts.headers, &result);
            (result, page)
        }
        (_, path) if path.starts_with(demo::PREFIX) && app.demo.is_some() => {
            let provider = app.demo.as_ref().expect("checked above");
            let wants_html = accept::wants_html(&parts.headers);
            // Boxed for the same reason as the exchange (get_token::handle).
            let result = Box::pin(provider.handle(Request::from_parts(parts, body))).await;
            return (finish(result, app, wants_html, &method, &uri, started), None);
        }
        _ => {
            let request = Request::from_parts(parts, ());
            let result = handle(&request, &mut body, app, paste).await;
            if !hyper::body::Body::is_end_stream(&body) {
                unread = Some(body);
            }
            let page = page(request.headers(), &result);
            (result, page)
        }
    };
    (finish(result, app, page, &method, &uri, started), unread)
}

/// The routes of the TLS listener, by method and path.
async fn handle(
    request: &Request<()>,
    body: &mut Incoming,
    app: &App,
    paste: bool,
) -> Result<Response<Body>, AppError> {
    match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/get_token") => get_token::handle(request, app).await,
        (&Method::POST, "/get_token") if paste => get_token::submit(request, body, app).await,
        (_, "/get_token") if paste => Err(AppError::MethodNotAllowed("GET, HEAD, POST")),
        (_, "/get_token") => Err(AppError::MethodNotAllowed("GET, HEAD")),
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(text_response(StatusCode::OK, "ok\n")),
        (_, "/healthz") => Err(AppError::MethodNotAllowed("GET, HEAD")),
        _ => Err(AppError::NotFound),
    }
}

/// Turns a handler's outcome into the response: errors as a page or JSON,
/// the headers every TLS response carries, the access log line, HEAD.
fn finish(
    result: Result<Response<Body>, AppError>,
    app: &App,
    page: bool,
    method: &Method,
    uri: &hyper::Uri,
    started: Instant,
) -> Response<Body> {
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => {
            let label = err.kind();
            app.keeper.metrics.error(label);
            let detail = err.detail();
            let response = if page { err.into_page() } else { err.into_response() };
            (response, Some((label, detail)))
        }
    };
    // Two headers below guard a body a browser might sniff or render. A
    // redirect has none and is never rendered, so it goes without them:
    // 101 bytes less to encrypt, send and copy on every `GET /get_token`.
    let has_body = !hyper::body::Body::is_end_stream(response.body());
    let headers = response.headers_mut();
    headers.insert(header::STRICT_TRANSPORT_SECURITY, app.hsts.clone());
    // RFC 6749 §5.1 and RFC 9700: tokens and codes must not be cached or
    // leak through Referer. Cheap enough to send on every response.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // The paste page sets `same-origin`, so its form's POST carries the
    // real Origin; nothing else needs a Referer.
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    if has_body {
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // Nothing we serve needs to load anything; the demo page sets its own.
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    }
    log_access(method, uri.path(), response.status(), started, error);
    without_body_for_head(method, response)
}

/// RFC 9110 §9.3.2: HEAD gets GET's status and header fields, no content.
/// The one place every response leaves: hyper drops a HEAD body over
/// HTTP/1.1 but sends it over HTTP/2, where clients reset the stream.
pub fn without_body_for_head(method: &Method, mut response: Response<Body>) -> Response<Body> {
    if method != Method::HEAD {
        return response;
    }
    let length = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
    if length > 0 {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    *response.body_mut() = Body::default();
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
    let elapsed = started.elapsed();
    // The path is peer-controlled: cap it so one request cannot write a
    // huge line. hyper has already refused control characters.
    let path = path.char_indices().nth(200).map_or(path, |(end, _)| &path[..end]);
    // `journalctl -p warning` shows every failure and nothing routine:
    // our own or upstream failures (5xx) are errors, a token refused by
    // the allow-list a warning; a client's mistakes (4xx) are routine.
    let level = match (status.as_u16(), &error) {
        (500.., _) => crate::util::log::Level::Error,
        (_, Some(("login_not_allowed", _))) => crate::util::log::Level::Warn,
        _ => crate::util::log::Level::Info,
    };
    crate::util::log::access(level, |out| {
        for part in ["method=", method.as_str(), " path=", path, " status=", status.as_str(), " ms="] {
            out.extend_from_slice(part.as_bytes());
        }
        push_millis(out, elapsed);
        if let Some((label, detail)) = error {
            out.extend_from_slice(b" error=");
            out.extend_from_slice(label.as_bytes());
            if let Some(detail) = detail {
                use std::io::Write;
                write!(out, " detail={detail:?}").ok();
            }
        }
    });
}

/// Appends a duration as milliseconds with two decimals, in integer
/// arithmetic and without `fmt` (float formatting was 1 % of a redirect's
/// CPU, integer formatting through `fmt` another 2 % of its instructions).
fn push_millis(out: &mut Vec<u8>, elapsed: std::time::Duration) {
    let hundredths = (elapsed.as_micros() + 5) / 10;
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    let mut rest = hundredths;
    // At least three digits, so there is a units digit before the point.
    while rest > 0 || start > digits.len() - 3 {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let (units, decimals) = digits[start..].split_at(digits.len() - start - 2);
    out.extend_from_slice(units);
    out.push(b'.');
    out.extend_from_slice(decimals);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::push_millis;

    #[test]
    fn milliseconds_have_two_rounded_decimals() {
        let ms = |micros| {
            let mut out = b"ms=".to_vec();
            push_millis(&mut out, Duration::from_micros(micros));
            String::from_utf8(out).unwrap().split_off(3)
        };
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(4), "0.00");
        assert_eq!(ms(5), "0.01");
        assert_eq!(ms(1_234), "1.23");
        assert_eq!(ms(1_235), "1.24");
        assert_eq!(ms(99_999), "100.00");
        assert_eq!(ms(12_345_678), "12345.68");
    }
}
