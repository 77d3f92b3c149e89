//! `yandex-token revoke --login L`: ends an account's token here. Yandex
//! lets an app revoke only tokens issued for a device (`--device-id`), so
//! such a token is revoked at Yandex; a regular one cannot be, and the
//! message says where its owner revokes it. Either way the account's file
//! (and `token.json`, when it holds that account) is removed, and the
//! output says which of the two happened.

use std::process::ExitCode;

use crate::commands::{EXIT_CONFIG, EXIT_USAGE};
use crate::config::Config;
use crate::keeper::{Keeper, token_store};
use crate::store::{LoadError, TokenDoc, load_file};

/// Where the owner of a regular token revokes it.
const USER_REVOKES_AT: &str =
    "id.yandex.ru, Data access (or by changing the password, or logging out on all devices)";

/// Runs `revoke`.
pub fn run(config: &Config) -> ExitCode {
    let Some(login) = config.login.as_deref() else {
        crate::error!(
            "revoke needs --login LOGIN: the account whose token to revoke (yandex-token list names them)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let store = token_store(config);
    let stored = match load_file(&store.account_path(login)) {
        Ok(Some(doc)) => Some(doc),
        // A damaged file is removed all the same; nothing can be revoked from it.
        Ok(None) | Err(LoadError::Corrupt(_)) => {
            store.load().ok().flatten().filter(|doc| doc.login.as_deref() == Some(login))
        }
        Err(err) => {
            crate::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let (at_yandex, revoke_failed) = match &stored {
        Some(doc) if doc.device_id.is_some() => match revoke_at_yandex(config, doc) {
            Ok(()) => ("revoked at Yandex".to_owned(), false),
            Err((code, why)) if code == EXIT_CONFIG => {
                crate::error!("{why}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err((_, why)) => {
                (format!("NOT revoked at Yandex ({why}); its owner can revoke it at {USER_REVOKES_AT}"), true)
            }
        },
        Some(_) => (
            format!(
                "not revoked at Yandex: it is a regular token, which Yandex lets only its owner revoke, at \
                 {USER_REVOKES_AT}; until then it stays valid until it expires"
            ),
            false,
        ),
        None => ("nothing to revoke at Yandex (no readable token)".to_owned(), false),
    };
    let removed = match store.remove_account(login) {
        Ok(removed) => removed,
        Err(err) => {
            crate::error!(
                "{login}: {at_yandex}; its files could not be removed from {}: {err}",
                store.dir().display()
            );
            return ExitCode::FAILURE;
        }
    };
    let files = match removed {
        (false, false) => {
            crate::error!("no token of {login} is stored in {}", store.dir().display());
            return ExitCode::FAILURE;
        }
        (true, false) => format!("removed {}", store.account_path(login).display()),
        (false, true) => format!("removed {}", store.path().display()),
        (true, true) => {
            format!("removed {} and {}", store.account_path(login).display(), store.path().display())
        }
    };
    println!("{login}: {at_yandex}; {files}");
    if revoke_failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Asks Yandex to revoke a device token; the error carries the exit status.
fn revoke_at_yandex(config: &Config, doc: &TokenDoc) -> Result<(), (u8, String)> {
    let keeper = Keeper::from_config(config).map_err(|err| (EXIT_CONFIG, err.to_string()))?;
    let runtime = super::runtime().map_err(|failure| (1, failure.error.to_string()))?;
    runtime.block_on(keeper.oauth.revoke(&doc.access_token)).map_err(|err| (1, err.to_string()))
}
