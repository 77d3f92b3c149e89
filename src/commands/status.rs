//! `yandex-token status [--login L | --all] [--json]`: asks the Direct API
//! about each stored token now, stores the answer with the account, and
//! prints one line each (login, client login, days left, Direct status).
//! Exit 0 when every checked token is usable, 1 otherwise, so a timer, cron
//! or monitoring can alert; each problem is also a warning-priority line
//! naming the login and the fix.

use std::process::ExitCode;

use crate::commands::EXIT_CONFIG;
use crate::commands::rows::{AccountRow, print};
use crate::commands::tokens::{Target, named_target, stored_tokens};
use crate::config::Config;
use crate::keeper::token_store;
use crate::oauth::direct::{DirectCheck, DirectClient};
use crate::store::TokenStore;
use crate::util::time::now_unix;

/// Tokens expiring within this many days are a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

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
    let direct = crate::keeper::direct_client(config, tls).expect("checked above");
    let store = token_store(config);
    let (targets, skipped) = match &config.login {
        Some(login) if !config.all => match named_target(&store, Some(login)) {
            Ok(target) => (vec![target], 0),
            Err(why) => {
                crate::error!("{login}: {why}");
                return ExitCode::FAILURE;
            }
        },
        _ => match stored_tokens(&store) {
            Ok(found) => found,
            Err(err) => {
                crate::error!("{err}");
                return ExitCode::FAILURE;
            }
        },
    };
    if targets.is_empty() && skipped == 0 {
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
    let rows: Vec<AccountRow> = targets
        .into_iter()
        .map(|target| {
            let check = check_one(&store, &direct, &runtime, &target);
            AccountRow::new(target.label, &target.doc, Some(check), now_unix())
        })
        .collect();
    print(&rows, config.json, false);
    let mut all_usable = skipped == 0;
    for row in &rows {
        if let Some(check) = row.check.as_ref().filter(|check| !check.usable()) {
            all_usable = false;
            crate::warn!("{}: {}", row.login, check.advice());
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

/// Checks a stored token and stores the outcome in each file that still
/// holds that token: one replaced meanwhile (a login, a refresh) keeps
/// what it has.
fn check_one(
    store: &TokenStore,
    direct: &DirectClient,
    runtime: &tokio::runtime::Runtime,
    target: &Target,
) -> DirectCheck {
    let check = runtime.block_on(direct.check(&target.doc.access_token, now_unix()));
    match store.record_verdict(target.doc.login.as_deref(), &target.doc.access_token, check.to_json()) {
        Ok(0) => crate::warn!(
            "{}: the token was replaced while it was checked; this verdict was not stored",
            target.label
        ),
        Ok(_) => {}
        Err(err) => {
            crate::warn!("the check's outcome could not be stored in {}: {err}", store.dir().display())
        }
    }
    check
}
