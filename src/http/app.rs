//! [`App`]: everything a request handler needs, built once at start and
//! shared by every connection: the [`Keeper`] (OAuth and Direct clients,
//! token store, allow-list), the flows in progress, the logins a browser
//! may ask about again, the certificate resolver and the limits.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::header::HeaderValue;
use rustls::ServerConfig;

use crate::config::{Config, Flow, Limits};
use crate::http::demo;
use crate::keeper::{Keeper, read_secret};
use crate::oauth::pending::PendingStates;
use crate::tls::{self, CertResolver};
use crate::util::error::StartupError;
use crate::util::notify::Notifier;

/// Shared server state. Handlers get `&App`.
#[derive(Debug)]
pub struct App {
    /// The OAuth and Direct clients, the store and the allow-list: what a
    /// login needs, shared with the login's own task.
    pub keeper: Keeper,
    /// Logins under way or just finished, for the same browser's retry.
    pub logins: crate::http::recent::RecentLogins,
    /// Flows between the redirect and the callback.
    pub pending: PendingStates,
    /// Whether `/get_token` redirects or shows the pasted-code page.
    pub flow: Flow,
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
    /// Bounds the token exchanges strangers can make us do.
    pub exchanges: crate::http::exchanges::ExchangeLimits,
}

impl App {
    /// Builds the server state for `serve`: loads the certificate and key,
    /// the client secret and `--ca-file`. Any failure names the file.
    pub fn from_config(config: &Config) -> Result<App, StartupError> {
        let keeper = Keeper::from_config(config)?;
        // The system's trust anchors now, not inside the first exchange,
        // where reading and parsing them would stall every connection.
        // None at all is no reason not to serve: the first exchange tries
        // again (after ca-certificates is installed) and says why it fails.
        if let Err(err) = keeper.oauth.tls().config() {
            crate::warn!("{err}; the first token exchange tries again");
        }
        let certs = match &config.acme {
            Some(acme) => acme_resolver(acme)?,
            None => {
                let pair = tls::load_pair(&config.cert, &config.key)?;
                Arc::new(CertResolver::new(pair, Some((config.cert.clone(), config.key.clone()))))
            }
        };
        // A token directory that cannot be fixed (read-only, say) is no
        // reason not to serve: a failed save still hands the token over.
        match keeper.store.fix_modes() {
            Ok(fixed) => fixed.into_iter().for_each(|line| crate::warn!("token store: {line}")),
            Err(err) => crate::warn!("token store: cannot check {}: {err}", keeper.store.dir().display()),
        }
        App::assemble(config, keeper, certs, None, config.client_secret_file.clone())
    }

    /// Puts the parts together; `demo` builds its own parts and calls this.
    pub fn assemble(
        config: &Config,
        keeper: Keeper,
        certs: Arc<CertResolver>,
        demo: Option<demo::Provider>,
        secret_file: Option<PathBuf>,
    ) -> Result<App, StartupError> {
        let limits = config.limits.clone();
        let exchanges = crate::http::exchanges::ExchangeLimits::new(
            limits.max_exchanges,
            limits.exchanges_per_minute,
            limits.exchanges_per_client_minute,
        );
        // The demo runs on localhost: HSTS there would stick to every other
        // local development server in the user's browser, so it is cleared.
        let hsts = if demo.is_some() { "max-age=0" } else { "max-age=31536000" };
        Ok(App {
            keeper,
            logins: crate::http::recent::RecentLogins::default(),
            pending: PendingStates::new(limits.state_ttl, limits.states_per_browser),
            flow: config.flow,
            server_tls: tls::server_config(certs.clone())?,
            certs,
            limits,
            hsts: HeaderValue::from_static(hsts),
            demo,
            secret_file,
            // Without --public-host, the ACME domain: the name the
            // certificate is for.
            public_host: config
                .public_host
                .clone()
                .or_else(|| config.acme.as_ref().and_then(|acme| acme.domains.first().cloned())),
            notify: Notifier::new(config.notify_socket.clone()),
            exchanges,
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
                Ok(secret) => self.keeper.oauth.set_secret(secret),
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
            self.keeper.metrics.certificate_expires(not_after);
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
