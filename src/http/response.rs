//! The response helpers every handler shares: the body type, an empty
//! response with room for the headers the router adds, JSON and text
//! responses. A leaf: the router and the handlers import it, and it
//! imports neither.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// Every response body: small and fully buffered.
pub type Body = Full<Bytes>;

/// How many headers the router adds to a response, at most.
const ADDED_HEADERS: usize = 6;

/// A response whose header map has room for `own` headers and the ones
/// the router adds: allocated once, instead of growing (and rehashing) as
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
