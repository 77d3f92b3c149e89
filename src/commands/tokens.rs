//! The stored tokens at a terminal: `show` (the token alone, or `--env`
//! lines), `list` (one line per account) and `refresh` (new tokens for old
//! refresh tokens, each checked with the Direct API).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::rows::{self, AccountRow};
use super::{Failure, runtime};
use crate::config::Config;
use crate::keeper::{Keeper, token_store};
use crate::oauth::OAuthError;
use crate::oauth::direct::DirectCheck;
use crate::store::{Issued, TokenDoc, TokenStore, load_file};
use crate::util::error::StartupError;
use crate::util::time::now_unix;

/// `show [--login L]`: the stored access token alone on stdout; exit 1
/// when there is none.
pub fn show(config: &Config) -> ExitCode {
    let store = token_store(config);
    let path = store.file_of(config.login.as_deref());
    match load_file(&path) {
        Ok(Some(doc)) if config.env => show_env(&doc),
        Ok(Some(doc)) => {
            println!("{}", doc.access_token);
            ExitCode::SUCCESS
        }
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
fn show_env(doc: &TokenDoc) -> ExitCode {
    // Handed out all the same (the verdict may be old), but not silently.
    if let Some(check) = doc.direct_check().filter(DirectCheck::refused) {
        crate::warn!(
            "{}: the Direct API refused this token when last asked ({}); {}",
            doc.login_or_unknown(),
            check.status(),
            check.advice()
        );
    }
    let Some(client_login) = client_login(doc) else {
        crate::error!("the client login is not known yet: run yandex-token status to ask the Direct API");
        return ExitCode::FAILURE;
    };
    println!("YANDEX_DIRECT_TOKEN={}", shell_word(&doc.access_token));
    println!("YANDEX_DIRECT_LOGIN={}", shell_word(&client_login));
    ExitCode::SUCCESS
}

/// The login Direct tools send as the client login: Direct's own, else
/// Yandex ID's when it is not an e-mail address.
pub(crate) fn client_login(doc: &TokenDoc) -> Option<String> {
    doc.direct_check()
        .and_then(|check| check.client_login().map(str::to_owned))
        .or_else(|| doc.login.clone().filter(|login| !login.contains('@')))
}

/// `value` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:@/+=".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// One stored token a command acts on: its label, file and document.
pub(crate) struct Target {
    pub(crate) label: String,
    pub(crate) path: PathBuf,
    pub(crate) doc: TokenDoc,
}

/// The accounts `list`, `status --all` and `refresh --all` act on: every
/// readable `accounts/*.json`, or `token.json` alone when no account has a
/// file (its login unknown). Each file that cannot be read is named in a
/// line at error priority and left out; the count of those comes back.
pub(crate) fn stored_tokens(store: &TokenStore) -> Result<(Vec<Target>, usize), StartupError> {
    let accounts = store.accounts().map_err(|err| StartupError::msg(err.to_string()))?;
    for err in &accounts.skipped {
        crate::error!("skipped: {err}");
    }
    let skipped = accounts.skipped.len();
    if accounts.found.is_empty() && skipped == 0 {
        return match store.load() {
            Ok(Some(doc)) => Ok((vec![Target { label: "(token.json)".into(), path: store.path(), doc }], 0)),
            Ok(None) => Ok((Vec::new(), 0)),
            Err(err) => {
                crate::error!("skipped: {err}");
                Ok((Vec::new(), 1))
            }
        };
    }
    let targets = accounts
        .found
        .into_iter()
        .map(|(login, doc)| Target { path: store.account_path(&login), label: login, doc })
        .collect();
    Ok((targets, skipped))
}

/// The one stored token `--login L` names (or `token.json`).
pub(crate) fn named_target(store: &TokenStore, login: Option<&str>) -> Result<Target, String> {
    let label = login.unwrap_or("(token.json)").to_owned();
    let path = store.file_of(login);
    match load_file(&path) {
        Ok(Some(doc)) => Ok(Target { label, path, doc }),
        Ok(None) => Err(format!(
            "no token stored in {} yet: run the browser flow at /get_token first",
            path.display()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// `list [--json]`: one line per stored account; a file that cannot be
/// read is named on stderr and the rest are listed.
pub fn list(config: &Config) -> ExitCode {
    let store = token_store(config);
    let targets = match stored_tokens(&store) {
        Ok((targets, _)) => targets,
        Err(err) => {
            crate::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if targets.is_empty() && !config.json {
        crate::info!("no tokens stored in {} yet", store.dir().display());
    }
    let now = now_unix();
    let rows: Vec<AccountRow> = targets
        .into_iter()
        .map(|Target { label, doc, .. }| {
            let check = doc.direct_check();
            AccountRow::new(label, &doc, check, now)
        })
        .collect();
    rows::print(&rows, config.json, true);
    ExitCode::SUCCESS
}

/// What became of one token in a refresh.
enum Refreshed {
    /// Refreshed; whole days left.
    Done(i64),
    /// Not due (`--if-expires-within`).
    NotDue,
    /// Another run (or a login) replaced it since this run read it.
    ByOther,
}

/// `refresh [--login L | --all] [--if-expires-within DAYS]`: trades each
/// stored refresh token for a new token. Each account is refreshed under
/// the store's lock, so two runs at once make one call to Yandex per
/// account; a new token that cannot be written is printed, never dropped.
pub(crate) fn refresh(config: &Config) -> Result<(), Failure> {
    let store = token_store(config);
    let (targets, mut failed) = if config.all {
        stored_tokens(&store).map_err(Failure::runtime)?
    } else {
        let target = named_target(&store, config.login.as_deref());
        (vec![target.map_err(|err| Failure::runtime(StartupError::msg(err)))?], 0)
    };
    if targets.is_empty() && failed == 0 {
        return Err(Failure::runtime(StartupError::msg(format!(
            "no tokens stored in {} yet: run the browser flow at /get_token first",
            store.dir().display()
        ))));
    }
    let keeper = Keeper::from_config(config).map_err(Failure::config)?;
    let runtime = runtime()?;
    for target in targets {
        match refresh_one(&keeper, &runtime, config, &target.path, &target.doc) {
            Ok(Refreshed::Done(days)) => crate::info!("{}: refreshed, expires in {days} days", target.label),
            Ok(Refreshed::NotDue) => {
                crate::info!("{}: not due (expires later than --if-expires-within)", target.label)
            }
            Ok(Refreshed::ByOther) => {
                crate::info!(
                    "{}: already replaced by another run or a login meanwhile; left as it is",
                    target.label
                )
            }
            Err(err) => {
                failed += 1;
                crate::error!("{}: {err}", target.label);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::runtime(StartupError::msg(format!("{failed} token(s) could not be refreshed"))));
    }
    Ok(())
}

/// Refreshes the token in `path`, which held `before` when this run began.
fn refresh_one(
    keeper: &Keeper,
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    path: &Path,
    before: &TokenDoc,
) -> Result<Refreshed, String> {
    let store = &keeper.store;
    // Held across the call to Yandex: a refresh token works once, so no
    // other process may spend it meanwhile.
    let lock = store.lock().map_err(|err| format!("cannot lock {}: {err}", store.dir().display()))?;
    let doc = load_file(path)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("{} does not exist", path.display()))?;
    if doc.refresh_token != before.refresh_token {
        return Ok(Refreshed::ByOther);
    }
    if let (Some(window), Some(expires)) = (config.if_expires_within, doc.expires_at()) {
        if expires > now_unix() + window {
            return Ok(Refreshed::NotDue);
        }
    }
    let refresh_token =
        doc.refresh_token.as_deref().ok_or_else(|| format!("{} has no refresh_token", path.display()))?;
    let token = runtime.block_on(keeper.oauth.refresh(refresh_token)).map_err(|err| {
        let hint = match &err {
            OAuthError::Rejected { error, .. } if error == "invalid_grant" => {
                ": Yandex no longer accepts this refresh token (expired, revoked, or already used); run \
                 the browser flow at /get_token again"
            }
            _ => "",
        };
        format!("refresh failed: {err}{hint}")
    })?;
    let mut new_doc = TokenDoc::issued(token);
    // Providers may omit a new refresh token; keep using the old one then.
    if new_doc.refresh_token.is_none() {
        new_doc.refresh_token = doc.refresh_token.clone();
    }
    new_doc.login = doc.login.clone();
    new_doc.id = doc.id.clone();
    new_doc.device_id = doc.device_id.clone();
    if let Err(err) = store.keep_issued_locked(&lock, &new_doc, Issued::Refresh) {
        // Yandex has already replaced the old refresh token: this document
        // is the only live one. It goes to stdout, for the operator.
        println!("{}", serde_json::to_string_pretty(&new_doc.to_json()).expect("a JSON value serialises"));
        return Err(format!(
            "the new token could not be written ({err}); Yandex has already replaced the old refresh token, \
             so the new token document is printed on stdout: save it as {} (mode 0600)",
            path.display()
        ));
    }
    drop(lock);
    // Whether Direct still accepts it (never a reason not to store it).
    if let Some(direct) = &keeper.direct {
        let check = runtime.block_on(direct.check(&new_doc.access_token, now_unix()));
        if !check.usable() {
            crate::warn!("{}: {}", new_doc.login_or_unknown(), check.advice());
        }
        if let Err(err) =
            store.record_verdict(new_doc.login.as_deref(), &new_doc.access_token, check.to_json())
        {
            crate::warn!("the Direct API's verdict could not be stored in {}: {err}", store.dir().display());
        }
    }
    Ok(Refreshed::Done(new_doc.days_left(now_unix()).unwrap_or(0)))
}
