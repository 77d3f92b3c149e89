//! [`AccountRow`]: one stored account as `list` and `status` print it, in
//! text (tab-separated, for people and `cut`) and JSON (for scripts), so
//! the two commands cannot drift apart.

use serde_json::{Value, json};

use crate::oauth::direct::DirectCheck;
use crate::store::TokenDoc;
use crate::util::time::date;

/// One account's line.
#[derive(Debug)]
pub(crate) struct AccountRow {
    /// The login (or `(token.json)`).
    pub(crate) login: String,
    obtained_at: Option<u64>,
    expires_at: Option<u64>,
    /// Whole days until the token expires.
    pub(crate) days_left: Option<i64>,
    /// What the Direct API said: just now (`status`) or last (`list`).
    pub(crate) check: Option<DirectCheck>,
}

impl AccountRow {
    /// The row of a stored document, with `check` as the Direct verdict.
    pub(crate) fn new(login: String, doc: &TokenDoc, check: Option<DirectCheck>, now: u64) -> AccountRow {
        AccountRow {
            login,
            obtained_at: doc.obtained_at,
            expires_at: doc.expires_at(),
            days_left: doc.days_left(now),
            check,
        }
    }

    /// `LOGIN\tclient C\t[obtained D\texpires D\t]N days left\tdirect S`.
    pub(crate) fn text(&self, with_dates: bool) -> String {
        let days = self.days_left.map_or_else(|| "unknown".to_owned(), |days| days.to_string());
        let dates = if with_dates {
            let show = |t: Option<u64>| t.map_or_else(|| "unknown".to_owned(), date);
            format!("obtained {}\texpires {}\t", show(self.obtained_at), show(self.expires_at))
        } else {
            String::new()
        };
        format!(
            "{}\tclient {}\t{dates}{days} days left\tdirect {}",
            self.login,
            self.client_login().unwrap_or("-"),
            self.status()
        )
    }

    /// The row as JSON: every field, whichever command prints it.
    pub(crate) fn json(&self) -> Value {
        json!({
            "login": self.login,
            "client_login": self.client_login(),
            "obtained_at": self.obtained_at,
            "expires_at": self.expires_at,
            "days_left": self.days_left,
            "direct": self.status(),
            "usable": self.check.as_ref().map(DirectCheck::usable),
            "advice": self.check.as_ref().map(DirectCheck::advice),
        })
    }

    fn client_login(&self) -> Option<&str> {
        self.check.as_ref().and_then(DirectCheck::client_login)
    }

    fn status(&self) -> String {
        self.check.as_ref().map_or_else(|| "unchecked".to_owned(), DirectCheck::status)
    }
}

/// Prints rows: a JSON array, or one text line each.
pub(crate) fn print(rows: &[AccountRow], as_json: bool, with_dates: bool) {
    if as_json {
        println!("{}", Value::Array(rows.iter().map(AccountRow::json).collect()));
    } else {
        for row in rows {
            println!("{}", row.text(with_dates));
        }
    }
}
