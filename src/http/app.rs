//! [`App`]: everything a request handler needs, built once at start and
//! shared by every connection: the OAuth client, the flows in progress, the
//! token store, the certificate resolver and the limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::HeaderValue;
use rustls::ServerConfig;

use crate::config::{Config, Flow, Limits};
use crate::http::demo;
use crate::oauth::direct::DirectClient;
use crate::oauth::pending::PendingStates;
use crate::oauth::{ClientLimits, OAuthClient};
use crate::store::TokenStore;
use crate::tls::{self, CertResolver};
use crate::util::error::StartupError;
use crate::util::metrics::Metrics;
use crate::util::notify::Notifier;
use crate::util::secret::Secret;

/// Shared server state. Handlers get `&App`.
#[derive(Debug)]
pub struct App {
    /// Talks to the provider.
    pub oauth: OAuthClient,
    /// Flows between the redirect and the callback.
    pub pending: PendingStates,
    /// Whether `/get_token` redirects or shows the pasted-code page.
    pub flow: Flow,
    /// Where tokens go.
    pub store: TokenStore,
    /// The served certificate, swappable on SIGHUP.
    pub certs: Arc<CertResolver>,
    /// The rustls server configuration using `certs`.
    pub server_tls: Arc<ServerConfig>,
    /// Limits and timeouts for connections and requests.
    pub limits: Limits,
    /// The `Strict-Transport-Security` value sent on every TLS response.
    pub hsts: HeaderValue,
    /// The built-in stand-in for Yandex, in `demo` only.
    pub demo: Option<demo::Provider>,
    /// Re-read on SIGHUP; `None` when the secret did not come from a file.
    pub secret_file: Option<PathBuf>,
    /// The host the plain-HTTP listener redirects to, when pinned.
    pub public_host: Option<String>,
    /// Tells systemd about readiness, reloads and shutdown.
    pub notify: Notifier,
    /// Logins whose tokens are kept; empty means any.
    pub allow_logins: Vec<String>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Asks the Direct API about each new token; `None` with
    /// `--direct-check=false`.
    pub direct: Option<DirectClient>,
    /// Bounds the token exchanges strangers can make us do.
    pub exchanges: crate::http::exchanges::ExchangeLimits,
}

impl App {
    /// Builds the server state for `serve`: loads the certificate and key,
    /// the client secret and `--ca-file`. Any failure names the file.
    pub fn from_config(config: &Config) -> Result<App, StartupError> {
        let secret_file = config.client_secret_file.clone().ok_or_else(|| {
            StartupError::msg(
                "no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE), \
                 or run under systemd with LoadCredential=client_secret:…",
            )
        })?;
        let secret = read_secret(&secret_file)?;
        let oauth = oauth_client(config, secret)?;
        let certs = match &config.acme {
            Some(acme) => acme_resolver(acme)?,
            None => {
                let pair = tls::load_pair(&config.cert, &config.key)?;
                Arc::new(CertResolver::new(pair, Some((config.cert.clone(), config.key.clone()))))
            }
        };
        let token_dir = config.token_dir.clone().ok_or_else(|| StartupError::msg("no token directory"))?;
        let store = TokenStore::new(token_dir);
        // A token directory that cannot be fixed (read-only, say) is no
        // reason not to serve: a failed save still hands the token over.
        match store.fix_modes() {
            Ok(fixed) => fixed.into_iter().for_each(|line| crate::warn!("token store: {line}")),
            Err(err) => crate::warn!("token store: cannot check {}: {err}", store.dir().display()),
        }
        let direct = direct_client(config, oauth.tls().clone());
        App::assemble(config, oauth, certs, store, None, Some(secret_file), direct)
    }

    /// Puts the parts together; `demo` builds its own parts and calls this.
    pub fn assemble(
        config: &Config,
        oauth: OAuthClient,
        certs: Arc<CertResolver>,
        store: TokenStore,
        demo: Option<demo::Provider>,
        secret_file: Option<PathBuf>,
        direct: Option<DirectClient>,
    ) -> Result<App, StartupError> {
        let limits = config.limits.clone();
        let exchanges =
            crate::http::exchanges::ExchangeLimits::new(limits.max_exchanges, limits.exchanges_per_minute);
        // The demo runs on localhost: HSTS there would stick to every other
        // local development server in the user's browser, so it is cleared.
        let hsts = if demo.is_some() { "max-age=0" } else { "max-age=31536000" };
        Ok(App {
            oauth,
            pending: PendingStates::new(limits.state_ttl, limits.states_per_browser),
            flow: config.flow,
            store,
            server_tls: tls::server_config(certs.clone())?,
            certs,
            limits,
            hsts: HeaderValue::from_static(hsts),
            demo,
            secret_file,
            public_host: config.public_host.clone(),
            notify: Notifier::new(config.notify_socket.clone()),
            allow_logins: config.allow_logins.clone(),
            metrics: Metrics::default(),
            exchanges,
            direct,
        })
        .inspect(App::note_certificate_expiry)
    }

    /// SIGHUP: reloads the certificate and key and re-reads the client
    /// secret. Whatever fails keeps its old value; the errors say why.
    pub fn reload(&self) -> Vec<StartupError> {
        let mut errors = Vec::new();
        if let Err(err) = self.certs.reload() {
            errors.push(err);
        }
        self.note_certificate_expiry();
        if let Some(path) = &self.secret_file {
            match read_secret(path) {
                Ok(secret) => self.oauth.set_secret(secret),
                Err(err) => errors.push(err),
            }
        }
        errors
    }
}

impl App {
    /// Publishes the served certificate's expiry to `/metrics`.
    fn note_certificate_expiry(&self) {
        if self.certs.pending() {
            return;
        }
        if let Some(not_after) =
            self.certs.current().cert.first().and_then(|leaf| crate::tls::validity::not_after(leaf))
        {
            self.metrics.certificate_expires(not_after);
        }
    }
}

/// The resolver for ACME: a self-signed placeholder for the names until
/// the ACME task installs the real certificate.
#[cfg(feature = "acme")]
fn acme_resolver(acme: &crate::config::AcmeSettings) -> Result<Arc<CertResolver>, StartupError> {
    let placeholder = crate::tls::challenge::placeholder_certificate(&acme.domains)
        .map_err(|why| StartupError::msg(format!("cannot make the placeholder certificate: {why}")))?;
    Ok(Arc::new(CertResolver::acme(placeholder, Arc::new(tokio::sync::Notify::new()))))
}

/// Without the `acme` feature, `--acme-domain` is refused by name.
#[cfg(not(feature = "acme"))]
fn acme_resolver(_: &crate::config::AcmeSettings) -> Result<Arc<CertResolver>, StartupError> {
    Err(StartupError::msg(crate::config::NO_ACME_SUPPORT))
}

/// The OAuth client for `config`, with the given secret: requires
/// `--client-id` and reads `--ca-file` (the system's roots are read when
/// the first exchange needs them).
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
    .with_login_url(config.login_url.clone()))
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
