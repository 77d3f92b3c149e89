//! The stored tokens at a terminal: `show` (the token alone, or `--env`
//! lines), `list` (one line per account) and `refresh` (new tokens for old
//! refresh tokens, each checked with the Direct API).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Failure, runtime};
use crate::config::Config;
use crate::http::app;
use crate::oauth::{OAuthClient, OAuthError};
use crate::store::{TokenStore, days_left, expires_at};
use crate::util::error::StartupError;
use crate::util::time::{date, now_unix};

pub(crate) fn token_store(config: &Config) -> TokenStore {
    TokenStore::new(config.token_dir.clone().unwrap_or_else(|| PathBuf::from("tokens")))
}

/// `show [--login L]`: the stored access token alone on stdout; exit 1
/// when there is none.
pub fn show(config: &Config) -> ExitCode {
    let store = token_store(config);
    let path = match &config.login {
        Some(login) => store.account_path(login),
        None => store.path(),
    };
    match crate::store::load_file(&path) {
        Ok(Some(doc)) => match doc.get("access_token").and_then(|t| t.as_str()) {
            Some(token) if config.env => show_env(&doc, token),
            Some(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            None => {
                crate::error!("{} has no access_token", path.display());
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            crate::error!(
                "no token stored yet ({} does not exist): open https://YOUR-DOMAIN/get_token and click Allow",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            crate::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// `show --env`: the token and client login under the names Direct tools
/// read, for `eval`, `EnvironmentFile=` or a CI secret.
fn show_env(doc: &serde_json::Map<String, serde_json::Value>, token: &str) -> ExitCode {
    let checked = doc.get("direct").and_then(crate::oauth::direct::DirectCheck::from_json);
    // Direct's own login; Yandex ID's is only good when it is not an e-mail.
    let client_login =
        checked.as_ref().and_then(|check| check.client_login().map(str::to_owned)).or_else(|| {
            doc.get("login").and_then(|l| l.as_str()).filter(|l| !l.contains('@')).map(str::to_owned)
        });
    let Some(client_login) = client_login else {
        crate::error!("the client login is not known yet: run yandex-token status to ask the Direct API");
        return ExitCode::FAILURE;
    };
    println!("YANDEX_DIRECT_TOKEN={}", shell_word(token));
    println!("YANDEX_DIRECT_LOGIN={}", shell_word(&client_login));
    ExitCode::SUCCESS
}

/// `value` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:@/+=".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// The accounts `list` and `refresh --all` act on: every `accounts/*.json`,
/// or `token.json` alone when no account has a file (its login unknown).
pub(crate) fn stored_tokens(store: &TokenStore) -> Result<Vec<(String, PathBuf)>, StartupError> {
    let accounts = store.accounts().map_err(|err| StartupError::msg(err.to_string()))?;
    if accounts.is_empty() && store.path().exists() {
        return Ok(vec![("(token.json)".to_owned(), store.path())]);
    }
    Ok(accounts.into_iter().map(|(login, _)| (login.clone(), store.account_path(&login))).collect())
}

/// `list [--json]`: one line per stored account.
pub fn list(config: &Config) -> ExitCode {
    let store = token_store(config);
    let targets = match stored_tokens(&store) {
        Ok(targets) => targets,
        Err(err) => {
            crate::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let now = now_unix();
    let mut rows = Vec::new();
    for (login, path) in targets {
        let doc = match crate::store::load_file(&path) {
            Ok(Some(doc)) => doc,
            Ok(None) => continue,
            Err(err) => {
                crate::error!("{err}");
                return ExitCode::FAILURE;
            }
        };
        let obtained = doc.get("obtained_at").and_then(|v| v.as_u64());
        let expires = expires_at(&doc);
        let days_left = days_left(&doc, now);
        let direct = doc.get("direct").and_then(crate::oauth::direct::DirectCheck::from_json);
        rows.push((login, obtained, expires, days_left, direct));
    }
    if config.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(login, obtained, expires, days, direct)| {
                serde_json::json!({
                    "login": login,
                    "client_login": direct.as_ref().and_then(|check| check.client_login()),
                    "obtained_at": obtained,
                    "expires_at": expires,
                    "days_left": days,
                    "direct": direct.as_ref().map_or_else(|| "unchecked".to_owned(), |check| check.status()),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(json));
    } else {
        if rows.is_empty() {
            crate::info!("no tokens stored in {} yet", store.dir().display());
        }
        for (login, obtained, expires, days, direct) in rows {
            let show = |t: Option<u64>| t.map_or_else(|| "unknown".to_owned(), date);
            let days = days.map_or_else(|| "unknown".to_owned(), |d| d.to_string());
            let client = direct.as_ref().and_then(|check| check.client_login()).unwrap_or("-");
            let status = direct.as_ref().map_or_else(|| "unchecked".to_owned(), |check| check.status());
            println!(
                "{login}\tclient {client}\tobtained {}\texpires {}\t{days} days left\tdirect {status}",
                show(obtained),
                show(expires)
            );
        }
    }
    ExitCode::SUCCESS
}

/// `refresh [--login L | --all] [--if-expires-within DAYS]`: trades each
/// stored refresh token for a new token. A file is replaced only once the
/// new token is safely written; token.json follows the account it holds.
pub(crate) fn refresh(config: &Config) -> Result<(), Failure> {
    let store = token_store(config);
    let targets = if config.all {
        stored_tokens(&store).map_err(Failure::runtime)?
    } else if let Some(login) = &config.login {
        vec![(login.clone(), store.account_path(login))]
    } else {
        vec![("(token.json)".to_owned(), store.path())]
    };
    if targets.is_empty() {
        return Err(Failure::runtime(StartupError::msg(format!(
            "no tokens stored in {} yet: run the browser flow at /get_token first",
            store.dir().display()
        ))));
    }
    let secret_file = config.client_secret_file.as_deref().ok_or_else(|| {
        Failure::config(StartupError::msg(
            "no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE)",
        ))
    })?;
    let oauth = app::oauth_client(config, app::read_secret(secret_file).map_err(Failure::config)?)
        .map_err(Failure::config)?;
    let direct = app::direct_client(config, oauth.tls().clone());
    let runtime = runtime()?;
    let mut failed = 0;
    for (label, path) in targets {
        match refresh_one(&store, &oauth, direct.as_ref(), &runtime, config, &path) {
            Ok(Some(days)) => crate::info!("{label}: refreshed, expires in {days} days"),
            Ok(None) => crate::info!("{label}: not due (expires later than --if-expires-within)"),
            Err(err) => {
                failed += 1;
                crate::error!("{label}: {err}");
            }
        }
    }
    if failed > 0 {
        return Err(Failure::runtime(StartupError::msg(format!("{failed} token(s) could not be refreshed"))));
    }
    Ok(())
}

/// Refreshes the token in `path`; `Ok(None)` when the expiry filter skips it.
fn refresh_one(
    store: &TokenStore,
    oauth: &OAuthClient,
    direct: Option<&crate::oauth::direct::DirectClient>,
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    path: &std::path::Path,
) -> Result<Option<i64>, String> {
    let doc = crate::store::load_file(path)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("{} does not exist", path.display()))?;
    if let (Some(window), Some(expires)) = (config.if_expires_within, expires_at(&doc)) {
        if expires > now_unix() + window {
            return Ok(None);
        }
    }
    let refresh_token = doc
        .get("refresh_token")
        .and_then(|t| t.as_str())
        .ok_or_else(|| format!("{} has no refresh_token", path.display()))?;
    let token = runtime.block_on(oauth.refresh(refresh_token)).map_err(|err| {
        let hint = match &err {
            OAuthError::Rejected { error, .. } if error == "invalid_grant" => {
                ": the refresh token is revoked or expired; run the browser flow at /get_token again"
            }
            _ => "",
        };
        format!("refresh failed: {err}{hint}")
    })?;
    let mut new_doc = TokenStore::document(token);
    if let Some(map) = new_doc.as_object_mut() {
        // Providers may omit a new refresh token; keep using the old one then.
        if !map.contains_key("refresh_token") {
            map.insert("refresh_token".into(), refresh_token.into());
        }
        for field in ["login", "id"] {
            if let Some(value) = doc.get(field) {
                map.insert(field.into(), value.clone());
            }
        }
    }
    // Whether Direct still accepts it (never a reason not to store it).
    if let Some(direct) = direct {
        let access_token = new_doc["access_token"].as_str().unwrap_or("").to_owned();
        let check = runtime.block_on(direct.check(&access_token, now_unix()));
        if !check.usable() {
            crate::warn!(
                "{}: {}",
                doc.get("login").and_then(|l| l.as_str()).unwrap_or("token.json"),
                check.advice()
            );
        }
        new_doc["direct"] = check.to_json();
    }
    store
        .replace(path, &new_doc)
        .map_err(|err| format!("the new token could not be written ({err}); the old file is intact"))?;
    Ok(Some(days_left(new_doc.as_object().expect("a document is an object"), now_unix()).unwrap_or(0)))
}
