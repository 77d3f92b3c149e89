//! `yandex-token demo`: a stand-in for Yandex OAuth served under
//! [`PREFIX`] on the same server, so a newcomer can click through the whole
//! flow before registering an app. It behaves like the real provider where
//! it matters (client credentials, single-use codes with a lifetime, the
//! S256 PKCE check, OAuth error JSON) and says on every page that it is a
//! demo. Everything else (the redirect, the state, the exchange over TLS,
//! the token store) is the code `serve` runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::encoding::{base64_url, html_escape, parse_pairs, percent_encode, pick_params, random_urlsafe};
use crate::error::AppError;
use crate::routes::{Body, json_response};
use crate::secret::Secret;

/// Where the stand-in lives; `--oauth-url` points here in the demo.
pub const PREFIX: &str = "/demo/oauth/";

/// A code lives as long as a Yandex one.
const CODE_TTL: Duration = Duration::from_secs(600);
/// Codes kept at once; the demo is for one person clicking.
const MAX_CODES: usize = 1000;

struct Grant {
    challenge: String,
    created: Instant,
}

/// The demo provider: the app's credentials and the codes it has issued.
pub struct Provider {
    client_id: String,
    secret: Secret<Arc<str>>,
    codes: Mutex<HashMap<String, Grant>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider that accepts exactly this client id and secret.
    pub fn new(client_id: String, secret: Secret<Arc<str>>) -> Provider {
        Provider { client_id, secret, codes: Mutex::new(HashMap::new()) }
    }

    /// Answers a request under [`PREFIX`].
    pub async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, AppError> {
        let endpoint = &request.uri().path()[PREFIX.len()..];
        match (request.method(), endpoint) {
            (&Method::GET, "authorize") => self.authorize(request.uri().query().unwrap_or("")),
            (&Method::GET, "decide") => self.decide(request.uri().query().unwrap_or("")),
            (&Method::POST, "token") => Ok(self.token(request).await),
            (&Method::GET, "info") => Ok(info(&request)),
            (&Method::POST, "revoke_token") => Ok(json_response(StatusCode::OK, &json!({}))),
            (_, "authorize" | "decide") => Err(AppError::MethodNotAllowed("GET")),
            (_, "token") => Err(AppError::MethodNotAllowed("POST")),
            _ => Err(AppError::NotFound),
        }
    }

