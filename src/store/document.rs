//! [`TokenDoc`]: one stored token, typed. The fields we read are named; any
//! other field Yandex sent (or a later version wrote) rides along in
//! `other` and is written back unchanged, so a rewrite loses nothing.

use std::fmt;

use serde_json::{Map, Value};

use crate::oauth::Token;
use crate::oauth::direct::DirectCheck;

/// A stored token document: the provider's fields plus ours. Its `Debug`
/// shows the login and which fields are set, never a value.
#[derive(Clone, Default, PartialEq)]
pub struct TokenDoc {
    /// The access token.
    pub access_token: String,
    /// `bearer`, as Yandex says.
    pub token_type: Option<String>,
    /// The refresh token; it never leaves the store.
    pub refresh_token: Option<String>,
    /// The token's lifetime in seconds, from `obtained_at`.
    pub expires_in: Option<u64>,
    /// Unix seconds when the token arrived.
    pub obtained_at: Option<u64>,
    /// Unix microseconds when the token arrived: orders two tokens of one
    /// second, so the newest Yandex issued wins.
    pub obtained_at_us: Option<u64>,
    /// The Yandex login it belongs to; `None` when Yandex ID did not say.
    pub login: Option<String>,
    /// The Yandex ID account id.
    pub id: Option<String>,
    /// Set when the token was issued for a device (`--device-id`): only
    /// such tokens can be revoked by the app.
    pub device_id: Option<String>,
    /// What the Direct API last said of the token ([`DirectCheck`]'s form).
    pub direct: Option<Value>,
    /// Every other field, kept as it came.
    pub other: Map<String, Value>,
}

impl fmt::Debug for TokenDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenDoc")
            .field("login", &self.login)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

impl TokenDoc {
    /// The document for a token that just arrived from Yandex, stamped now.
    pub fn issued(token: Token) -> TokenDoc {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as u64);
        let mut doc = TokenDoc::from_map(token.into_map()).expect("a Token has an access_token");
        doc.obtained_at = Some(now / 1_000_000);
        doc.obtained_at_us = Some(now);
        doc
    }

    /// Reads a document; `None` unless it has a non-empty `access_token`
    /// string. A named field of another type stays in `other`, as it came.
    pub fn from_map(mut map: Map<String, Value>) -> Option<TokenDoc> {
        let access_token = match map.remove("access_token") {
            Some(Value::String(token)) if !token.is_empty() => token,
            _ => return None,
        };
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let number = |value: &Value| value.as_u64().or_else(|| value.as_str()?.parse().ok());
        let token_type = take(&mut map, "token_type", text);
        let refresh_token = take(&mut map, "refresh_token", text);
        let login = take(&mut map, "login", text);
        let device_id = take(&mut map, "device_id", text);
        let expires_in = take(&mut map, "expires_in", number);
        let obtained_at = take(&mut map, "obtained_at", number);
        let obtained_at_us = take(&mut map, "obtained_at_us", number);
        let id = take(&mut map, "id", |value| match value {
            Value::Number(id) => Some(id.to_string()),
            other => text(other),
        });
        let direct = map.remove("direct").filter(|value| !value.is_null());
        Some(TokenDoc {
            access_token,
            token_type,
            refresh_token,
            expires_in,
            obtained_at,
            obtained_at_us,
            login,
            id,
            device_id,
            direct,
            other: map,
        })
    }

    /// The document as JSON: the named fields, then the others.
    pub fn to_json(&self) -> Value {
        let mut map = self.other.clone();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(name.to_owned(), value);
            }
        };
        put("access_token", Some(self.access_token.clone().into()));
        put("token_type", self.token_type.clone().map(Value::from));
        put("refresh_token", self.refresh_token.clone().map(Value::from));
        put("expires_in", self.expires_in.map(Value::from));
        put("obtained_at", self.obtained_at.map(Value::from));
        put("obtained_at_us", self.obtained_at_us.map(Value::from));
        put("login", self.login.clone().map(Value::from));
        put("id", self.id.clone().map(Value::from));
        put("device_id", self.device_id.clone().map(Value::from));
        put("direct", self.direct.clone());
        // An unknown account is said as such, not left out.
        map.entry("login").or_insert(Value::Null);
        Value::Object(map)
    }

    /// The bytes written to disk: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(&self.to_json()).expect("a JSON value serialises");
        bytes.push(b'\n');
        bytes
    }

    /// When the token arrived, in microseconds: what orders two tokens.
    pub fn issued_us(&self) -> u64 {
        self.obtained_at_us.or_else(|| self.obtained_at.map(|secs| secs * 1_000_000)).unwrap_or(0)
    }

    /// When the token expires (`obtained_at + expires_in`), if it says.
    pub fn expires_at(&self) -> Option<u64> {
        self.obtained_at?.checked_add(self.expires_in?)
    }

    /// Whole days from `now` until the token expires (negative once it has).
    pub fn days_left(&self, now: u64) -> Option<i64> {
        self.expires_at().map(|at| (at as i64 - now as i64).div_euclid(86_400))
    }

    /// The expiry for people: the date, and the lifetime in whole days.
    pub fn expiry(&self) -> Option<(String, u64)> {
        Some((crate::util::time::date(self.expires_at()?), self.expires_in? / 86_400))
    }

    /// What the Direct API last said of this token, when it was asked.
    pub fn direct_check(&self) -> Option<DirectCheck> {
        self.direct.as_ref().and_then(DirectCheck::from_json)
    }

    /// The login to show: Yandex's, or a placeholder for `token.json`
    /// without one.
    pub fn login_or_unknown(&self) -> &str {
        self.login.as_deref().unwrap_or("(unknown account)")
    }

    /// The document a client may see: everything but the refresh token.
    pub fn without_refresh_token(&self) -> Value {
        let mut json = self.to_json();
        if let Some(fields) = json.as_object_mut() {
            fields.remove("refresh_token");
        }
        json
    }
}

