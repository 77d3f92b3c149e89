//! `yandex-token status [--login L | --all] [--json]`: asks the Direct API
//! about each stored token now, stores the answer with the account, and
//! prints one line each (login, client login, days left, Direct status).
//! Exit 0 when every checked token is usable, 1 otherwise, so a timer, cron
//! or monitoring can alert; each problem is also a warning-priority line
//! naming the login and the fix.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::commands::EXIT_CONFIG;
use crate::commands::tokens::{stored_tokens, token_store};
use crate::config::Config;
use crate::oauth::direct::{DirectCheck, DirectClient};
use crate::store::{TokenStore, days_left, load_file};
use crate::util::time::now_unix;

/// Tokens expiring within this many days are a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// One account's line.
struct Row {
    login: String,
    check: DirectCheck,
    days_left: Option<i64>,
}

/// Runs `status`.
pub fn run(config: &Config) -> ExitCode {
    if config.direct_url.is_none() {
        crate::error!("status asks the Direct API, and --direct-check=false turns that off");
        return ExitCode::from(EXIT_CONFIG);
    }
    let tls = match crate::tls::ClientTls::deferred(config.ca_file.as_deref()) {
        Ok(tls) => tls,
        Err(err) => {
            crate::error!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let direct = crate::http::app::direct_client(config, tls).expect("checked above");
    let store = token_store(config);
    let targets = match &config.login {
        Some(login) if !config.all => vec![(login.clone(), store.account_path(login))],
        _ => match stored_tokens(&store) {
            Ok(targets) => targets,
            Err(err) => {
                crate::error!("{err}");
                return ExitCode::FAILURE;
            }
        },
    };
    if targets.is_empty() {
        crate::error!("no tokens stored in {} yet", store.dir().display());
        return ExitCode::FAILURE;
    }
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(failure) => {
            crate::error!("{}", failure.error);
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    for (login, path) in targets {
        match check_one(&store, &direct, &runtime, &path) {
            Ok((check, days_left)) => rows.push(Row { login, check, days_left }),
            Err(err) => {
                crate::error!("{login}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    print(config.json, &rows);
    let mut all_usable = true;
    for row in &rows {
        if !row.check.usable() {
            all_usable = false;
            crate::warn!("{}: {}", row.login, row.check.advice());
        }
        if let Some(days) = row.days_left.filter(|days| *days <= EXPIRY_WARNING_DAYS) {
            crate::warn!(
                "{}: the token expires in {days} days: yandex-token refresh --login {} (the refresh timer does it \
                 daily within 30 days), or log in again",
                row.login,
                row.login
            );
        }
    }
    if all_usable { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Checks the token in `path` and stores the outcome with it (and in
/// `token.json` when that holds the same token).
fn check_one(
    store: &TokenStore,
    direct: &DirectClient,
    runtime: &tokio::runtime::Runtime,
    path: &Path,
) -> Result<(DirectCheck, Option<i64>), String> {
    let mut doc = load_file(path)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("{} does not exist", path.display()))?;
    let token = doc
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{} has no access_token", path.display()))?
        .to_owned();
    let check = runtime.block_on(direct.check(&token, now_unix()));
    doc.insert("direct".into(), check.to_json());
    let days_left = days_left(&doc, now_unix());
    if let Err(err) = store.replace(path, &Value::Object(doc)) {
        crate::warn!("the check's outcome could not be stored in {}: {err}", store.dir().display());
    }
    Ok((check, days_left))
}

fn print(as_json: bool, rows: &[Row]) {
    if as_json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|row| {
                json!({
                    "login": row.login,
                    "client_login": row.check.client_login(),
                    "days_left": row.days_left,
                    "direct": row.check.status(),
                    "usable": row.check.usable(),
                    "advice": row.check.advice(),
                })
            })
            .collect();
        println!("{}", Value::Array(rows));
        return;
    }
    for row in rows {
        let days = row.days_left.map_or_else(|| "unknown".to_owned(), |days| days.to_string());
        println!(
            "{}\tclient {}\t{days} days left\tdirect {}",
            row.login,
            row.check.client_login().unwrap_or("-"),
            row.check.status()
        );
    }
}
