//! A login, from a grant to a stored, checked token: exchange the code (or
//! take the device flow's token), ask Yandex ID whose it is, apply
//! `--allow-login`, save it, then ask the Direct API about it and add the
//! verdict to the stored account. The callback, the pasted code (page and
//! `login`) and the device flow all run this one sequence.
//!
//! It runs as a task of its own ([`Keeper::start`]), owning what it needs:
//! once Yandex has spent the code, a client that closes the connection or
//! resets the stream cannot stop the save. The caller watches its
//! [`Progress`]; nobody has to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Keeper;
use crate::oauth::{OAuthError, Token};
use crate::store::{Issued, Saved, TokenDoc, TokenStore};
use crate::util::secret::Secret;

/// What a login starts from.
#[derive(Debug)]
pub enum Grant {
    /// An authorization code and its PKCE verifier (the callback, the
    /// pasted code, `login`).
    Code {
        /// The code Yandex gave the user.
        code: Secret<String>,
        /// The flow's PKCE verifier.
        verifier: Secret<String>,
    },
    /// A token already issued (the device flow's poll got it).
    Token(Token),
}

/// A stored token and where it went.
#[derive(Debug)]
pub struct Kept {
    /// The stored document (with the Direct verdict once there is one).
    pub doc: TokenDoc,
    /// Where it was saved, and whether a later token of the account was
    /// already there.
    pub saved: Saved,
    /// Something the user should know (the account could not be named).
    pub warning: Option<String>,
}

/// Why a login ended without a stored token.
#[derive(Debug)]
pub enum LoginError {
    /// The token endpoint refused or failed: no token was issued.
    Exchange(OAuthError),
    /// The token belongs to an account not on `--allow-login`: it was not
    /// kept. `revoked` says whether Yandex revoked it (device tokens only)
    /// or why not.
    LoginNotAllowed {
        /// The account Yandex ID named.
        login: String,
        /// `Ok` when `revoke_token` said yes; otherwise its answer.
        revoked: Result<(), String>,
    },
    /// The token could not be stored; it is carried so it is not lost.
    NotStored {
        /// What went wrong, without the token.
        reason: String,
        /// The token document.
        token: Box<Secret<TokenDoc>>,
    },
}

impl LoginError {
    /// The refusal of an account not on `--allow-login`, as it happened.
    pub fn refusal_text(login: &str, revoked: &Result<(), String>) -> String {
        match revoked {
            Ok(()) => format!(
                "tokens of the Yandex account '{login}' are not kept here (--allow-login); the token was \
                 revoked at Yandex"
            ),
            Err(_) => format!(
                "tokens of the Yandex account '{login}' are not kept here (--allow-login); the token was \
                 dropped, not revoked (Yandex lets an app revoke only device tokens): its owner can revoke \
                 it at id.yandex.ru, Data access"
            ),
        }
    }
}

/// Where a login stands.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The exchange, the lookup or the save is under way.
    Running,
    /// Saved; the Direct API check still runs.
    Stored(Arc<Kept>),
    /// Saved and, when checks are on, checked.
    Finished(Arc<Kept>),
    /// Ended without a stored token.
    Failed(Arc<LoginError>),
}

/// A running login, watched.
#[derive(Debug, Clone)]
pub struct Login {
    progress: watch::Receiver<Progress>,
}

impl Login {
    /// Waits until the token is stored (or the login failed).
    pub async fn stored(&mut self) -> Progress {
        self.until(|progress| !matches!(progress, Progress::Running)).await
    }

    /// Waits until the Direct verdict is in, for at most `patience` after
    /// the token was stored; then says where the login stands.
    pub async fn settled(&mut self, patience: Duration) -> Progress {
        let stored = self.stored().await;
        if !matches!(stored, Progress::Stored(_)) {
            return stored;
        }
        let finished = self.until(|progress| !matches!(progress, Progress::Stored(_)));
        tokio::time::timeout(patience, finished).await.unwrap_or(stored)
    }

    async fn until(&mut self, done: impl Fn(&Progress) -> bool) -> Progress {
        loop {
            let now = self.progress.borrow_and_update().clone();
            if done(&now) {
                return now;
            }
            if self.progress.changed().await.is_err() {
                // The task ended: what it last said is final.
                return self.progress.borrow().clone();
            }
        }
    }
}

impl Keeper {
    /// Starts a login as its own task; `hold` (an exchange slot, say) is
    /// kept until the task ends. Must be called within a Tokio runtime.
    pub fn start(&self, grant: Grant, hold: impl Send + 'static) -> Login {
        let (report, progress) = watch::channel(Progress::Running);
        let keeper = self.clone();
        tokio::spawn(async move {
            let _hold = hold;
            keeper.run(grant, &report).await;
        });
        Login { progress }
    }

