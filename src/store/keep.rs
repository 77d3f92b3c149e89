//! What every way of logging in does once Yandex has issued a token: ask
//! Yandex ID whose it is, apply `--allow-login`, and store it. The callback,
//! the pasted code (page and `login`) and the device flow all end in
//! [`keep`], so they cannot drift apart. Each kept token is also checked
//! with the Direct API ([`crate::oauth::direct`]).

use std::time::Instant;

use serde_json::Value;

use super::TokenStore;
use crate::oauth::direct::DirectClient;
use crate::oauth::{OAuthClient, Token};
use crate::util::metrics::Metrics;
use crate::util::secret::Secret;

/// Where a new token goes and who may keep one.
#[derive(Debug, Clone, Copy)]
pub struct Keeper<'a> {
    /// Asks whose the token is; revokes a refused one.
    pub oauth: &'a OAuthClient,
    /// `token.json` and `accounts/`.
    pub store: &'a TokenStore,
    /// `--allow-login`; empty keeps any account's token.
    pub allow_logins: &'a [String],
    /// Counts the lookup's latency and the stored token.
    pub metrics: &'a Metrics,
    /// Asks the Direct API about the token; `None` with `--direct-check=false`.
    pub direct: Option<&'a DirectClient>,
}

/// Why a new token was not kept. The caller says it: `http` as an answer,
/// `login` and `device` on the terminal.
#[derive(Debug)]
pub enum KeepError {
    /// The token belongs to an account not on `--allow-login`; it was
    /// revoked and not stored.
    LoginNotAllowed(String),
    /// The token could not be stored; it is carried so it is not lost.
    NotStored {
        /// What went wrong, without the token.
        reason: String,
        /// The token document.
        token: Secret<Value>,
    },
}

/// Looks the account up, applies the allow-list and stores the token
/// (`accounts/LOGIN.json`, then `token.json`) before returning its
/// document. A token that cannot be stored comes back inside the error, so
/// the one copy is never lost.
pub async fn keep(keeper: Keeper<'_>, token: Token) -> Result<Value, KeepError> {
    let started = Instant::now();
    let account = keeper.oauth.lookup_account(token.access_token()).await;
    keeper.metrics.upstream_latency(started.elapsed());
    if !keeper.allow_logins.is_empty() {
        match &account {
            Ok(account) if !keeper.allow_logins.contains(&account.login) => {
                if let Err(err) = keeper.oauth.revoke(token.access_token()).await {
                    crate::warn!("a token of an account not on --allow-login could not be revoked: {err}");
                }
                return Err(KeepError::LoginNotAllowed(account.login.clone()));
            }
            Ok(_) => {}
            // Without a name the allow-list cannot be checked: keep nothing,
            // but hand the token over rather than throw it away.
            Err(err) => {
                return Err(KeepError::NotStored {
                    reason: format!("whose token this is could not be checked against --allow-login: {err}"),
                    token: Secret::new(TokenStore::document(token)),
                });
            }
        }
    }
    // Before storing, so the account's file says whether Direct accepts
    // the token; a failed check is stored as such, never a failed store.
    let direct = match keeper.direct {
        Some(direct) => Some(direct.check(token.access_token(), crate::util::time::now_unix()).await),
        None => None,
    };
    let mut doc = TokenStore::document(token);
    if let Some(check) = &direct {
        doc["direct"] = check.to_json();
    }
    let login = match &account {
        Ok(account) => {
            doc["login"] = account.login.clone().into();
            if let Some(id) = &account.id {
                doc["id"] = id.clone().into();
            }
            Some(account.login.clone())
        }
        Err(_) => {
            doc["login"] = Value::Null;
            None
        }
    };
    let store = keeper.store.clone();
    let saved = {
        let doc = doc.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(login) = &login {
                store.save_account(login, &doc)?;
            }
            store.save(&doc)
        })
        .await
    };
    match saved {
        Ok(Ok(())) => {
            keeper.metrics.token_stored();
            if let Err(err) = &account {
                crate::warn!(
                    "the account of a new token could not be looked up ({err}); stored as token.json only"
                );
                doc["warning"] =
                    "the Yandex account could not be looked up: the token is stored as token.json only"
                        .into();
            }
            Ok(doc)
        }
        Ok(Err(err)) => Err(KeepError::NotStored {
            reason: format!("writing into {} failed: {err}", keeper.store.dir().display()),
            token: Secret::new(doc),
        }),
        Err(_) => {
            Err(KeepError::NotStored { reason: "the storing task failed".into(), token: Secret::new(doc) })
        }
    }
}
