//! A fake Yandex OAuth server: hyper over TLS on 127.0.0.1:0. It behaves
//! like oauth.yandex.ru where our server depends on it: `/authorize` issues
//! single-use codes bound to the PKCE challenge and redirects to the
//! callback; `/token` checks client credentials (form or HTTP Basic), the
//! code (unknown, used, expired) and the S256 verifier, and answers with
//! Yandex's JSON. It fails on demand: 500, garbage, slow, oversized.
//!
//! It parses with `form_urlencoded` and `base64`, not with our own code, so
//! a bug in ours cannot hide behind the same bug here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_rustls::TlsAcceptor;

use super::pki::TestPki;

/// How `/token` behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Status500,
    Garbage,
    Slow(Duration),
    HugeBody,
}

struct Grant {
    challenge: String,
    created: Instant,
    used: bool,
    /// Issued for a device (`device_id` in the authorize request).
    device: bool,
}

/// How the fake Direct API's `clients.get` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectMode {
    /// The client login: the account's login before any `@`.
    Ok,
    /// Direct's error JSON with this code (HTTP 200, as Direct sends it).
    Error(i64),
    Status500,
    Garbage,
    Slow(Duration),
}

/// Where a device flow stands, as the user left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Allowed,
    Denied,
}

pub struct DeviceGrant {
    pub user_code: String,
    pub created: Instant,
    pub status: DeviceStatus,
    /// Polls answered `slow_down` before the next real answer.
    pub slow_downs: u32,
    /// When each poll arrived.
    pub polls: Vec<Instant>,
    /// Issued for a device (`device_id` in `device/code`).
    pub device: bool,
}

pub struct FakeState {
    pub client_id: String,
    pub secret: String,
    pub mode: Mutex<Mode>,
    pub code_ttl: Mutex<Duration>,
    /// Where `/authorize` sends the browser when no `redirect_uri` is given
    /// (Yandex: the app's first registered Callback URL).
    pub callback: Mutex<Option<String>>,
    pub token_calls: AtomicUsize,
    /// Signalled when a token request arrives (before any delay).
    pub token_request_seen: tokio::sync::Notify,
    pub issued_codes: Mutex<Vec<String>>,
    pub issued_tokens: Mutex<Vec<String>>,
    /// The Yandex login the next tokens belong to.
    pub login: Mutex<String>,
    /// `/info` answers 500 when set.
    pub info_fails: AtomicBool,
    /// `expires_in` of new tokens.
    pub expires_in: AtomicU64,
    /// Tokens revoked through `revoke_token`.
    pub revoked: Mutex<Vec<String>>,
    /// Access tokens issued for a device: the only ones `revoke_token`
    /// revokes, as Yandex's.
    pub device_tokens: Mutex<std::collections::HashSet<String>>,
    /// Refresh calls that came with a refresh token already spent.
    pub spent_refreshes: AtomicUsize,
    /// The last access token issued for each login.
    pub last_issued: Mutex<HashMap<String, String>>,
    /// Access token -> login, for `/info`.
    owners: Mutex<HashMap<String, String>>,
    /// Live refresh tokens -> (login, device token); each works once, as
    /// a strict server's.
    pub refresh_tokens: Mutex<HashMap<String, (String, bool)>>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Device flows by device_code.
    pub devices: Mutex<HashMap<String, DeviceGrant>>,
    /// `interval` and `expires_in` that `device/code` answers with.
    pub device_interval: AtomicU64,
    pub device_expires_in: AtomicU64,
    /// `slow_down` answers each new device flow starts with.
    pub device_slow_downs: AtomicU64,
    /// The PKCE verifiers the token endpoint received.
    pub verifiers: Mutex<Vec<String>>,
    /// The forms `device/code` received.
    pub device_requests: Mutex<Vec<HashMap<String, String>>>,
    /// How the Direct API answers, and how often it was asked.
    pub direct_mode: Mutex<DirectMode>,
    pub direct_calls: AtomicUsize,
    /// Signalled when a Direct API request arrives (before any delay).
    pub direct_request_seen: tokio::sync::Notify,
}

