//! The OAuth client: the authorize URL with PKCE (RFC 7636, S256), and the
//! token POST through hyper's HTTP/1 client over tokio-rustls, with connect
//! and total timeouts and a cap on the response body. Every outcome is
//! classified into a [`Token`] or an [`OAuthError`] that knows its status.
//!
//! What lives here: this client, the flow cookie ([`pending`]) and the
//! Direct API check ([`direct`]). It imports `util`, `config` and `tls`.

pub mod direct;
pub mod pending;

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::{Map, Value, json};
use tokio_rustls::TlsConnector;

use crate::tls::ClientTls;
use crate::tls::https::{ClientLimits, HttpsError, https_request, with_timeout};
use crate::util::encoding::{UrlSafe32, form_encode, percent_encode, printable};
use crate::util::endpoint::Endpoint;
use crate::util::secret::Secret;

/// An authorization code as pasted or sent back, trimmed, when it can be
/// one: 1 to 4096 printable ASCII characters. Nothing more is checked (the
/// codes Yandex shows were 7 digits, now 16 characters).
pub fn usable_code(code: &str) -> Option<&str> {
    let code = code.trim();
    (!code.is_empty() && code.len() <= 4096 && code.bytes().all(|b| b.is_ascii_graphic())).then_some(code)
}

/// A PKCE pair: the verifier stays on the server, the challenge goes to the
/// provider in the authorize URL. Both are held in place, not allocated.
pub struct Pkce {
    /// 43 characters of base64url from 32 random bytes.
    pub verifier: Secret<UrlSafe32>,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: UrlSafe32,
}

impl Pkce {
    /// A fresh pair.
    pub fn generate() -> Pkce {
        Pkce::from_verifier(UrlSafe32::random())
    }

    /// The pair for `verifier`, 32 fresh random bytes already encoded.
    pub fn from_verifier(verifier: UrlSafe32) -> Pkce {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        let digest = digest.as_ref().try_into().expect("SHA-256 is 32 bytes");
        Pkce { challenge: UrlSafe32::encode(digest), verifier: Secret::new(verifier) }
    }
}

/// A token document from the token endpoint: a JSON object with a non-empty
/// `access_token` string. Its `Debug` shows no values.
#[derive(Clone)]
pub struct Token(Map<String, Value>);

impl Token {
    /// Accepts a JSON object only when it carries a non-empty `access_token`.
    pub fn from_json(value: Value) -> Option<Token> {
        match value {
            Value::Object(map)
                if map.get("access_token").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) =>
            {
                Some(Token(map))
            }
            _ => None,
        }
    }

    /// The access token itself.
    pub fn access_token(&self) -> &str {
        self.0.get("access_token").and_then(Value::as_str).unwrap_or("")
    }

    /// The fields, for storing.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("fields", &self.0.keys().collect::<Vec<_>>()).finish()
    }
}

/// Whose a token is, as Yandex ID says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The Yandex login, lower-cased; safe as a file name.
    pub login: String,
    /// The numeric account id, when given.
    pub id: Option<String>,
}