    async fn run(&self, grant: Grant, report: &watch::Sender<Progress>) {
        let failed = |err: LoginError| {
            report.send_replace(Progress::Failed(Arc::new(err)));
        };
        // The store's lock from before the exchange to the save, as a
        // refresh holds it around its call: tokens are then issued in the
        // order they are written, and the newest always wins. A store that
        // cannot be locked (a read-only directory) still gets its save
        // tried, which hands the token over when it fails.
        let lock = self.in_store(TokenStore::lock).await.and_then(Result::ok);
        let token = match grant {
            Grant::Token(token) => token,
            Grant::Code { code, verifier } => {
                let started = Instant::now();
                let token = self.oauth.exchange_code(&code, &verifier).await;
                self.metrics.upstream_latency(started.elapsed());
                match token {
                    Ok(token) => token,
                    Err(err) => return failed(LoginError::Exchange(err)),
                }
            }
        };
        let started = Instant::now();
        let account = self.oauth.lookup_account(token.access_token()).await;
        self.metrics.upstream_latency(started.elapsed());
        let mut doc = TokenDoc::issued(token);
        doc.device_id = self.device_id.clone();
        let not_stored = |reason: String, doc: TokenDoc| LoginError::NotStored {
            reason,
            token: Box::new(Secret::new(doc)),
        };
        let mut warning = None;
        match account {
            Ok(account) if !self.allow_logins.is_empty() && !self.allow_logins.contains(&account.login) => {
                let revoked = self.oauth.revoke(&doc.access_token).await.map_err(|err| err.to_string());
                crate::warn!(
                    "a token of '{}', not on --allow-login, was {}",
                    account.login,
                    if revoked.is_ok() { "revoked" } else { "dropped (Yandex did not revoke it)" }
                );
                return failed(LoginError::LoginNotAllowed { login: account.login, revoked });
            }
            Ok(account) => {
                doc.login = Some(account.login);
                doc.id = account.id;
            }
            // Without a name the allow-list cannot be checked: keep nothing,
            // but hand the token over rather than throw it away.
            Err(err) if !self.allow_logins.is_empty() => {
                crate::error!("a new token was not stored: whose it is could not be checked ({err})");
                return failed(not_stored(
                    format!("whose token this is could not be checked against --allow-login: {err}"),
                    doc,
                ));
            }
            Err(err) => {
                crate::warn!(
                    "the account of a new token could not be looked up ({err}); stored as token.json only"
                );
                warning = Some(
                    "the Yandex account could not be looked up: the token is stored as token.json only"
                        .to_owned(),
                );
            }
        }
        let saved = {
            let doc = doc.clone();
            self.in_store(move |store| match lock {
                Some(lock) => store.keep_issued_locked(&lock, &doc, Issued::Login),
                None => store.keep_issued(&doc, Issued::Login),
            })
            .await
            .unwrap_or_else(|| Err(std::io::Error::other("the storing task failed")))
        };
        let saved = match saved {
            Ok(saved) => saved,
            Err(err) => {
                let reason = format!("writing into {} failed: {err}", self.store.dir().display());
                crate::error!("a new token of {} was not stored: {reason}", doc.login_or_unknown());
                return failed(not_stored(reason, doc));
            }
        };
        if saved.superseded {
            crate::warn!(
                "a new token of {} was not written: {} already holds one issued later",
                doc.login_or_unknown(),
                saved.file.display()
            );
        } else {
            self.metrics.token_stored();
            crate::info!("stored the token of {} in {}", doc.login_or_unknown(), saved.file.display());
        }
        if let Some(direct) = &self.direct {
            report.send_replace(Progress::Stored(Arc::new(Kept {
                doc: doc.clone(),
                saved: saved.clone(),
                warning: warning.clone(),
            })));
            let check = direct.check(&doc.access_token, crate::util::time::now_unix()).await;
            if check.usable() {
                crate::info!("{}: {}", doc.login_or_unknown(), check.advice());
            } else {
                crate::warn!("{}: {}", doc.login_or_unknown(), check.advice());
            }
            doc.direct = Some(check.to_json());
            if !saved.superseded {
                let (login, token, verdict) = (doc.login.clone(), doc.access_token.clone(), check.to_json());
                let recorded =
                    self.in_store(move |store| store.record_verdict(login.as_deref(), &token, verdict)).await;
                if let Some(Err(err)) = recorded {
                    crate::warn!(
                        "the Direct API's verdict could not be stored in {}: {err}",
                        self.store.dir().display()
                    );
                }
            }
        }
        self.recount().await;
        report.send_replace(Progress::Finished(Arc::new(Kept { doc, saved, warning })));
    }

    /// Counts the stored tokens by Direct status for `/metrics`, off the
    /// runtime's thread: a scrape only renders what was counted.
    pub async fn recount(&self) {
        if let Some(counts) = self.in_store(TokenStore::direct_counts).await {
            self.metrics.set_direct_tokens(counts);
        }
    }

    /// Runs file work on the store on the blocking pool, off the runtime's
    /// thread; `None` only if that task died.
    async fn in_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&TokenStore) -> T + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store)).await.ok()
    }
}
