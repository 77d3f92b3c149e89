//! The Direct API's own view of a token: `clients.get` (`POST
//! {direct}clients`, `Authorization: Bearer`) says whether Direct accepts
//! it and under which client login, the one `Client-Login` must name.
//! Yandex ID's login may be a whole e-mail address, which Direct rejects.
//! The outcome is stored with each account and shown by `status`, `list`
//! and the browser's answer, with the fix for each known refusal.

use std::fmt;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

use crate::tls::ClientTls;
use crate::tls::https::{ClientLimits, HttpsError, https_request, with_timeout};
use crate::util::encoding::printable;
use crate::util::endpoint::Endpoint;

/// Talks to the Direct API's `clients` service.
pub struct DirectClient {
    clients: Endpoint,
    tls: ClientTls,
    limits: ClientLimits,
}

impl fmt::Debug for DirectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectClient").field("clients", &self.clients).finish_non_exhaustive()
    }
}

/// What Direct said of a token, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectCheck {
    /// Unix time of the check.
    pub checked_at: u64,
    /// The verdict.
    pub outcome: Outcome,
}

/// Direct's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Direct accepts the token; requests name this client login.
    Ready {
        /// `clients.get`'s `Login`.
        client_login: String,
    },
    /// Direct refused with one of its error codes.
    Refused {
        /// Direct's `error_code` (53, 58, 513, …).
        code: i64,
        /// Direct's `error_string` and `error_detail`.
        text: String,
    },
    /// No usable answer: unreachable, timed out, 5xx, not JSON.
    Failed(String),
}

impl DirectClient {
    /// A client for the API at `base` (ending in `/`), with the token
    /// endpoint's limits and trust anchors.
    pub fn new(base: &Endpoint, tls: ClientTls, limits: ClientLimits) -> DirectClient {
        let clients = base.join("clients");
        DirectClient { clients, tls, limits }
    }

    /// Asks Direct about `access_token` now. Never fails: a failure is an
    /// [`Outcome::Failed`].
    pub async fn check(&self, access_token: &str, now: u64) -> DirectCheck {
        DirectCheck { checked_at: now, outcome: self.outcome(access_token).await }
    }

    async fn outcome(&self, access_token: &str) -> Outcome {
        let body = json!({"method": "get", "params": {"FieldNames": ["Login", "ClientId"]}});
        let request = Request::post(self.clients.path())
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .header(ACCEPT_LANGUAGE, "en")
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body.to_string())));
        let Ok(request) = request else { return Outcome::Failed("the request could not be built".into()) };
        let tls = match self.tls.config() {
            Ok(tls) => tls,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let sent = with_timeout(
            self.limits.total_timeout,
            "total",
            https_request(&TlsConnector::from(tls), &self.limits, &self.clients, request),
        )
        .await;
        match sent {
            Ok(Ok((parts, body))) => classify(parts.status, &body),
            Ok(Err(err)) | Err(err) => Outcome::Failed(describe(&err)),
        }
    }
}

/// The HTTPS client's failure, as the Direct API's.
fn describe(err: &HttpsError) -> String {
    match err {
        HttpsError::Timeout(phase) => format!("the Direct API did not answer in time ({phase})"),
        HttpsError::Unreachable(why) => format!("the Direct API is unreachable: {why}"),
        HttpsError::TooLarge(max) => format!("the Direct API answered with more than {max} bytes"),
    }
}