pub struct FakeOAuth {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOAuth {
    pub async fn start(pki: &TestPki) -> FakeOAuth {
        let state = Arc::new(FakeState {
            client_id: "test-client-id".to_owned(),
            secret: "test-client-secret-QWERTY".to_owned(),
            mode: Mutex::new(Mode::Normal),
            code_ttl: Mutex::new(Duration::from_secs(600)),
            callback: Mutex::new(None),
            token_calls: AtomicUsize::new(0),
            token_request_seen: tokio::sync::Notify::new(),
            issued_codes: Mutex::new(Vec::new()),
            issued_tokens: Mutex::new(Vec::new()),
            login: Mutex::new("test-user".to_owned()),
            info_fails: AtomicBool::new(false),
            expires_in: AtomicU64::new(31_536_000),
            revoked: Mutex::new(Vec::new()),
            device_tokens: Mutex::new(std::collections::HashSet::new()),
            spent_refreshes: AtomicUsize::new(0),
            last_issued: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            grants: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
            device_interval: AtomicU64::new(1),
            device_expires_in: AtomicU64::new(300),
            device_slow_downs: AtomicU64::new(0),
            device_requests: Mutex::new(Vec::new()),
            verifiers: Mutex::new(Vec::new()),
            direct_mode: Mutex::new(DirectMode::Ok),
            direct_calls: AtomicUsize::new(0),
            direct_request_seen: tokio::sync::Notify::new(),
        });
        let pair = yandex_token::tls::load_pair(&pki.cert, &pki.key).unwrap();
        let resolver = Arc::new(yandex_token::tls::CertResolver::new(pair, None));
        let mut config = (*yandex_token::tls::server_config(resolver).unwrap()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(request, &state).await) }
                    });
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await
                        .ok();
                });
            }
        });
        FakeOAuth { addr, state, task }
    }

    /// The `--oauth-url` for this fake.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/", self.addr.port())
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn token_calls(&self) -> usize {
        self.state.token_calls.load(Ordering::SeqCst)
    }

    /// The user enters `user_code` at the device page and clicks Allow
    /// (`true`) or Deny.
    pub fn decide_device(&self, user_code: &str, allow: bool) -> bool {
        decide_device(&self.state, user_code, allow)
    }
}

fn decide_device(state: &FakeState, user_code: &str, allow: bool) -> bool {
    let mut devices = state.devices.lock().unwrap();
    match devices.values_mut().find(|grant| grant.user_code == user_code) {
        Some(grant) => {
            grant.status = if allow { DeviceStatus::Allowed } else { DeviceStatus::Denied };
            true
        }
        None => false,
    }
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    json_reply(status, json!({"error": error, "error_description": description}))
}

async fn handle(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    match (request.method().as_str(), request.uri().path()) {
        ("GET", "/authorize") => authorize(request.uri().query().unwrap_or(""), state),
        ("POST", "/token") => {
            state.token_calls.fetch_add(1, Ordering::SeqCst);
            state.token_request_seen.notify_one();
            token(request, state).await
        }
        ("GET", "/info") => info(&request, state),
        ("GET", "/verification_code") => verification_code(request.uri().query().unwrap_or("")),
        ("POST", "/device/code") => device_code(request, state).await,
        ("POST", "/device") => device_decide(request, state).await,
        ("POST", "/direct/json/v5/clients") => {
            state.direct_calls.fetch_add(1, Ordering::SeqCst);
            state.direct_request_seen.notify_one();
            direct_clients(request, state).await
        }
        ("POST", "/revoke_token") => revoke(request, state).await,
        _ => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

fn authorize(query: &str, state: &FakeState) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| params.get(name).map(String::as_str);
    if param("response_type") != Some("code") || param("client_id") != Some(state.client_id.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "bad response_type or client_id");
    }
    if param("code_challenge_method") != Some("S256") || param("code_challenge").is_none() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "PKCE S256 required");
    }
    let callback = match param("redirect_uri") {
        Some(uri) => uri.to_owned(),
        None => match state.callback.lock().unwrap().clone() {
            Some(uri) => uri,
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "no callback"),
        },
    };
    let code = format!("{:016x}", rand_u64());
    state.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge: param("code_challenge").unwrap().to_owned(),
            created: Instant::now(),
            used: false,
            device: param("device_id").is_some(),
        },
    );
    state.issued_codes.lock().unwrap().push(code.clone());
    let mut location = form_urlencoded::Serializer::new(format!("{callback}?"));
    location.append_pair("code", &code);
    if let Some(s) = param("state") {
        location.append_pair("state", s);
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location.finish())
        .body(Full::default())
        .unwrap()
}

