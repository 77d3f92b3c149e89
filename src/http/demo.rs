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

use crate::http::error::AppError;
use crate::http::response::{Body, json_response};
use crate::util::encoding::{
    base64_url, html_escape, parse_pairs, percent_encode, pick_params, random_urlsafe,
};
use crate::util::secret::Secret;

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

/// A device flow: the code the user types, and what they chose.
struct Device {
    user_code: String,
    created: Instant,
    allowed: Option<bool>,
}

/// How often the demo's device flow may be polled, in seconds.
const DEVICE_INTERVAL: u64 = 2;

/// The demo provider: the app's credentials and the codes it has issued.
pub struct Provider {
    client_id: String,
    secret: Secret<Arc<str>>,
    /// `https://localhost:PORT/demo/oauth/`, for the device page's URL.
    base_url: String,
    codes: Mutex<HashMap<String, Grant>>,
    devices: Mutex<HashMap<String, Device>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider at `base_url` that accepts exactly this client id and secret.
    pub fn new(client_id: String, secret: Secret<Arc<str>>, base_url: String) -> Provider {
        Provider {
            client_id,
            secret,
            base_url,
            codes: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// Answers a request under [`PREFIX`].
    pub async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, AppError> {
        let endpoint = &request.uri().path()[PREFIX.len()..];
        match (request.method(), endpoint) {
            (&Method::GET, "authorize") => self.authorize(request.uri().query().unwrap_or("")),
            (&Method::GET, "decide") => self.decide(request.uri().query().unwrap_or("")),
            (&Method::GET, "verification_code") => verification_code(request.uri().query().unwrap_or("")),
            (&Method::POST, "device/code") => Ok(self.device_code(request).await),
            (&Method::GET, "device") => Ok(device_page(None)),
            (&Method::POST, "device") => self.device_decide(request).await,
            (&Method::POST, "token") => Ok(self.token(request).await),
            (&Method::GET, "info") => Ok(info(&request)),
            (&Method::POST, "direct/json/v5/clients") => Ok(direct_clients(&request)),
            (&Method::POST, "revoke_token") => Ok(json_response(StatusCode::OK, &json!({}))),
            (_, "authorize" | "decide" | "verification_code") => Err(AppError::MethodNotAllowed("GET")),
            (_, "token" | "device/code") => Err(AppError::MethodNotAllowed("POST")),
            (_, "device") => Err(AppError::MethodNotAllowed("GET, POST")),
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
        let content = format!(
            "<h1>Allow access?</h1>\n<p>The app <b>{}</b> asks for access to your (pretend) Yandex Direct \
             account.</p>\n<p><a id=\"allow\" href=\"{}\">Allow</a> &nbsp; <a id=\"deny\" href=\"{}\">Deny</a></p>\n",
            html_escape(&self.client_id),
            carry("allow"),
            carry("deny"),
        );
        Ok(demo_page(&content))
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
        let pairs = match read_form(request).await {
            Ok(pairs) => pairs,
            Err(response) => return response,
        };
        let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if field("client_id") != Some(self.client_id.as_str())
            || field("client_secret") != Some(&**self.secret.expose())
        {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
        }
        match field("grant_type") {
            Some("authorization_code") => {}
            Some("device_code") => return self.device_token(field("code").unwrap_or("")),
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

impl Provider {
    /// `POST device/code`: a new device flow for this client (no secret).
    async fn device_code(&self, request: Request<Incoming>) -> Response<Body> {
        let pairs = match read_form(request).await {
            Ok(pairs) => pairs,
            Err(response) => return response,
        };
        if !pairs.iter().any(|(key, value)| key == "client_id" && *value == self.client_id) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "Client not found");
        }
        let device_code = random_urlsafe(24);
        // Eight characters that are easy to read aloud and type.
        let user_code: String = random_urlsafe(12)
            .bytes()
            .filter(u8::is_ascii_alphabetic)
            .map(|b| char::from(b.to_ascii_uppercase()))
            .take(8)
            .collect();
        let mut devices = self.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        devices.retain(|_, device| device.created.elapsed() < CODE_TTL);
        if devices.len() >= MAX_CODES {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "slow_down",
                "too many device flows; restart the demo",
            );
        }
        devices.insert(
            device_code.clone(),
            Device { user_code: user_code.clone(), created: Instant::now(), allowed: None },
        );
        json_response(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_url": format!("{}device", self.base_url),
                "interval": DEVICE_INTERVAL,
                "expires_in": CODE_TTL.as_secs(),
            }),
        )
    }

    /// `POST device`: the user entered a code and clicked Allow or Deny.
    async fn device_decide(&self, request: Request<Incoming>) -> Result<Response<Body>, AppError> {
        let pairs = read_form(request)
            .await
            .map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
        let field =
            |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_ascii_uppercase());
        let allowed = match field("choice").as_deref() {
            Some("ALLOW") => true,
            Some("DENY") => false,
            _ => return Err(AppError::BadRequest("choice must be allow or deny".into())),
        };
        let user_code = field("user_code").unwrap_or_default();
        let mut devices = self.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        let found = devices
            .values_mut()
            .find(|device| device.user_code == user_code && device.created.elapsed() < CODE_TTL);
        Ok(match found {
            Some(device) => {
                device.allowed = Some(allowed);
                device_page(Some(if allowed {
                    "Allowed. Go back to the terminal: the token arrives with its next poll."
                } else {
                    "Denied. The terminal will say so."
                }))
            }
            None => {
                device_page(Some("No device flow has that code (or it expired). Check it and try again."))
            }
        })
    }