/// Reads Direct's answer whatever its HTTP status: an `error` object is a
/// refusal, `result.Clients[0].Login` acceptance, anything else a failure.
fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Failed(format!("the Direct API answered HTTP {} without JSON", status.as_u16()));
    };
    if let Some(error) = json.get("error") {
        let code = error
            .get("error_code")
            .and_then(|code| code.as_i64().or_else(|| code.as_str().and_then(|text| text.parse().ok())));
        let text = ["error_string", "error_detail"]
            .iter()
            .filter_map(|field| error.get(*field).and_then(Value::as_str))
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        return match code {
            // "The authorization server is temporarily unavailable" and
            // Direct's own server errors: nothing is wrong with the token.
            Some(code @ (52 | 1000..=1002)) => Outcome::Failed(format!(
                "the Direct API is temporarily unavailable (error {code}: {})",
                printable(&text, 300)
            )),
            Some(code) => Outcome::Refused { code, text: printable(&text, 300) },
            None => Outcome::Failed("the Direct API answered an error without a code".into()),
        };
    }
    let login = json.pointer("/result/Clients/0/Login").and_then(Value::as_str);
    match login {
        // A login's characters only: it is printed, and used as a header value.
        Some(login) if status.is_success() && crate::config::valid_login(login) => {
            Outcome::Ready { client_login: login.to_owned() }
        }
        _ => Outcome::Failed(format!(
            "the Direct API answered HTTP {} without a client login",
            status.as_u16()
        )),
    }
}

impl DirectCheck {
    /// Whether Direct accepts the token.
    pub fn usable(&self) -> bool {
        matches!(self.outcome, Outcome::Ready { .. })
    }

    /// Whether Direct refused the token (an error code), as opposed to
    /// accepting it or not being reached.
    pub fn refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused { .. })
    }

    /// The client login, when Direct named one.
    pub fn client_login(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Ready { client_login } => Some(client_login),
            _ => None,
        }
    }

    /// A short status word: `ok`, `error 58`, `unreachable`.
    pub fn status(&self) -> String {
        match &self.outcome {
            Outcome::Ready { .. } => "ok".to_owned(),
            Outcome::Refused { code, .. } => format!("error {code}"),
            Outcome::Failed(_) => "unreachable".to_owned(),
        }
    }

    /// The `/metrics` label: `ok`, `error_58`, `unreachable`.
    pub fn label(&self) -> String {
        self.status().replace(' ', "_")
    }

    /// One sentence for people: ready as whom, or what is wrong and what
    /// to do about it.
    pub fn advice(&self) -> String {
        match &self.outcome {
            Outcome::Ready { client_login } => {
                format!("ready for the Direct API as client login {client_login}")
            }
            Outcome::Refused { code, text } => {
                format!("the Direct API refused it (error {code}: {text}); {}", fix(*code))
            }
            Outcome::Failed(why) => {
                format!("not checked with the Direct API: {why}; run yandex-token status later")
            }
        }
    }

    /// The form stored in an account's file.
    pub fn to_json(&self) -> Value {
        let mut value = json!({ "checked_at": self.checked_at, "status": self.status() });
        match &self.outcome {
            Outcome::Ready { client_login } => value["client_login"] = client_login.clone().into(),
            Outcome::Refused { code, text } => {
                value["error_code"] = (*code).into();
                value["error"] = text.clone().into();
                value["fix"] = fix(*code).into();
            }
            Outcome::Failed(why) => value["error"] = why.clone().into(),
        }
        value
    }

    /// Reads what [`DirectCheck::to_json`] stored; `None` for anything else.
    pub fn from_json(value: &Value) -> Option<DirectCheck> {
        let checked_at = value.get("checked_at")?.as_u64()?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
        let outcome = match value.get("status")?.as_str()? {
            "ok" => Outcome::Ready { client_login: value.get("client_login")?.as_str()?.to_owned() },
            "unreachable" => Outcome::Failed(text("error")),
            _ => Outcome::Refused { code: value.get("error_code")?.as_i64()?, text: text("error") },
        };
        Some(DirectCheck { checked_at, outcome })
    }
}

