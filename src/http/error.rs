//! The two error types: [`AppError`] for the request path, which owns every
//! choice of status code and JSON error body, and [`StartupError`] for
//! everything that can stop the process from starting, with the context an
//! operator needs ("failed to read certificate certs/fullchain.pem: …").

use hyper::StatusCode;
use serde_json::json;

use crate::http::response::{Body, json_response};
use crate::keeper::login::LoginError;
use crate::oauth::OAuthError;
use crate::util::secret::Secret;

/// Why a request failed. [`AppError::into_response`] is the only place a
/// status and a JSON error body are chosen.
#[derive(Debug)]
pub enum AppError {
    /// The request itself is malformed (bad query, duplicate parameter).
    BadRequest(String),
    /// The `state` is missing, unknown, expired, reused or not this browser's.
    BadState(&'static str),
    /// The user clicked Deny, or the provider sent `?error=` back.
    Denied {
        /// The provider's `error` code, e.g. `access_denied`.
        error: String,
        /// The provider's `error_description`, possibly empty.
        description: String,
    },
    /// The token endpoint refused or failed.
    Upstream(OAuthError),
    /// The token was obtained but could not be stored. The token is carried
    /// so the user can still copy it: the code is single use.
    StoreFailed {
        /// What went wrong, without the token.
        reason: String,
        /// The token document that could not be written.
        token: Secret<serde_json::Value>,
    },
    /// The token belongs to a Yandex account not on `--allow-login`: not
    /// stored; the text says whether Yandex revoked it.
    LoginNotAllowed(String),
    /// Only the ACME placeholder certificate is served so far.
    CertificatePending,
    /// A form posted from another site (`Sec-Fetch-Site`/`Origin`).
    CrossSite,
    /// A request body of another type; the value is the one accepted.
    UnsupportedMediaType(&'static str),
    /// A request body over the cap, in bytes.
    PayloadTooLarge(usize),
    /// A request body that did not arrive in time.
    RequestTimeout,
    /// Any of the above ending a flow whose cookie the browser should drop:
    /// answered as `error`, with a `Set-Cookie` that clears the cookie.
    FlowEnded {
        /// What went wrong.
        error: Box<AppError>,
        /// The `Set-Cookie` value that removes the flow's cookie.
        clear_cookie: String,
    },
    /// A token exchange may not start now (`--max-exchanges`,
    /// `--exchange-rate`); Yandex was not called.
    TooBusy(crate::http::exchanges::Busy),
    /// No route for this path.
    NotFound,
    /// The path exists but not for this method; the value is `Allow`.
    MethodNotAllowed(&'static str),
}

impl AppError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) | AppError::BadState(_) => StatusCode::BAD_REQUEST,
            AppError::Denied { error, .. } if error == "access_denied" => StatusCode::FORBIDDEN,
            AppError::Denied { .. } => StatusCode::BAD_REQUEST,
            AppError::Upstream(err) => err.status(),
            AppError::StoreFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::LoginNotAllowed(_) => StatusCode::FORBIDDEN,
            AppError::CertificatePending => StatusCode::SERVICE_UNAVAILABLE,
            AppError::CrossSite => StatusCode::FORBIDDEN,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::FlowEnded { error, .. } => error.status(),
            AppError::TooBusy(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The JSON body, in the OAuth error shape `{"error", "error_description"}`.
    pub fn body(&self) -> serde_json::Value {
        let (error, description) = match self {
            AppError::BadRequest(why) => ("invalid_request", why.clone()),
            AppError::BadState(why) => ("invalid_state", (*why).to_owned()),
            AppError::Denied { error, description } => {
                return json!({ "error": error, "error_description": description });
            }
            AppError::Upstream(err) => return err.body(),
            AppError::StoreFailed { reason, token } => {
                return json!({
                    "error": "token_not_stored",
                    "error_description": format!(
                        "the token was issued but could not be stored ({reason}); copy it from this answer now"
                    ),
                    "token": token.expose(),
                });
            }
            AppError::LoginNotAllowed(text) => ("login_not_allowed", text.clone()),
            AppError::CertificatePending => (
                "certificate_pending",
                "this server is still getting its TLS certificate over ACME; try again in a minute"
                    .to_owned(),
            ),
            AppError::CrossSite => (
                "cross_site_request",
                "this form may only be posted from this server's own page: open /get_token here".to_owned(),
            ),
            AppError::UnsupportedMediaType(accepted) => {
                ("unsupported_media_type", format!("the body must be {accepted}"))
            }
            AppError::PayloadTooLarge(max) => {
                ("payload_too_large", format!("the body is larger than {max} bytes"))
            }
            AppError::RequestTimeout => {
                ("request_timeout", "the request body did not arrive in time".to_owned())
            }
            AppError::FlowEnded { error, .. } => return error.body(),
            AppError::TooBusy(busy) => {
                ("too_many_exchanges", format!("{}: try again in {} seconds", busy.reason, busy.retry_after))
            }
            AppError::NotFound => ("not_found", "no such path".to_owned()),
            AppError::MethodNotAllowed(allow) => ("method_not_allowed", format!("this path allows {allow}")),
        };
        json!({ "error": error, "error_description": description })
    }

    /// A short, secret-free label for the log line.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::BadState(_) => "bad_state",
            AppError::Denied { .. } => "denied",
            AppError::Upstream(err) => err.kind(),
            AppError::StoreFailed { .. } => "store_failed",
            AppError::LoginNotAllowed(_) => "login_not_allowed",
            AppError::CertificatePending => "certificate_pending",
            AppError::CrossSite => "cross_site",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::RequestTimeout => "request_timeout",
            AppError::FlowEnded { error, .. } => error.kind(),
            AppError::TooBusy(_) => "too_many_exchanges",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
        }
    }