    /// `grant_type=device_code`: pending, denied, expired, or a token once.
    fn device_token(&self, device_code: &str) -> Response<Body> {
        let mut devices = self.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        let Some(device) = devices.get(device_code) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code");
        };
        if device.created.elapsed() >= CODE_TTL {
            devices.remove(device_code);
            return oauth_error(StatusCode::BAD_REQUEST, "expired_token", "Code has expired");
        }
        match device.allowed {
            None => {
                oauth_error(StatusCode::BAD_REQUEST, "authorization_pending", "User has not yet authorized")
            }
            Some(false) => {
                devices.remove(device_code);
                oauth_error(StatusCode::BAD_REQUEST, "access_denied", "The user denied access")
            }
            Some(true) => {
                devices.remove(device_code);
                issue_token()
            }
        }
    }
}

/// A form body (at most 16 KiB), or the OAuth error answer to send.
async fn read_form(request: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Body>> {
    let body = match Limited::new(request.into_body(), 16 * 1024).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable body")),
    };
    std::str::from_utf8(&body)
        .map_err(|_| ())
        .and_then(|b| parse_pairs(b).map_err(|_| ()))
        .map_err(|()| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "malformed form body"))
}

/// A demo page: the DEMO banner, then `content`.
fn demo_page(content: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>DEMO: Yandex OAuth stand-in</title></head>\n\
         <body style=\"font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em\">\n\
         <p style=\"background:#fe0;padding:.5em\"><b>DEMO.</b> This page is yandex-token's built-in stand-in \
         for oauth.yandex.ru. No Yandex account is involved and the token it issues is useless.</p>\n\
         {content}</body></html>\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// Yandex's `verification_code` page: the code to copy, as Yandex shows it
/// to apps "For API access", or the refusal.
fn verification_code(query: &str) -> Result<Response<Body>, AppError> {
    let [code, error] =
        pick_params(query, ["code", "error"]).map_err(|err| AppError::BadRequest(err.to_string()))?;
    let content = match (code, error) {
        (Some(code), _) => format!(
            "<h1>Your confirmation code</h1>\n<p>Copy this code and paste it where the app asks for it:</p>\n\
             <p style=\"font:2em monospace\"><b id=\"code\">{}</b></p>\n",
            html_escape(&code)
        ),
        (None, Some(error)) => format!("<h1>No code</h1>\n<p id=\"error\">{}</p>\n", html_escape(&error)),
        (None, None) => return Err(AppError::BadRequest("no code to show".into())),
    };
    Ok(demo_page(&content))
}

/// The device page, where the user types the code the terminal shows.
fn device_page(message: Option<&str>) -> Response<Body> {
    let message =
        message.map(|m| format!("<p id=\"result\"><b>{}</b></p>\n", html_escape(m))).unwrap_or_default();
    demo_page(&format!(
        "<h1>Connect a device</h1>\n{message}<form method=\"post\">\
         <p><label>Code from the screen: <input name=\"user_code\" required autocomplete=\"off\"></label></p>\
         <p><button name=\"choice\" value=\"allow\">Allow</button> \
         <button name=\"choice\" value=\"deny\">Deny</button></p></form>\n"
    ))
}

/// Whether `Authorization` is `SCHEME demo-…`: a token this stand-in issued.
fn carries_demo_token(request: &Request<Incoming>, scheme: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix(scheme))
        .is_some_and(|h| h.starts_with(" demo-"))
}

/// Yandex ID's `/info` for demo tokens: every one belongs to `demo-user`.
fn info(request: &Request<Incoming>) -> Response<Body> {
    if carries_demo_token(request, "OAuth") {
        json_response(StatusCode::OK, &json!({ "login": "demo-user", "id": "1000001" }))
    } else {
        json_response(StatusCode::UNAUTHORIZED, &json!({ "error": "unauthorized" }))
    }
}

/// The Direct API's `clients.get` for demo tokens: client `demo-user`; any
/// other token gets Direct's error 53, as a revoked one would.
fn direct_clients(request: &Request<Incoming>) -> Response<Body> {
    if carries_demo_token(request, "Bearer") {
        json_response(
            StatusCode::OK,
            &json!({"result": {"Clients": [{"Login": "demo-user", "ClientId": 1000001}]}}),
        )
    } else {
        json_response(
            StatusCode::OK,
            &json!({"error": {"request_id": "0", "error_code": 53, "error_string": "Authorization error",
                              "error_detail": "Invalid OAuth token"}}),
        )
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