/// Why the token endpoint did not give us a token.
#[derive(Debug, Clone)]
pub enum OAuthError {
    /// The provider answered with an OAuth error (4xx JSON), e.g. `invalid_grant`.
    Rejected {
        /// The provider's `error` code.
        error: String,
        /// The provider's `error_description`, when given.
        description: Option<String>,
    },
    /// The provider refused our app's credentials (`invalid_client`,
    /// `unauthorized_client`): the server's configuration is wrong, or the
    /// app is blocked. Not the user's fault.
    CredentialsRefused {
        /// The provider's `error` code.
        error: String,
    },
    /// A phase did not finish in time.
    Timeout(&'static str),
    /// No answer: DNS, TCP, TLS or HTTP failed.
    Unreachable(String),
    /// An answer that is not a token nor an OAuth error.
    BadResponse(String),
    /// A success (2xx) answer that is not a usable token: waiting or
    /// asking again will not make it one.
    NotAToken(String),
}

impl OAuthError {
    /// 400 for the provider's own refusal, 504 for a timeout, 502 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::Rejected { .. } => StatusCode::BAD_REQUEST,
            OAuthError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            OAuthError::CredentialsRefused { .. }
            | OAuthError::Unreachable(_)
            | OAuthError::BadResponse(_)
            | OAuthError::NotAToken(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The JSON error body for the browser.
    pub fn body(&self) -> Value {
        match self {
            OAuthError::Rejected { error, description } => {
                json!({ "error": error, "error_description": description.as_deref().unwrap_or("") })
            }
            OAuthError::CredentialsRefused { error } => json!({
                "error": "server_credentials_refused",
                "error_description": format!(
                    "Yandex refused this server's app credentials ({error}); the operator must fix the client id \
                     or secret. Your code was not used up by you: try again later"
                ),
            }),
            OAuthError::Timeout(phase) => json!({
                "error": "upstream_timeout",
                "error_description": format!("the token endpoint did not answer in time ({phase})"),
            }),
            OAuthError::Unreachable(why) => json!({
                "error": "upstream_unreachable",
                "error_description": format!("the token endpoint could not be reached: {why}"),
            }),
            OAuthError::BadResponse(why) | OAuthError::NotAToken(why) => json!({
                "error": "upstream_bad_response",
                "error_description": format!("the token endpoint gave an unusable answer: {why}"),
            }),
        }
    }

    /// A secret-free label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            OAuthError::Rejected { .. } => "upstream_rejected",
            OAuthError::CredentialsRefused { .. } => "credentials_refused",
            OAuthError::Timeout(_) => "upstream_timeout",
            OAuthError::Unreachable(_) => "upstream_unreachable",
            OAuthError::BadResponse(_) | OAuthError::NotAToken(_) => "upstream_bad_response",
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthError::Rejected { error, .. } => write!(f, "Yandex OAuth refused: {error}"),
            OAuthError::CredentialsRefused { error } => write!(
                f,
                "Yandex OAuth refused the app's credentials ({error}): check --client-id \
                 (YANDEX_TOKEN_CLIENT_ID) and the client secret file, and that the app is not blocked"
            ),
            OAuthError::Timeout(phase) => write!(f, "Yandex OAuth timed out ({phase})"),
            OAuthError::Unreachable(why) => write!(f, "Yandex OAuth is unreachable: {why}"),
            OAuthError::BadResponse(why) => write!(f, "Yandex OAuth answered badly: {why}"),
            OAuthError::NotAToken(why) => write!(f, "Yandex OAuth answered without a usable token: {why}"),
        }
    }
}

impl std::error::Error for OAuthError {}

impl From<HttpsError> for OAuthError {
    fn from(err: HttpsError) -> OAuthError {
        match err {
            HttpsError::Timeout(phase) => OAuthError::Timeout(phase),
            HttpsError::Unreachable(why) => OAuthError::Unreachable(why),
            HttpsError::TooLarge(max) => OAuthError::BadResponse(format!("body larger than {max} bytes")),
        }
    }
}

/// The app's side of OAuth: its credentials and the provider's endpoints.
pub struct OAuthClient {
    client_id: String,
    secret: RwLock<Secret<Arc<str>>>,
    /// The authorize URL up to the state, and after the challenge: what
    /// never changes is percent-encoded once.
    authorize_head: String,
    authorize_tail: String,
    token: Endpoint,
    revoke: Endpoint,
    device: Endpoint,
    login: Option<Endpoint>,
    redirect_uri: Option<String>,
    tls: ClientTls,
    limits: ClientLimits,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client for the provider at `oauth_url` (ending in `/`).
    pub fn new(
        client_id: String,
        secret: Secret<Arc<str>>,
        oauth_url: &str,
        token: Endpoint,
        redirect_uri: Option<String>,
        tls: ClientTls,
        limits: ClientLimits,
    ) -> OAuthClient {
        let mut authorize_head = format!("{oauth_url}authorize?response_type=code&client_id=");
        percent_encode(&client_id, &mut authorize_head);
        authorize_head.push_str("&state=");
        let mut authorize_tail = "&code_challenge_method=S256".to_owned();
        if let Some(uri) = &redirect_uri {
            authorize_tail.push_str("&redirect_uri=");
            percent_encode(uri, &mut authorize_tail);
        }
        let revoke = token.sibling("revoke_token");
        let device = token.sibling("device/code");
        OAuthClient {
            client_id,
            secret: RwLock::new(secret),
            authorize_head,
            authorize_tail,
            revoke,
            device,
            login: None,
            token,
            redirect_uri,
            tls,
            limits,
        }
    }

    /// Names the Yandex ID endpoint that says whose a token is.
    pub fn with_login_url(mut self, login: Endpoint) -> OAuthClient {
        self.login = Some(login);
        self
    }

