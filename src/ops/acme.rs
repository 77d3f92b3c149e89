//! Automatic HTTPS over ACME (RFC 8555; Let's Encrypt by default): the
//! account, the order, the challenge answered by this very server
//! (tls-alpn-01 on 443 or http-01 on the plain-HTTP listener), a CSR for a
//! fresh P-256 key, and renewal when a third of the lifetime is left. One
//! task does it all, so there is never more than one order in flight.
//!
//! Everything is cached in `{token_dir}/acme/` (0700, files 0600, atomic
//! writes): the account per directory URL, and `certificate.json` (names,
//! directory, chain and key in PEM, written in one rename so chain and key
//! never disagree). A restart with a good cached certificate serves it at
//! once and orders nothing. The old certificate is served until a new one
//! is in place; failures are retried with exponential back-off.
//!
//! The protocol is `instant-acme`'s; its HTTP goes through our own client
//! ([`crate::tls::https::https_request`]), its signatures through ring.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

use crate::config::{AcmeChallenge, AcmeSettings, Limits};
use crate::http::app::App;
use crate::store::{create_private_dir, is_interrupted_write, save_atomic};
use crate::tls::challenge;
use crate::tls::https::{ClientLimits, HttpsError, https_request, with_timeout};
use crate::tls::{self, CertResolver};
use crate::util::endpoint::Endpoint;
use crate::util::error::StartupError;
use crate::util::time::now_unix;

/// The cache's file for the certificate, chain and key together.
pub const CERTIFICATE_FILE: &str = "certificate.json";

/// The longest wait between failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// How long a single order may take, challenges and all.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest sleep before looking at the clock again (a suspended VM
/// or a clock step must not postpone a renewal by months).
const MAX_SLEEP: Duration = Duration::from_secs(6 * 3600);

/// Gets and renews the certificate for the configured names.
pub struct Manager {
    settings: AcmeSettings,
    dir: PathBuf,
    http: AcmeHttp,
    certs: Arc<CertResolver>,
    wake: Arc<Notify>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager").field("domains", &self.settings.domains).field("dir", &self.dir).finish()
    }
}

/// A certificate this task got (or found in the cache), with its key.
#[derive(Clone)]
struct Issued {
    chain_pem: String,
    key_pem: String,
    certified: Arc<CertifiedKey>,
    not_before: i64,
    not_after: i64,
}

impl Issued {
    /// When to renew: a third of the lifetime before the end.
    fn renew_at(&self) -> i64 {
        self.not_after - (self.not_after - self.not_before).max(0) / 3
    }

    fn from_pem(chain_pem: String, key_pem: String) -> Result<Issued, String> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("unreadable certificate chain ({err})"))?;
        let leaf = chain.first().ok_or("no certificate in the chain")?;
        let (not_before, not_after) =
            crate::tls::validity::validity(leaf).ok_or("unreadable validity dates")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|err| format!("unreadable private key ({err})"))?;
        let certified = tls::certified_key(chain, key)?;
        Ok(Issued { chain_pem, key_pem, certified, not_before, not_after })
    }
}