async fn token(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let mode = *state.mode.lock().unwrap();
    let basic = request
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    match mode {
        Mode::Status500 => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "boom"),
        Mode::Garbage => {
            return Response::builder()
                .status(200)
                .body(Full::new(Bytes::from_static(b"<html>oops")))
                .unwrap();
        }
        Mode::HugeBody => {
            let huge = format!("{{\"access_token\":\"{}\"}}", "x".repeat(200 * 1024));
            return Response::builder().status(200).body(Full::new(Bytes::from(huge))).unwrap();
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Normal => {}
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str);
    let (client_id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => (Some(id.to_owned()), Some(secret.to_owned())),
        None => (field("client_id").map(str::to_owned), field("client_secret").map(str::to_owned)),
    };
    if client_id.as_deref() != Some(state.client_id.as_str())
        || secret.as_deref() != Some(state.secret.as_str())
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client not found");
    }
    match field("grant_type") {
        Some("authorization_code") => {}
        Some("device_code") => return device_token(field("code").unwrap_or(""), state),
        Some("refresh_token") => {
            let owner = field("refresh_token").and_then(|t| state.refresh_tokens.lock().unwrap().remove(t));
            return match owner {
                Some((login, device)) => issue(state, &login, device),
                None => {
                    state.spent_refreshes.fetch_add(1, Ordering::SeqCst);
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token")
                }
            };
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"),
    }
    let ttl = *state.code_ttl.lock().unwrap();
    let mut grants = state.grants.lock().unwrap();
    let Some(grant) = field("code").and_then(|code| grants.get_mut(code)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code");
    };
    if grant.used || grant.created.elapsed() >= ttl {
        grant.used = true;
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code has expired");
    }
    grant.used = true;
    let verifier = field("code_verifier").unwrap_or("");
    state.verifiers.lock().unwrap().push(verifier.to_owned());
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    if base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code_verifier");
    }
    let device = grant.device;
    let login = state.login.lock().unwrap().clone();
    drop(grants);
    issue(state, &login, device)
}

/// Yandex's `verification_code` page: shows the code the way Yandex does
/// (in an element a test can find), or the error.
fn verification_code(query: &str) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let body = match (params.get("code"), params.get("error")) {
        (Some(code), _) => format!("<html><body><p>Your code:</p><b id=\"code\">{code}</b></body></html>"),
        (None, Some(error)) => format!("<html><body><p id=\"error\">{error}</p></body></html>"),
        (None, None) => "<html><body>nothing to show</body></html>".to_owned(),
    };
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// `POST /device/code`: a device flow for the client (no secret needed).
async fn device_code(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    state.device_requests.lock().unwrap().push(form.clone());
    if form.get("client_id") != Some(&state.client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "Client not found");
    }
    let device_code = format!("{:032x}", u128::from(rand_u64()) << 64 | u128::from(rand_u64()));
    let user_code = format!("{:08}", rand_u64() % 100_000_000);
    state.devices.lock().unwrap().insert(
        device_code.clone(),
        DeviceGrant {
            user_code: user_code.clone(),
            created: Instant::now(),
            status: DeviceStatus::Pending,
            slow_downs: u32::try_from(state.device_slow_downs.load(Ordering::SeqCst)).unwrap(),
            polls: Vec::new(),
            device: form.contains_key("device_id"),
        },
    );
    json_reply(
        StatusCode::OK,
        json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_url": "https://ya.ru/device",
            "interval": state.device_interval.load(Ordering::SeqCst),
            "expires_in": state.device_expires_in.load(Ordering::SeqCst),
        }),
    )
}

/// `POST /device` with `user_code` and `choice=allow|deny`: the user's click.
async fn device_decide(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let allow = form.get("choice").map(String::as_str) == Some("allow");
    if decide_device(state, form.get("user_code").map_or("", String::as_str), allow) {
        json_reply(StatusCode::OK, json!({}))
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Unknown user code")
    }
}