/// What to do about Direct's error `code`.
pub fn fix(code: i64) -> &'static str {
    match code {
        53 => "the token is invalid, expired or revoked (a password change revokes them all): log in again",
        58 => {
            "the app's API access request is not approved yet: submit or check it in Direct's API settings \
               (https://direct.yandex.com/registered/main.pl?cmd=apiSettings)"
        }
        513 => "this Yandex account has no Direct client: log in with the account that owns the campaigns",
        54 => {
            "the token lacks a right this request needs (the error names it): check the app's access rights at \
               oauth.yandex.ru, then log in again to grant them"
        }
        8800 => {
            "Direct knows no such login: check the Client-Login the request sends (yandex-token list shows each \
               token's client login)"
        }
        _ => "see Direct's error codes: https://yandex.com/dev/direct/doc/en/concepts/errors",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whatever_the_status() {
        let ok = br#"{"result":{"Clients":[{"Login":"shop-client","ClientId":42}]}}"#;
        assert_eq!(classify(StatusCode::OK, ok), Outcome::Ready { client_login: "shop-client".into() });
        let refused = br#"{"error":{"request_id":"1","error_code":58,"error_string":"Incomplete registration","error_detail":"Finish it"}}"#;
        for status in [StatusCode::OK, StatusCode::BAD_REQUEST] {
            assert_eq!(
                classify(status, refused),
                Outcome::Refused { code: 58, text: "Incomplete registration: Finish it".into() }
            );
        }
        let string_code = br#"{"error":{"error_code":"513","error_string":"Not connected"}}"#;
        assert!(matches!(classify(StatusCode::OK, string_code), Outcome::Refused { code: 513, .. }));
        assert!(matches!(classify(StatusCode::INTERNAL_SERVER_ERROR, b"<html>"), Outcome::Failed(_)));
        // 52 and 1000-1002: retry later, never "log in again".
        for code in [52, 1000, 1001, 1002] {
            let body = format!(
                r#"{{"error":{{"error_code":{code},"error_string":"Server temporarily unavailable"}}}}"#
            );
            let outcome = classify(StatusCode::OK, body.as_bytes());
            let check = DirectCheck { checked_at: 1, outcome: outcome.clone() };
            assert!(matches!(outcome, Outcome::Failed(_)), "{code}");
            assert_eq!(check.status(), "unreachable");
            assert!(check.advice().contains("later") && !check.advice().contains("log in again"), "{code}");
        }
        let refused = |code: i64| DirectCheck {
            checked_at: 1,
            outcome: Outcome::Refused { code, text: String::new() },
        };
        assert!(refused(53).advice().contains("log in again"));
        assert!(refused(54).advice().contains("lacks a right"));
        assert!(refused(8800).advice().contains("Client-Login"));
        assert!(matches!(classify(StatusCode::OK, b"{}"), Outcome::Failed(_)));
        assert!(matches!(classify(StatusCode::OK, br#"{"result":{"Clients":[]}}"#), Outcome::Failed(_)));
    }

    /// Direct's text reaches terminals and log lines: a client login with
    /// other than a login's characters is refused, and control characters
    /// (a terminal escape, a forged log line) never pass.
    #[test]
    fn text_from_direct_is_shown_as_text() {
        let odd = br#"{"result":{"Clients":[{"Login":"shop\u001b[2Jx","ClientId":42}]}}"#;
        assert!(matches!(classify(StatusCode::OK, odd), Outcome::Failed(_)));
        let spaced = br#"{"result":{"Clients":[{"Login":"shop client","ClientId":42}]}}"#;
        assert!(matches!(classify(StatusCode::OK, spaced), Outcome::Failed(_)));
        let escape = br#"{"error":{"error_code":53,"error_string":"Auth\u001b]0;pwned\u0007 error\nlevel=info forged","error_detail":"\u202edetail"}}"#;
        let Outcome::Refused { code, text } = classify(StatusCode::OK, escape) else { panic!() };
        assert_eq!(code, 53);
        assert_eq!(text, "Auth]0;pwned errorlevel=info forged: detail");
    }

    #[test]
    fn checks_round_trip_through_their_stored_form() {
        for outcome in [
            Outcome::Ready { client_login: "shop".into() },
            Outcome::Refused { code: 53, text: "Authorization error".into() },
            Outcome::Failed("timed out".into()),
        ] {
            let check = DirectCheck { checked_at: 1_800_000_000, outcome };
            assert_eq!(DirectCheck::from_json(&check.to_json()), Some(check.clone()));
        }
        let refused =
            DirectCheck { checked_at: 1, outcome: Outcome::Refused { code: 58, text: String::new() } };
        assert!(refused.advice().contains("API settings"));
        assert_eq!(refused.label(), "error_58");
    }
}