impl Manager {
    /// The manager for `settings`, caching in `{token_dir}/acme/`. A good
    /// cached certificate is installed in `certs` before this returns, so
    /// a restart serves at once.
    pub fn new(
        settings: AcmeSettings,
        token_dir: &Path,
        certs: Arc<CertResolver>,
        limits: &Limits,
    ) -> Result<Manager, StartupError> {
        let wake =
            certs.acme_wake().ok_or_else(|| StartupError::msg("the certificate resolver is not ACME's"))?;
        let client_tls = tls::client_config(true, settings.ca_file.as_deref(), &[])?;
        let dir = token_dir.join("acme");
        create_private_dir(&dir).map_err(|err| {
            StartupError::with(format!("cannot create the ACME cache {}", dir.display()), err)
        })?;
        let manager = Manager {
            http: AcmeHttp {
                connector: TlsConnector::from(client_tls),
                limits: ClientLimits {
                    connect_timeout: limits.upstream_connect_timeout,
                    total_timeout: limits.upstream_timeout,
                    // Certificate chains and directories are small.
                    max_body: 1024 * 1024,
                },
            },
            settings,
            dir,
            certs,
            wake,
        };
        // Temp files an interrupted write left behind.
        for entry in std::fs::read_dir(&manager.dir).into_iter().flatten().flatten() {
            if is_interrupted_write(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path()).ok();
            }
        }
        if let Some(cached) = manager.cached() {
            manager.certs.install(cached.certified.clone());
            crate::info!(
                "ACME: serving the cached certificate for {}, valid until {}",
                manager.names(),
                crate::util::time::date(u64::try_from(cached.not_after).unwrap_or(0))
            );
        }
        Ok(manager)
    }

    /// Runs for the life of the server: renews when due, retries with
    /// back-off when the CA fails, re-reads the cache on SIGHUP.
    pub async fn run(self, app: Arc<App>) {
        // Issued this run but not saved (a full disk): kept so a failed
        // write does not turn into an order per loop. SIGHUP clears it.
        let mut unsaved: Option<Issued> = None;
        let mut failures = 0u32;
        loop {
            let current = self.cached().or_else(|| unsaved.clone());
            if let Some(current) = &current {
                // A renewal found in the cache (or SIGHUP after an operator
                // put one there) is served from the next handshake on.
                if self.certs.current().cert != current.certified.cert && current.not_after > now_unix_i64() {
                    self.certs.install(current.certified.clone());
                    app.keeper.metrics.certificate_expires(current.not_after);
                }
                let renew_at = current.renew_at();
                if renew_at > now_unix_i64() {
                    failures = 0;
                    let status = format!(
                        "serving the certificate for {}; renewal from {}",
                        self.names(),
                        crate::util::time::date(u64::try_from(renew_at).unwrap_or(0))
                    );
                    app.notify.ready(&status);
                    let wait = Duration::from_secs(u64::try_from(renew_at - now_unix_i64()).unwrap_or(0));
                    if self.sleep_or_wake(wait).await {
                        unsaved = None;
                    }
                    continue;
                }
                crate::info!("ACME: the certificate for {} is due for renewal", self.names());
            }
            self.say(
                &app,
                &format!("ordering a certificate for {} from {}", self.names(), self.settings.directory),
                ORDER_TIMEOUT,
            );
            let outcome = tokio::time::timeout(ORDER_TIMEOUT, self.order()).await;
            self.certs.challenges().clear();
            let outcome = outcome
                .unwrap_or_else(|_| Err(format!("the order took longer than {}s", ORDER_TIMEOUT.as_secs())));
            match outcome {
                Ok(issued) => {
                    crate::info!(
                        "ACME: got a certificate for {}, valid until {}",
                        self.names(),
                        crate::util::time::date(u64::try_from(issued.not_after).unwrap_or(0))
                    );
                    self.certs.install(issued.certified.clone());
                    app.keeper.metrics.certificate_expires(issued.not_after);
                    match self.save(&issued) {
                        Ok(()) => unsaved = None,
                        Err(err) => {
                            crate::error!(
                                "ACME: cannot cache the certificate in {}: {err}",
                                self.dir.display()
                            );
                            unsaved = Some(issued);
                        }
                    }
                    failures = 0;
                }
                Err(why) => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(self.settings.retry, failures);
                    crate::warn!(
                        "ACME: order for {} failed (attempt {failures}): {why}; next attempt in {}",
                        self.names(),
                        seconds(delay)
                    );
                    let served = if self.certs.pending() {
                        "no certificate yet"
                    } else {
                        "the old certificate is still served"
                    };
                    self.say(
                        &app,
                        &format!("ACME order failed ({why}); {served}; retrying in {}", seconds(delay)),
                        delay + ORDER_TIMEOUT,
                    );
                    if self.sleep_or_wake(delay).await {
                        unsaved = None;
                    }
                }
            }
        }
    }

    /// Tells systemd where things stand: a status line, plus `next` more
    /// start-up time while still waiting for the first certificate (so a
    /// long back-off is not cut short by `TimeoutStartSec=` and a restart,
    /// which would order again at once).
    fn say(&self, app: &App, status: &str, next: Duration) {
        if self.certs.pending() {
            app.notify.waiting(status, next + Duration::from_secs(60));
        } else {
            app.notify.status(status);
        }
    }

    /// Sleeps for `wait` (looking at the clock at least every few hours);
    /// true when SIGHUP cut it short.
    async fn sleep_or_wake(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => false,
            _ = self.wake.notified() => {
                crate::info!("ACME: SIGHUP: looking at the certificate cache again");
                true
            }
        }
    }

    fn names(&self) -> String {
        self.settings.domains.join(", ")
    }

    /// The cached certificate, if it is for these names from this CA, whole
    /// and not expired. Anything else is reported and ignored.
    fn cached(&self) -> Option<Issued> {
        let path = self.dir.join(CERTIFICATE_FILE);
        let doc = match crate::store::load_object(&path) {
            Ok(Some(doc)) => doc,
            Ok(None) => return None,
            Err(err) => {
                crate::warn!("ACME: ignoring the cached certificate: {err}");
                return None;
            }
        };
        let text = |field: &str| doc.get(field).and_then(Value::as_str).map(str::to_owned);
        let names: Vec<&str> = doc
            .get("domains")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |names| names.iter().filter_map(Value::as_str).collect());
        let mut wanted: Vec<&str> = self.settings.domains.iter().map(String::as_str).collect();
        let mut have = names.clone();
        wanted.sort_unstable();
        have.sort_unstable();
        if have != wanted || text("directory").as_deref() != Some(self.settings.directory.as_str()) {
            crate::info!("ACME: the cached certificate is for other names or another CA; ordering anew");
            return None;
        }
        let (Some(chain), Some(key)) = (text("chain"), text("key")) else {
            crate::warn!("ACME: ignoring the cached certificate in {}: fields missing", path.display());
            return None;
        };
        match Issued::from_pem(chain, key) {
            Ok(issued) if issued.not_after > now_unix_i64() => Some(issued),
            Ok(_) => {
                crate::info!("ACME: the cached certificate has expired");
                None
            }
            Err(why) => {
                crate::warn!("ACME: ignoring the cached certificate in {}: {why}", path.display());
                None
            }
        }
    }

    fn save(&self, issued: &Issued) -> std::io::Result<()> {
        let doc = json!({
            "domains": self.settings.domains,
            "directory": self.settings.directory,
            "not_after": issued.not_after,
            "obtained_at": now_unix(),
            "chain": issued.chain_pem,
            "key": issued.key_pem,
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).expect("a JSON value serialises");
        bytes.push(b'\n');
        create_private_dir(&self.dir)?;
        save_atomic(&self.dir, CERTIFICATE_FILE, &bytes)
    }

    /// The account for this directory: from the cache, or created (and
    /// cached) now.
    async fn account(&self) -> Result<Account, String> {
        let file = account_file(&self.settings.directory);
        let path = self.dir.join(&file);
        if let Ok(bytes) = std::fs::read(&path) {
            match serde_json::from_slice::<AccountCredentials>(&bytes) {
                Ok(credentials) => {
                    return Account::builder_with_http(Box::new(self.http.clone()))
                        .from_credentials(credentials)
                        .await
                        .map_err(|err| format!("loading the ACME account: {err}"));
                }
                Err(_) => crate::warn!("ACME: {} is unreadable; creating a new account", path.display()),
            }
        }
        let contact = self.settings.email.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(Box::new(self.http.clone()))
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(|err| format!("creating the ACME account: {err}"))?;
        let bytes = serde_json::to_vec(&credentials).map_err(|err| err.to_string())?;
        create_private_dir(&self.dir)
            .and_then(|()| save_atomic(&self.dir, &file, &bytes))
            .map_err(|err| format!("cannot cache the ACME account in {}: {err}", self.dir.display()))?;
        crate::info!("ACME: created an account at {}", self.settings.directory);
        Ok(account)
    }

    /// One order, start to finish: challenges set up, validated, a CSR for
    /// a fresh key, the chain downloaded.
    async fn order(&self) -> Result<Issued, String> {
        let identifiers: Vec<Identifier> =
            self.settings.domains.iter().map(|name| Identifier::Dns(name.clone())).collect();
        let account = self.account().await?;
        let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
            Ok(order) => order,
            // The CA no longer knows the cached account (deactivated, or
            // its database reset): forget it and register anew, once.
            Err(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                crate::warn!("ACME: the CA does not know the cached account; creating a new one");
                std::fs::remove_file(self.dir.join(account_file(&self.settings.directory))).ok();
                self.account()
                    .await?
                    .new_order(&NewOrder::new(&identifiers))
                    .await
                    .map_err(|err| format!("new order: {err}"))?
            }
            Err(err) => return Err(format!("new order: {err}")),
        };
        let challenges = self.certs.challenges();
        let kind = match self.settings.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|err| format!("authorization: {err}"))?;
            let name = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("the authorization for {name} is {other:?}")),
            }
            let mut challenge = authorization.challenge(kind.clone()).ok_or_else(|| {
                format!("the CA offers no {} challenge for {name}", self.settings.challenge.name())
            })?;
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let cert = challenge::tls_alpn_certificate(&name, key_authorization.digest().as_ref())?;
                    challenges.set_tls_alpn(&name, cert);
                }
                AcmeChallenge::Http01 => {
                    challenges.set_http(&challenge.token, key_authorization.as_str().to_owned());
                }
            }
            crate::info!("ACME: answering the {} challenge for {name}", self.settings.challenge.name());
            challenge.set_ready().await.map_err(|err| format!("challenge for {name}: {err}"))?;
        }
        let policy =
            RetryPolicy::new().initial_delay(Duration::from_millis(250)).timeout(Duration::from_secs(120));
        let status =
            order.poll_ready(&policy).await.map_err(|err| format!("waiting for validation: {err}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("the order is {status:?}: {}", validation_errors(&mut order).await));
        }
        crate::info!("ACME: {} validated; finalizing", self.names());
        let key = rcgen::KeyPair::generate().map_err(|err| format!("new key: {err}"))?;
        let mut params = rcgen::CertificateParams::new(self.settings.domains.clone())
            .map_err(|err| format!("CSR: {err}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|err| format!("CSR: {err}"))?;
        order.finalize_csr(csr.der()).await.map_err(|err| format!("finalize: {err}"))?;
        let chain_pem = order
            .poll_certificate(&policy)
            .await
            .map_err(|err| format!("downloading the certificate: {err}"))?;
        let key_pem = pkcs8_pem(&PrivatePkcs8KeyDer::from(key.serialize_der()));
        Issued::from_pem(chain_pem, key_pem).map_err(|why| format!("the issued certificate: {why}"))
    }
}

/// Why an order went invalid: each failed challenge's problem, from the CA.
async fn validation_errors(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        let name = authorization.identifier().to_string();
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {}", problem.detail.as_deref().unwrap_or("validation failed")));
            }
        }
    }
    if reasons.is_empty() { "no reason given".to_owned() } else { reasons.join("; ") }
}