/// `grant_type=device_code`: pending, slow_down, expired, denied or a token.
fn device_token(device_code: &str, state: &FakeState) -> Response<Full<Bytes>> {
    let expires_in = Duration::from_secs(state.device_expires_in.load(Ordering::SeqCst));
    let mut devices = state.devices.lock().unwrap();
    let Some(grant) = devices.get_mut(device_code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code");
    };
    grant.polls.push(Instant::now());
    if grant.created.elapsed() >= expires_in {
        return oauth_error(StatusCode::BAD_REQUEST, "expired_token", "Code has expired");
    }
    if grant.slow_downs > 0 {
        grant.slow_downs -= 1;
        return oauth_error(StatusCode::BAD_REQUEST, "slow_down", "Polling too fast");
    }
    match grant.status {
        DeviceStatus::Pending => {
            oauth_error(StatusCode::BAD_REQUEST, "authorization_pending", "User has not yet authorized")
        }
        DeviceStatus::Denied => {
            oauth_error(StatusCode::BAD_REQUEST, "access_denied", "The user denied access")
        }
        DeviceStatus::Allowed => {
            // Single use: the flow is over once its token is issued.
            let device = devices.remove(device_code).is_some_and(|grant| grant.device);
            let login = state.login.lock().unwrap().clone();
            issue(state, &login, device)
        }
    }
}

/// The Direct API's `clients.get`: checks the Bearer token and the body,
/// then answers as `direct_mode` says, in Direct's JSON.
async fn direct_clients(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let english = request.headers().get("accept-language").is_some_and(|v| v == "en");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert!(english, "Accept-Language: en");
    assert_eq!(asked["method"], "get", "{asked}");
    let direct_error = |code: i64, text: &str| {
        json_reply(
            StatusCode::OK,
            json!({"error": {"request_id": "8695244274068608439", "error_code": code,
                             "error_string": text, "error_detail": ""}}),
        )
    };
    let mode = state.direct_mode.lock().unwrap().clone();
    match mode {
        DirectMode::Status500 => {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "down");
        }
        DirectMode::Garbage => {
            return Response::builder().status(200).body(Full::new(Bytes::from_static(b"<html>"))).unwrap();
        }
        DirectMode::Slow(delay) => tokio::time::sleep(delay).await,
        DirectMode::Error(code) => {
            let text = match code {
                52 => "Authorization server temporarily unavailable",
                53 => "Authorization error",
                58 => "Incomplete registration",
                513 => "Your login is not connected to Yandex Direct",
                _ => "Error",
            };
            return direct_error(code, text);
        }
        DirectMode::Ok => {}
    }
    let Some(login) = state.owners.lock().unwrap().get(&token).cloned() else {
        return direct_error(53, "Authorization error");
    };
    let client = login.split('@').next().unwrap().to_owned();
    json_reply(StatusCode::OK, json!({"result": {"Clients": [{"Login": client, "ClientId": 4242}]}}))
}

/// A new token pair for `login`, recorded for `/info` and refresh.
fn issue(state: &FakeState, login: &str, device: bool) -> Response<Full<Bytes>> {
    let access = format!("y0_AgAAAA{:016x}", rand_u64());
    let refresh = format!("1:refresh:{:016x}", rand_u64());
    state.issued_tokens.lock().unwrap().push(access.clone());
    state.last_issued.lock().unwrap().insert(login.to_owned(), access.clone());
    state.owners.lock().unwrap().insert(access.clone(), login.to_owned());
    state.refresh_tokens.lock().unwrap().insert(refresh.clone(), (login.to_owned(), device));
    if device {
        state.device_tokens.lock().unwrap().insert(access.clone());
    }
    json_reply(
        StatusCode::OK,
        json!({
            "token_type": "bearer",
            "access_token": access,
            "expires_in": state.expires_in.load(Ordering::SeqCst),
            "refresh_token": refresh,
        }),
    )
}

/// Yandex ID's `/info?format=json`: whose token this is.
fn info(request: &Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    if state.info_fails.load(Ordering::SeqCst) {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "down");
    }
    let token = request
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("OAuth "))
        .unwrap_or("");
    match state.owners.lock().unwrap().get(token) {
        Some(login) => json_reply(
            StatusCode::OK,
            json!({"login": login, "id": "1130000000000001", "client_id": state.client_id}),
        ),
        None => oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token"),
    }
}

/// `revoke_token`: checks the client, then revokes a device token and
/// refuses any other, as Yandex does.
async fn revoke(request: Request<Incoming>, state: &FakeState) -> Response<Full<Bytes>> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("client_id") != Some(&state.client_id) || form.get("client_secret") != Some(&state.secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client not found");
    }
    let token = form.get("access_token").cloned().unwrap_or_default();
    if !state.device_tokens.lock().unwrap().contains(&token) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "Only tokens issued for a device can be revoked",
        );
    }
    state.owners.lock().unwrap().remove(&token);
    state.revoked.lock().unwrap().push(token);
    json_reply(StatusCode::OK, json!({}))
}

fn rand_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}