    /// Asks for device tokens in the authorize URL (`device_id`,
    /// `device_name`): such tokens can be revoked by the app, and Yandex
    /// keeps at most 30 per user and app (a new one revokes the oldest).
    pub fn with_device(mut self, device_id: Option<&str>, device_name: Option<&str>) -> OAuthClient {
        if let Some(id) = device_id {
            self.authorize_tail.push_str("&device_id=");
            percent_encode(id, &mut self.authorize_tail);
            if let Some(name) = device_name {
                self.authorize_tail.push_str("&device_name=");
                percent_encode(name, &mut self.authorize_tail);
            }
        }
        self
    }

    /// Asks Yandex ID whose token this is (`GET /info?format=json` with
    /// `Authorization: OAuth <token>`).
    pub async fn lookup_account(&self, access_token: &str) -> Result<Account, OAuthError> {
        let endpoint = self.login.as_ref().ok_or_else(|| OAuthError::Unreachable("no login URL".into()))?;
        let target = format!("{}?format=json", endpoint.path());
        let request = Request::get(target)
            .header(AUTHORIZATION, format!("OAuth {access_token}"))
            .body(Full::new(Bytes::new()));
        let (status, body) =
            with_timeout(self.limits.total_timeout, "total", self.send(endpoint, request)).await??;
        if !status.is_success() {
            return Err(OAuthError::BadResponse(format!("HTTP {} from the login endpoint", status.as_u16())));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| OAuthError::BadResponse("the login endpoint's answer is not JSON".into()))?;
        let login = json.get("login").and_then(Value::as_str).map(str::to_ascii_lowercase);
        match login {
            Some(login) if crate::config::valid_login(&login) => Ok(Account {
                login,
                id: json.get("id").map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned)),
            }),
            _ => Err(OAuthError::BadResponse("the login endpoint named no usable login".into())),
        }
    }

    /// Revokes a token at the provider (`POST {oauth}revoke_token`). Yandex
    /// revokes only tokens issued for a device; for others it answers an
    /// OAuth error, returned as it came.
    pub async fn revoke(&self, access_token: &str) -> Result<(), OAuthError> {
        let secret = self.secret();
        let form = form_encode(&[
            ("access_token", access_token),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.expose()),
        ]);
        let (status, body) =
            with_timeout(self.limits.total_timeout, "total", self.post_form(&self.revoke, form)).await??;
        if status.is_success() {
            return Ok(());
        }
        classify_json(status, &body).and(Err(OAuthError::BadResponse(format!("HTTP {}", status.as_u16()))))
    }

    /// The TLS client configuration, to share with the Direct API's client.
    pub fn tls(&self) -> &ClientTls {
        &self.tls
    }

    /// Replaces the client secret (SIGHUP re-reads it).
    pub fn set_secret(&self, secret: Secret<Arc<str>>) {
        *self.secret.write().unwrap_or_else(|poison| poison.into_inner()) = secret;
    }

    fn secret(&self) -> Secret<Arc<str>> {
        self.secret.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Where to send the browser: `{oauth}authorize?response_type=code&…`.
    pub fn authorize_url(&self, state: &UrlSafe32, code_challenge: &UrlSafe32) -> Vec<u8> {
        // base64url needs no percent-encoding; one allocation of the exact
        // size, in bytes: a header value takes them as they are, with no
        // UTF-8 check.
        [
            self.authorize_head.as_bytes(),
            state.as_bytes(),
            b"&code_challenge=",
            code_challenge.as_bytes(),
            self.authorize_tail.as_bytes(),
        ]
        .concat()
    }

    /// Asks for a device code (`POST {oauth}device/code`): the start of the
    /// device flow. Only the client id is sent, as Yandex's docs say.
    pub async fn request_device_code(
        &self,
        device_id: Option<&str>,
        device_name: Option<&str>,
    ) -> Result<DeviceCode, OAuthError> {
        let mut form = vec![("client_id", self.client_id.as_str())];
        if let Some(id) = device_id {
            form.push(("device_id", id));
            if let Some(name) = device_name {
                form.push(("device_name", name));
            }
        }
        let (status, body) = with_timeout(
            self.limits.total_timeout,
            "total",
            self.post_form(&self.device, form_encode(&form)),
        )
        .await??;
        DeviceCode::from_json(classify_json(status, &body)?)
    }

    /// One poll of the device flow (`grant_type=device_code`; Yandex names
    /// the parameter `code`). `authorization_pending` and `slow_down` come
    /// back as [`OAuthError::Rejected`] for the caller to wait on.
    pub async fn poll_device(&self, device_code: &Secret<String>) -> Result<Token, OAuthError> {
        let secret = self.secret();
        let form = [
            ("grant_type", "device_code"),
            ("code", device_code.expose().as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.expose()),
        ];
        self.request_token(form_encode(&form)).await
    }

    /// Trades an authorization code and its PKCE verifier for a token.
    pub async fn exchange_code(
        &self,
        code: &Secret<String>,
        verifier: &Secret<String>,
    ) -> Result<Token, OAuthError> {
        let secret = self.secret();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose().as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.expose()),
            ("code_verifier", verifier.expose().as_str()),
        ];
        // RFC 6749 §4.1.3: required here when it was in the authorize request.
        if let Some(redirect_uri) = &self.redirect_uri {
            form.push(("redirect_uri", redirect_uri));
        }
        self.request_token(form_encode(&form)).await
    }

    /// Trades a refresh token for a new token (RFC 6749 §6).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Token, OAuthError> {
        let secret = self.secret();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.expose()),
        ];
        self.request_token(form_encode(&form)).await
    }

    async fn request_token(&self, form: String) -> Result<Token, OAuthError> {
        let (status, body) =
            with_timeout(self.limits.total_timeout, "total", self.post_form(&self.token, form)).await??;
        classify(status, &body)
    }

    /// One form POST on a fresh connection.
    async fn post_form(&self, endpoint: &Endpoint, form: String) -> Result<(StatusCode, Bytes), OAuthError> {
        let request = Request::post(endpoint.path())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)));
        self.send(endpoint, request).await
    }

    /// One request to `endpoint` on a fresh connection.
    async fn send(
        &self,
        endpoint: &Endpoint,
        request: Result<Request<Full<Bytes>>, hyper::http::Error>,
    ) -> Result<(StatusCode, Bytes), OAuthError> {
        let request =
            request.map_err(|err| OAuthError::Unreachable(format!("building the request: {err}")))?;
        let tls = self.tls.config().map_err(|err| OAuthError::Unreachable(err.to_string()))?;
        let (parts, body) = https_request(&TlsConnector::from(tls), &self.limits, endpoint, request).await?;
        Ok((parts.status, body))
    }
}

