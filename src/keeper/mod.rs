//! The keeper floor: what every command that gets or keeps a token is
//! wired with, built once from the configuration ([`Keeper`]: the client
//! secret, the OAuth client, the Direct API client, the store, the
//! allow-list), and [`login`], the one sequence from a grant to a stored,
//! checked token that `serve`, `login` and `device` share.
//!
//! It imports `util`, `config`, `tls`, `oauth` and `store`; `http` and
//! `commands` build on it.

pub mod login;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, Limits};
use crate::oauth::OAuthClient;
use crate::oauth::direct::DirectClient;
use crate::store::TokenStore;
use crate::tls;
use crate::tls::https::ClientLimits;
use crate::util::error::StartupError;
use crate::util::metrics::Metrics;
use crate::util::secret::Secret;

/// What a login needs, shared cheaply (every part is behind an `Arc`), so
/// a login can run as a task of its own that outlives the request.
#[derive(Debug, Clone)]
pub struct Keeper {
    /// Talks to Yandex OAuth and Yandex ID.
    pub oauth: Arc<OAuthClient>,
    /// Asks the Direct API about each new token; `None` with
    /// `--direct-check=false`.
    pub direct: Option<Arc<DirectClient>>,
    /// `token.json` and `accounts/`.
    pub store: TokenStore,
    /// `--allow-login`; empty keeps any account's token.
    pub allow_logins: Arc<[String]>,
    /// `--device-id`: tokens are issued for this device (and can be revoked).
    pub device_id: Option<String>,
    /// Counts stored tokens and the upstream latency.
    pub metrics: Arc<Metrics>,
}

/// Where tokens live when neither `--token-dir` nor `$STATE_DIRECTORY` says.
const DEFAULT_TOKEN_DIR: &str = "tokens";

impl Keeper {
    /// Everything from the configuration: reads the client secret and
    /// `--ca-file`. Any failure names the flag or file to fix.
    pub fn from_config(config: &Config) -> Result<Keeper, StartupError> {
        let secret_file = config.client_secret_file.as_deref().ok_or_else(|| {
            StartupError::msg(
                "no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE), \
                 or run under systemd with LoadCredential=client_secret:…",
            )
        })?;
        let oauth = oauth_client(config, read_secret(secret_file)?)?;
        let direct = direct_client(config, oauth.tls().clone());
        Ok(Keeper::new(config, oauth, direct, token_store(config)))
    }

    /// Puts given parts together (the demo makes its own clients).
    pub fn new(
        config: &Config,
        oauth: OAuthClient,
        direct: Option<DirectClient>,
        store: TokenStore,
    ) -> Keeper {
        Keeper {
            oauth: Arc::new(oauth),
            direct: direct.map(Arc::new),
            store,
            allow_logins: config.allow_logins.clone().into(),
            device_id: config.device_id.clone(),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The token store `config` names (`--token-dir`, else `./tokens`).
pub fn token_store(config: &Config) -> TokenStore {
    TokenStore::new(config.token_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_DIR)))
}

/// The OAuth client for `config`, with the given secret: requires
/// `--client-id` and reads `--ca-file` (the system's roots are read when
/// the first exchange needs them). With `--device-id`, every authorize URL
/// asks for a device token.
pub fn oauth_client(config: &Config, secret: Secret<Arc<str>>) -> Result<OAuthClient, StartupError> {
    let client_id = config.client_id.clone().ok_or_else(|| {
        StartupError::msg("no client id: pass --client-id (or YANDEX_TOKEN_CLIENT_ID), the app's ClientID")
    })?;
    let client_tls = tls::ClientTls::deferred(config.ca_file.as_deref())?;
    Ok(OAuthClient::new(
        client_id,
        secret,
        &config.oauth_url,
        config.token_endpoint.clone(),
        config.redirect_uri.clone(),
        client_tls,
        client_limits(&config.limits),
    )
    .with_login_url(config.login_url.clone())
    .with_device(config.device_id.as_deref(), config.device_name.as_deref()))
}

/// The Direct API client for `config` (`None` with `--direct-check=false`),
/// over `tls`, with the token endpoint's limits.
pub fn direct_client(config: &Config, tls: tls::ClientTls) -> Option<DirectClient> {
    config.direct_url.as_ref().map(|base| DirectClient::new(base, tls, client_limits(&config.limits)))
}

/// The token-endpoint part of the limits.
pub fn client_limits(limits: &Limits) -> ClientLimits {
    ClientLimits {
        connect_timeout: limits.upstream_connect_timeout,
        total_timeout: limits.upstream_timeout,
        max_body: limits.upstream_max_body,
    }
}

/// Reads the client secret: the file's first line, trimmed. Never echoes it.
pub fn read_secret(path: &Path) -> Result<Secret<Arc<str>>, StartupError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        StartupError::with(format!("cannot read the client secret from {}", path.display()), err)
    })?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        return Err(StartupError::msg(format!("the client secret file {} is empty", path.display())));
    }
    Ok(Secret::new(Arc::from(secret)))
}