    /// What the log line adds after the label: the upstream's or the
    /// store's failure, which carry no secret.
    pub fn detail(&self) -> Option<String> {
        match self {
            AppError::Upstream(upstream) => Some(upstream.to_string()),
            AppError::StoreFailed { reason, .. } => Some(reason.clone()),
            AppError::FlowEnded { error, .. } => error.detail(),
            _ => None,
        }
    }

    /// What the person who got this error can do about it, in a sentence.
    pub fn advice(&self) -> String {
        match self {
            AppError::FlowEnded { error, .. } => error.advice(),
            AppError::BadState(_) => {
                "Start again in this browser, with cookies on, and finish within 10 minutes.".into()
            }
            AppError::BadRequest(_) => "Check what was pasted or sent, then start again.".into(),
            AppError::Denied { .. } => {
                "Access was not allowed at Yandex. Start again and click Allow to get a token.".into()
            }
            AppError::Upstream(OAuthError::Rejected { .. }) => {
                "Yandex refused the code: a code works once and for 10 minutes. Start again to get a new one."
                    .into()
            }
            AppError::Upstream(_) => {
                "Yandex could not be asked just now. Start again in a minute; if it keeps failing, tell \
                 whoever runs this server."
                    .into()
            }
            AppError::StoreFailed { .. } => {
                "The token was issued but this server could not store it: copy it below now, and tell \
                 whoever runs this server."
                    .into()
            }
            AppError::LoginNotAllowed(_) => {
                "Log in with a Yandex account whose tokens this server keeps (at Yandex, log out first or \
                 pick another account), then start again."
                    .into()
            }
            AppError::TooBusy(busy) => format!("Try again in {} seconds.", busy.retry_after),
            AppError::CertificatePending => "Try again in a minute.".into(),
            AppError::CrossSite => "Open /get_token on this server and use its own form.".into(),
            _ => "Start again from the beginning.".into(),
        }
    }

    /// The answer for a browser: the same status and headers as
    /// [`AppError::into_response`] (`Allow`, `Retry-After`, the cookie that
    /// ends a flow), with a short page instead of the JSON.
    pub fn into_page(self) -> hyper::Response<Body> {
        let what = self.body()["error_description"].as_str().unwrap_or("").to_owned();
        let todo = self.advice();
        let unstored = match &self {
            AppError::StoreFailed { token, .. } => Some(token.expose().to_string()),
            AppError::FlowEnded { error, .. } => match &**error {
                AppError::StoreFailed { token, .. } => Some(token.expose().to_string()),
                _ => None,
            },
            _ => None,
        };
        let mut response = self.into_response();
        let page = crate::http::pages::error(response.status(), &what, &todo, unstored.as_deref());
        let (parts, body) = page.into_parts();
        for name in [hyper::header::CONTENT_TYPE, hyper::header::CONTENT_SECURITY_POLICY] {
            if let Some(value) = parts.headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        *response.body_mut() = body;
        response
    }

    /// Wraps this error so its answer also clears the flow's cookie.
    pub fn ending_flow(self, clear_cookie: String) -> AppError {
        AppError::FlowEnded { error: Box::new(self), clear_cookie }
    }

    /// The response: status, JSON body, `Allow` for 405, `Retry-After` for
    /// 503, `Set-Cookie` for an ended flow.
    pub fn into_response(self) -> hyper::Response<Body> {
        if let AppError::FlowEnded { error, clear_cookie } = self {
            let mut response = error.into_response();
            if let Ok(clear) = hyper::header::HeaderValue::try_from(clear_cookie) {
                response.headers_mut().append(hyper::header::SET_COOKIE, clear);
            }
            return response;
        }
        let mut response = json_response(self.status(), &self.body());
        match self {
            AppError::MethodNotAllowed(allow) => {
                response
                    .headers_mut()
                    .insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static(allow));
            }
            AppError::CertificatePending => {
                response
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("30"));
            }
            AppError::TooBusy(busy) => {
                response.headers_mut().insert(hyper::header::RETRY_AFTER, busy.retry_after.into());
            }
            _ => {}
        }
        response
    }
}

impl From<&LoginError> for AppError {
    fn from(err: &LoginError) -> AppError {
        match err {
            LoginError::Exchange(err) => AppError::Upstream(err.clone()),
            LoginError::LoginNotAllowed { login, revoked } => {
                AppError::LoginNotAllowed(LoginError::refusal_text(login, revoked))
            }
            LoginError::NotStored { reason, token } => {
                AppError::StoreFailed { reason: reason.clone(), token: Secret::new(token.expose().to_json()) }
            }
        }
    }
}