    /// The consent page, with Allow and Deny links carrying the request on.
    fn authorize(&self, query: &str) -> Result<Response<Body>, AppError> {
        let [response_type, client_id, state, challenge, method, redirect_uri] = pick_params(
            query,
            [
                "response_type",
                "client_id",
                "state",
                "code_challenge",
                "code_challenge_method",
                "redirect_uri",
            ],
        )
        .map_err(|err| AppError::BadRequest(err.to_string()))?;
        if response_type.as_deref() != Some("code") {
            return Err(AppError::BadRequest("response_type must be code".into()));
        }
        if client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err(AppError::BadRequest("unknown client_id".into()));
        }
        if method.as_deref() != Some("S256") || challenge.as_deref().is_none_or(str::is_empty) {
            return Err(AppError::BadRequest(
                "code_challenge with code_challenge_method=S256 is required".into(),
            ));
        }
        let carry = |choice: &str| {
            let mut link = format!("{PREFIX}decide?choice={choice}&code_challenge=");
            percent_encode(challenge.as_deref().unwrap_or(""), &mut link);
            if let Some(state) = &state {
                link.push_str("&state=");
                percent_encode(state, &mut link);
            }
            if let Some(uri) = &redirect_uri {
                link.push_str("&redirect_uri=");
                percent_encode(uri, &mut link);
            }
            html_escape(&link)
        };
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>DEMO: Yandex OAuth stand-in</title></head>\n<body style=\"font-family:sans-serif;max-width:36em;margin:3em auto\">\n\
             <p style=\"background:#fe0;padding:.5em\"><b>DEMO.</b> This page is yandex-token's built-in stand-in \
             for oauth.yandex.ru. No Yandex account is involved and the token it issues is useless.</p>\n\
             <h1>Allow access?</h1>\n<p>The app <b>{}</b> asks for access to your (pretend) Yandex Direct account.</p>\n\
             <p><a id=\"allow\" href=\"{}\">Allow</a> &nbsp; <a id=\"deny\" href=\"{}\">Deny</a></p>\n</body></html>\n",
            html_escape(&self.client_id),
            carry("allow"),
            carry("deny"),
        );
        let mut response = Response::new(Full::new(Bytes::from(page)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
        );
        Ok(response)
    }

    /// The click: issue a code (Allow) or an `access_denied` (Deny), and send
    /// the browser back to the callback, as Yandex does.
    fn decide(&self, query: &str) -> Result<Response<Body>, AppError> {
        let [choice, challenge, state, redirect_uri] =
            pick_params(query, ["choice", "code_challenge", "state", "redirect_uri"])
                .map_err(|err| AppError::BadRequest(err.to_string()))?;
        let mut location = redirect_uri.unwrap_or_else(|| "/get_token".to_owned());
        location.push(if location.contains('?') { '&' } else { '?' });
        match choice.as_deref() {
            Some("allow") => {
                let code = random_urlsafe(12);
                let mut codes = self.codes.lock().unwrap_or_else(|poison| poison.into_inner());
                codes.retain(|_, grant| grant.created.elapsed() < CODE_TTL);
                if codes.len() >= MAX_CODES {
                    return Err(AppError::BadRequest("too many codes outstanding; restart the demo".into()));
                }
                let challenge = challenge.unwrap_or_default();
                codes.insert(code.clone(), Grant { challenge, created: Instant::now() });
                location.push_str("code=");
                percent_encode(&code, &mut location);
            }
            Some("deny") => location.push_str("error=access_denied&error_description=The+user+denied+access"),
            _ => return Err(AppError::BadRequest("choice must be allow or deny".into())),
        }
        if let Some(state) = state {
            location.push_str("&state=");
            percent_encode(&state, &mut location);
        }
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::FOUND;
        let location = HeaderValue::try_from(location)
            .map_err(|_| AppError::BadRequest("redirect_uri is not a valid URL".into()))?;
        response.headers_mut().insert(header::LOCATION, location);
        Ok(response)
    }

    /// The token endpoint: checks the credentials, the code (single use,
    /// unexpired) and the PKCE verifier, then issues a pretend token.
    async fn token(&self, request: Request<Incoming>) -> Response<Body> {
        let body = match Limited::new(request.into_body(), 16 * 1024).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable body"),
        };
        let Ok(pairs) =
            std::str::from_utf8(&body).map_err(|_| ()).and_then(|b| parse_pairs(b).map_err(|_| ()))
        else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "malformed form body");
        };
        let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if field("client_id") != Some(self.client_id.as_str())
            || field("client_secret") != Some(&**self.secret.expose())
        {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
        }
        match field("grant_type") {
            Some("authorization_code") => {}
            Some("refresh_token")
                if field("refresh_token").is_some_and(|t| t.starts_with("demo-refresh-")) =>
            {
                return issue_token();
            }
            Some("refresh_token") => {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token");
            }
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "Unsupported grant type",
                );
            }
        }
        let grant = field("code")
            .and_then(|code| self.codes.lock().unwrap_or_else(|poison| poison.into_inner()).remove(code));
        let Some(grant) = grant.filter(|grant| grant.created.elapsed() < CODE_TTL) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code has expired");
        };
        let verifier = field("code_verifier").unwrap_or("");
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        if base64_url(digest.as_ref()) != grant.challenge {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code_verifier");
        }
        issue_token()
    }
}

/// Yandex ID's `/info` for demo tokens: every one belongs to `demo-user`.
fn info(request: &Request<Incoming>) -> Response<Body> {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with("OAuth demo-"));
    if authorized {
        json_response(StatusCode::OK, &json!({ "login": "demo-user", "id": "1000001" }))
    } else {
        json_response(StatusCode::UNAUTHORIZED, &json!({ "error": "unauthorized" }))
    }
}

fn issue_token() -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "bearer",
            "access_token": format!("demo-{}", random_urlsafe(24)),
            "expires_in": 31_536_000,
            "refresh_token": format!("demo-refresh-{}", random_urlsafe(24)),
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json_response(status, &json!({ "error": error, "error_description": description }))
}