/// What `device/code` answers: the code to poll with (secret), the one the
/// user types, where they type it, and the timing.
#[derive(Debug)]
pub struct DeviceCode {
    /// Sent back when polling; as good as a token once the user allows it.
    pub device_code: Secret<String>,
    /// What the user enters at `verification_url`.
    pub user_code: String,
    /// The page where the user enters the code (live: `https://ya.ru/device`).
    pub verification_url: String,
    /// The wait between polls.
    pub interval: Duration,
    /// How long the codes are good for.
    pub expires_in: Duration,
}

impl DeviceCode {
    fn from_json(json: Value) -> Result<DeviceCode, OAuthError> {
        let text = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty() && !value.chars().any(char::is_control))
                .map(str::to_owned)
                .ok_or_else(|| {
                    OAuthError::BadResponse(format!("device/code answered without a usable {name}"))
                })
        };
        let seconds = |name: &str, default: u64| json.get(name).and_then(Value::as_u64).unwrap_or(default);
        let verification_url = text("verification_url")?;
        if !verification_url.starts_with("https://") && !verification_url.starts_with("http://") {
            return Err(OAuthError::BadResponse(
                "device/code answered a verification_url that is not a URL".into(),
            ));
        }
        Ok(DeviceCode {
            device_code: Secret::new(text("device_code")?),
            user_code: text("user_code")?,
            verification_url,
            // RFC 8628 §3.2: 5 seconds when not given. Never faster than 1 s.
            interval: Duration::from_secs(seconds("interval", 5).clamp(1, 60)),
            expires_in: Duration::from_secs(seconds("expires_in", 300).clamp(1, 3600)),
        })
    }
}

/// Sorts an answer into a token, the provider's OAuth error, or junk.
fn classify(status: StatusCode, body: &[u8]) -> Result<Token, OAuthError> {
    let json = classify_json(status, body)?;
    // RFC 6750: the token is sent as `Authorization: Bearer`; a token of
    // another type would be unusable with the Direct API.
    let bearer = json
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("bearer"));
    if !bearer {
        return Err(OAuthError::NotAToken("the token_type is not bearer".to_owned()));
    }
    Token::from_json(json).ok_or_else(|| OAuthError::NotAToken("JSON without an access_token".to_owned()))
}