/// `1.5s`, `120s`: a back-off for a log line.
fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(10) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}s", duration.as_secs())
    }
}

/// `retry`, doubled for each failure after the first, at most a day.
fn backoff(retry: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    retry.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The account's cache file: one per directory URL, so staging and
/// production accounts never mix.
fn account_file(directory: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, directory.as_bytes());
    let hex: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("account-{hex}.json")
}

fn pkcs8_pem(key: &PrivatePkcs8KeyDer<'_>) -> String {
    let mut out = String::new();
    tls::push_pem(&mut out, "PRIVATE KEY", key.secret_pkcs8_der());
    out
}

fn now_unix_i64() -> i64 {
    i64::try_from(now_unix()).unwrap_or(i64::MAX)
}

/// `instant-acme`'s HTTP through our own client: one connection per
/// request, the same timeouts and body cap as the token endpoint.
#[derive(Clone)]
struct AcmeHttp {
    connector: TlsConnector,
    limits: ClientLimits,
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let uri = parts.uri.clone();
            let endpoint = Endpoint::parse(&format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or(""),
                uri.authority().map_or("", |a| a.as_str()),
                uri.path()
            ))
            .map_err(|why| other(HttpsError::Unreachable(format!("ACME URL {uri} {why}"))))?;
            parts.uri = uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .parse()
                .map_err(instant_acme::Error::InvalidUri)?;
            let body = body
                .collect()
                .await
                .map_err(|err| other(HttpsError::Unreachable(err.to_string())))?
                .to_bytes();
            let request = Request::from_parts(parts, Full::new(body));
            let (parts, body) = with_timeout(
                client.limits.total_timeout,
                "total",
                https_request(&client.connector, &client.limits, &endpoint, request),
            )
            .await
            .and_then(|result| result)
            .map_err(other)?;
            Ok(BytesResponse::from(Response::from_parts(parts, Full::new(body))))
        })
    }
}