/// Takes the field `name` out of `map` as `read` reads it. A value `read`
/// refuses stays in `map`, as it came (a `null` is dropped).
fn take<T>(map: &mut Map<String, Value>, name: &str, read: impl Fn(&Value) -> Option<T>) -> Option<T> {
    let value = map.remove(name)?;
    let read = read(&value);
    if read.is_none() && !value.is_null() {
        map.insert(name.to_owned(), value);
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let stored = json!({
            "access_token": "a", "token_type": "bearer", "refresh_token": "r", "expires_in": 31536000,
            "obtained_at": 1_800_000_000u64, "login": "alice", "id": 42, "scope": "direct:api",
            "future": {"x": [1, 2]}
        });
        let doc = TokenDoc::from_map(stored.as_object().unwrap().clone()).unwrap();
        assert_eq!(doc.id.as_deref(), Some("42"));
        assert_eq!(doc.expires_at(), Some(1_800_000_000 + 31_536_000));
        let written = doc.to_json();
        assert_eq!(written["scope"], "direct:api");
        assert_eq!(written["future"], json!({"x": [1, 2]}));
        assert_eq!(written["refresh_token"], "r");
        assert_eq!(TokenDoc::from_map(written.as_object().unwrap().clone()).unwrap(), doc);
    }

    #[test]
    fn a_field_of_another_type_is_kept_as_it_came() {
        let odd = json!({"access_token": "a", "expires_in": "soon", "login": 7});
        let doc = TokenDoc::from_map(odd.as_object().unwrap().clone()).unwrap();
        assert_eq!((doc.expires_in, doc.login.as_deref()), (None, None));
        let written = doc.to_json();
        assert_eq!((&written["expires_in"], &written["login"]), (&json!("soon"), &json!(7)));
        assert!(TokenDoc::from_map(json!({"token_type": "bearer"}).as_object().unwrap().clone()).is_none());
    }

    #[test]
    fn debug_shows_no_token() {
        let doc = TokenDoc::from_map(
            json!({"access_token": "y0_secret", "refresh_token": "1:r:secret"}).as_object().unwrap().clone(),
        )
        .unwrap();
        let printed = format!("{doc:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(!doc.without_refresh_token().to_string().contains("1:r:"));
    }
}