/// Sorts an answer into a 2xx JSON value, the provider's OAuth error, or junk.
fn classify_json(status: StatusCode, body: &[u8]) -> Result<Value, OAuthError> {
    if status.is_server_error() {
        return Err(OAuthError::BadResponse(format!("HTTP {}", status.as_u16())));
    }
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        if status.is_success() {
            return Err(OAuthError::NotAToken(format!(
                "HTTP {} with a body that is not JSON",
                status.as_u16()
            )));
        }
        return Err(OAuthError::BadResponse(format!(
            "HTTP {} with a body that is not JSON",
            status.as_u16()
        )));
    };
    if status.is_success() {
        return Ok(json);
    }
    match json.get("error").and_then(Value::as_str) {
        Some(error @ ("invalid_client" | "unauthorized_client")) => {
            Err(OAuthError::CredentialsRefused { error: error.to_owned() })
        }
        Some(error) if status.is_client_error() => Err(OAuthError::Rejected {
            error: printable(error, 128),
            description: json.get("error_description").and_then(Value::as_str).map(|d| printable(d, 512)),
        }),
        _ => Err(OAuthError::BadResponse(format!("unexpected HTTP {}", status.as_u16()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_encodes_the_fixed_parts_once_and_copies_the_rest() {
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let limits = ClientLimits {
            connect_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(1),
            max_body: 1024,
        };
        let client = OAuthClient::new(
            "id &?".into(),
            Secret::new(Arc::from("secret")),
            "https://oauth.example/",
            Endpoint::parse("https://oauth.example/token").unwrap(),
            Some("https://me.example/get_token?x=1".into()),
            ClientTls::ready(Arc::new(tls)),
            limits,
        );
        let state = UrlSafe32::encode(&[1; 32]);
        let challenge = UrlSafe32::encode(&[2; 32]);
        let url = client.authorize_url(&state, &challenge);
        assert_eq!(
            String::from_utf8(url.clone()).unwrap(),
            format!(
                "https://oauth.example/authorize?response_type=code&client_id=id%20%26%3F&state={}\
                 &code_challenge={}&code_challenge_method=S256\
                 &redirect_uri=https%3A%2F%2Fme.example%2Fget_token%3Fx%3D1",
                state.as_str(),
                challenge.as_str()
            )
        );
        assert_eq!(url.len(), url.capacity());
    }

    #[test]
    fn pkce_pairs_are_fresh_and_consistent() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.expose().as_str().len(), 43);
        let digest = ring::digest::digest(&ring::digest::SHA256, a.verifier.expose().as_str().as_bytes());
        assert_eq!(a.challenge.as_str(), crate::util::encoding::base64_url(digest.as_ref()));
    }

    #[test]
    fn classification_follows_the_design() {
        let ok = classify(StatusCode::OK, br#"{"access_token":"t","token_type":"bearer"}"#);
        assert!(ok.is_ok());
        let rejected = classify(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"Code has expired"}"#,
        );
        assert!(matches!(rejected, Err(OAuthError::Rejected { ref error, .. }) if error == "invalid_grant"));
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, b"{}").unwrap_err().status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(classify(StatusCode::OK, b"<html>").unwrap_err().status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            classify(StatusCode::OK, br#"{"access_token":"","token_type":"bearer"}"#).unwrap_err().status(),
            StatusCode::BAD_GATEWAY
        );
        assert!(classify(StatusCode::OK, br#"{"access_token":"t","token_type":"Bearer"}"#).is_ok());
        for odd in [br#"{"access_token":"t","token_type":"mac"}"#.as_slice(), br#"{"access_token":"t"}"#] {
            assert_eq!(classify(StatusCode::OK, odd).unwrap_err().status(), StatusCode::BAD_GATEWAY);
        }
        for error in ["invalid_client", "unauthorized_client"] {
            let body = format!(r#"{{"error":"{error}","error_description":"Client not found"}}"#);
            let refused = classify(StatusCode::UNAUTHORIZED, body.as_bytes()).unwrap_err();
            assert!(matches!(refused, OAuthError::CredentialsRefused { .. }), "{refused:?}");
            assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
        }
        assert_eq!(
            classify(StatusCode::NOT_FOUND, b"not json").unwrap_err().status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn token_debug_shows_no_values() {
        let token = Token::from_json(json!({"access_token": "SECRET-VALUE"})).unwrap();
        assert!(!format!("{token:?}").contains("SECRET-VALUE"));
    }
}