/// The HTTPS client's error, told as the ACME server's.
fn other(err: HttpsError) -> instant_acme::Error {
    let text = match err {
        HttpsError::Timeout(phase) => format!("the ACME server did not answer in time ({phase})"),
        HttpsError::Unreachable(why) => format!("the ACME server is unreachable: {why}"),
        HttpsError::TooLarge(max) => format!("the ACME server answered with more than {max} bytes"),
    };
    instant_acme::Error::Other(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_day() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 1), minute);
        assert_eq!(backoff(minute, 2), 2 * minute);
        assert_eq!(backoff(minute, 5), 16 * minute);
        assert_eq!(backoff(minute, 40), MAX_BACKOFF);
        assert_eq!(backoff(minute, u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        let issued = Issued {
            chain_pem: String::new(),
            key_pem: String::new(),
            certified: challenge::placeholder_certificate(&["a.example.com".to_owned()]).unwrap(),
            not_before: 0,
            not_after: 90,
        };
        assert_eq!(issued.renew_at(), 60);
    }

    #[test]
    fn accounts_are_cached_per_directory() {
        let staging = account_file("https://acme-staging-v02.api.letsencrypt.org/directory");
        let production = account_file(crate::config::LETS_ENCRYPT);
        assert_ne!(staging, production);
        assert!(production.starts_with("account-") && production.ends_with(".json"));
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = PrivatePkcs8KeyDer::from(key.serialize_der());
        let parsed = PrivateKeyDer::from_pem_slice(pkcs8_pem(&der).as_bytes()).unwrap();
        assert_eq!(parsed.secret_der(), der.secret_pkcs8_der());
    }
}
