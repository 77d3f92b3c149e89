//! The TLS edge: loading a PEM certificate chain and key (and checking they
//! belong together), the server configuration (ring, TLS 1.2/1.3, ALPN h2 and
//! http/1.1) behind a certificate resolver that SIGHUP can swap, and the
//! client configuration for the token endpoint (system roots plus
//! `--ca-file`).
//!
//! What lives here: this, the server's TLS stream ([`stream`]) and the
//! first record's reader ([`opening`]), certificate dates ([`validity`]),
//! the ACME challenge certificates ([`challenge`]), and the one HTTPS
//! client ([`https`]) that Yandex OAuth, the Direct API and ACME share,
//! with its own error type. It imports `util` and `config` only.

pub mod challenge;
pub mod https;
pub mod opening;
pub mod stream;
pub mod validity;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::hash::HashAlgorithm;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::challenge::{ACME_TLS_ALPN, Challenges};
use crate::util::error::StartupError;

/// The one crypto provider of the crate: ring, chosen explicitly so no
/// process-wide default is ever consulted, with its own random source (the
/// operating system's), and one change, measured in bench/README.md: the
/// suites built on SHA-256 come before their SHA-384 twins. The key
///   schedule runs some 30 hash blocks per handshake; SHA-256 has CPU
///   instructions on x86-64 and ARMv8, while ring's SHA-384 is plain code
///   there (13 % of a handshake's CPU). AES-128 also has fewer rounds than
///   AES-256 per record; both are in every modern recommendation.
pub fn provider() -> Arc<CryptoProvider> {
    let mut ring = rustls::crypto::ring::default_provider();
    // Stable: TLS 1.3 stays before TLS 1.2, AES-GCM before ChaCha20.
    ring.cipher_suites.sort_by_key(|suite| {
        let (tls13, common) = match suite {
            SupportedCipherSuite::Tls13(suite) => (true, &suite.common),
            SupportedCipherSuite::Tls12(suite) => (false, &suite.common),
        };
        (!tls13, common.hash_provider.algorithm() != HashAlgorithm::SHA256)
    });
    Arc::new(ring)
}

/// Reads a certificate chain (leaf first) from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartupError> {
    let context = || format!("failed to read certificates from {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| StartupError::with(context(), err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| StartupError::with(context(), err))?;
    if certs.is_empty() {
        return Err(StartupError::msg(format!("{}: no certificates found", context())));
    }
    Ok(certs)
}

/// Loads a certificate chain and its private key (PKCS#8, SEC1 or PKCS#1;
/// RSA, ECDSA or Ed25519) and checks that the key matches the leaf.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, StartupError> {
    let chain = load_certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        StartupError::with(format!("failed to read private key from {}", key.display()), err)
    })?;
    certified_key(chain, key_der).map_err(|why| {
        StartupError::msg(format!(
            "certificate {} and key {} cannot be used together: {why}",
            cert.display(),
            key.display()
        ))
    })
}

/// Builds a [`CertifiedKey`] from DER, refusing a key that does not match the
/// leaf certificate.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|err| format!("unsupported private key ({err})"))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate".to_owned())
        }
        Err(err) => Err(format!("cannot check the key against the certificate ({err})")),
    }
}

/// Where the served certificate comes from, and so what SIGHUP does.
pub enum CertSource {
    /// `--cert`/`--key`: SIGHUP re-reads them.
    Files(PathBuf, PathBuf),
    /// Made in memory (the demo): nothing to reload.
    Memory,
    /// ACME: SIGHUP wakes the ACME task, which re-reads its cache.
    Acme(Arc<tokio::sync::Notify>),
}

impl fmt::Debug for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertSource::Files(cert, key) => f.debug_tuple("Files").field(cert).field(key).finish(),
            CertSource::Memory => f.write_str("Memory"),
            CertSource::Acme(_) => f.write_str("Acme"),
        }
    }
}

/// The certificate the server presents, swappable at run time. Every new
/// handshake asks for the current one; open connections keep theirs. With
/// ACME it also answers tls-alpn-01 validators, and knows whether the
/// served certificate is only the placeholder.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    source: CertSource,
    /// True while only the ACME placeholder is served.
    pending: AtomicBool,
    challenges: Arc<Challenges>,
}

impl CertResolver {
    /// A resolver serving `initial`, reloadable from `source` (certificate
    /// path, key path) when given.
    pub fn new(initial: Arc<CertifiedKey>, source: Option<(PathBuf, PathBuf)>) -> Self {
        let source = source.map_or(CertSource::Memory, |(cert, key)| CertSource::Files(cert, key));
        CertResolver {
            current: RwLock::new(initial),
            source,
            pending: AtomicBool::new(false),
            challenges: Arc::default(),
        }
    }

    /// A resolver for ACME: serves `placeholder` (and counts as pending)
    /// until [`CertResolver::install`]; SIGHUP notifies `wake`.
    pub fn acme(placeholder: Arc<CertifiedKey>, wake: Arc<tokio::sync::Notify>) -> Self {
        CertResolver {
            current: RwLock::new(placeholder),
            source: CertSource::Acme(wake),
            pending: AtomicBool::new(true),
            challenges: Arc::default(),
        }
    }

    /// Re-reads the certificate and key from their paths. On any error the
    /// old pair stays in service and the error says why. Under ACME it asks
    /// the ACME task to look at its cache again.
    pub fn reload(&self) -> Result<(), StartupError> {
        match &self.source {
            CertSource::Files(cert, key) => {
                let fresh = load_pair(cert, key)?;
                *self.current.write().unwrap_or_else(|poison| poison.into_inner()) = fresh;
            }
            CertSource::Memory => {}
            CertSource::Acme(wake) => wake.notify_one(),
        }
        Ok(())
    }

    /// Serves `fresh` from the next handshake on.
    pub fn install(&self, fresh: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|poison| poison.into_inner()) = fresh;
        self.pending.store(false, Ordering::Release);
    }

    /// The certificate currently served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Whether only the ACME placeholder is served: requests are told to wait.
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// What SIGHUP notifies under ACME; `None` otherwise.
    pub fn acme_wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        match &self.source {
            CertSource::Acme(wake) => Some(wake.clone()),
            _ => None,
        }
    }

    /// Whether certificates come over ACME.
    pub fn is_acme(&self) -> bool {
        matches!(self.source, CertSource::Acme(_))
    }

    /// Whether the served certificate covers `host` (a DNS name, wildcards
    /// as TLS clients match them, or an IP address; `[…]` around an IPv6
    /// address is allowed).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let Ok(name) = rustls_pki_types::ServerName::try_from(host) else { return false };
        let current = self.current();
        let Some(leaf) = current.cert.first() else { return false };
        webpki::EndEntityCert::try_from(leaf)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
    }

    /// The open ACME challenges this resolver answers.
    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.challenges
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("source", &self.source)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A tls-alpn-01 validator offers acme-tls/1 alone (RFC 8737 §3) and
        // gets the challenge certificate or nothing, never the real one.
        let mut offered = hello.alpn().into_iter().flatten();
        if offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none() {
            return hello.server_name().and_then(|name| self.challenges.tls_alpn(name));
        }
        Some(self.current())
    }
}

/// The server configuration: TLS 1.3 and 1.2 only, no client auth, ALPN
/// `h2` then `http/1.1` (then `acme-tls/1` under ACME), certificates from
/// `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, StartupError> {
    let resolver_is_acme = resolver.is_acme();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| StartupError::with("TLS server configuration", err))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if resolver_is_acme {
        // Last, so no ordinary client is ever answered with it.
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    // Our order (ring's: AES-GCM first, ChaCha20 for clients without AES
    // hardware) wins over the client's, as scanners expect.
    config.ignore_client_order = true;
    // TLS 1.3 session tickets stay on, backed by rustls's 256-entry cache:
    // clients that resume skip certificate verification, which doubles the
    // new-connection rate wrk reaches. One ticket per connection, not
    // rustls's two: 177 instead of 184 us of server CPU per new connection
    // (bench/README.md); a browser talks to this server over one connection.
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// Trust anchors for the token endpoint: the system's roots (unless
/// `system_roots` is false, as in the demo) plus every certificate in
/// `ca_file` and `extra`.
pub fn client_config(
    system_roots: bool,
    ca_file: Option<&Path>,
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, StartupError> {
    let mut roots = ca_file_roots(ca_file)?;
    for cert in extra {
        roots.add(cert.clone()).map_err(|err| StartupError::with("unusable trust anchor", err))?;
    }
    if system_roots {
        add_system_roots(&mut roots);
    }
    config_over(roots)
}

/// The certificates of `--ca-file` as trust anchors, each checked: a bad
/// one is named with the file.
fn ca_file_roots(ca_file: Option<&Path>) -> Result<RootCertStore, StartupError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|err| {
                StartupError::with(format!("unusable trust anchor in {}", path.display()), err)
            })?;
        }
    }
    Ok(roots)
}

/// The client configuration over `roots`, which must not be empty.
fn config_over(roots: RootCertStore) -> Result<Arc<ClientConfig>, StartupError> {
    if roots.is_empty() {
        return Err(StartupError::msg(NO_TRUST_ANCHORS));
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| StartupError::with("TLS client configuration", err))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

const NO_TRUST_ANCHORS: &str =
    "no trust anchors for the token endpoint: install ca-certificates or pass --ca-file";

/// The token endpoint's client configuration, built on the first call to
/// [`ClientTls::config`]. `serve` makes that call at start: parsing the
/// system's 140-odd roots takes a millisecond (3.6 ms when `SSL_CERT_DIR`
/// adds the hashed directory), blocking, which inside the first exchange
/// would stall every connection on the runtime's one thread; it keeps
/// 0.27 MiB of heap (bench/README.md). The terminal commands build it when
/// their first request needs it. `--ca-file` is read and its certificates
/// checked at once, and a system with no CA store at all and no
/// `--ca-file` is refused there.
/// Clones share one configuration: the roots are read once for every
/// client (the token endpoint's and the Direct API's).
#[derive(Clone)]
pub struct ClientTls(Arc<ClientTlsInner>);

struct ClientTlsInner {
    ca_file_roots: RootCertStore,
    built: OnceLock<Arc<ClientConfig>>,
}

impl ClientTls {
    /// The system's roots plus `ca_file`: the file is read and checked now,
    /// the system's roots when the first exchange needs them.
    pub fn deferred(ca_file: Option<&Path>) -> Result<ClientTls, StartupError> {
        let ca_file_roots = ca_file_roots(ca_file)?;
        if ca_file_roots.is_empty() && !system_store_exists() {
            return Err(StartupError::msg(NO_TRUST_ANCHORS));
        }
        Ok(ClientTls(Arc::new(ClientTlsInner { ca_file_roots, built: OnceLock::new() })))
    }

    /// A configuration that is already built (the demo, examples).
    pub fn ready(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls(Arc::new(ClientTlsInner {
            ca_file_roots: RootCertStore::empty(),
            built: OnceLock::from(config),
        }))
    }

    /// Whether the configuration (and so the system's roots) is built.
    pub fn is_built(&self) -> bool {
        self.0.built.get().is_some()
    }

    /// The configuration, built on the first call. A failure is not kept:
    /// the next request tries again (after ca-certificates is installed).
    pub fn config(&self) -> Result<Arc<ClientConfig>, StartupError> {
        let inner = &self.0;
        if let Some(config) = inner.built.get() {
            return Ok(config.clone());
        }
        let mut roots = inner.ca_file_roots.clone();
        add_system_roots(&mut roots);
        let config = config_over(roots)?;
        Ok(inner.built.get_or_init(|| config).clone())
    }
}

/// Adds the system's roots. Individual unreadable system certificates are
/// skipped, as every TLS client does; an empty store is caught later.
fn add_system_roots(roots: &mut RootCertStore) {
    roots.add_parsable_certificates(system_trust_anchors());
}

/// Whether the system has a CA store to read: a bundle file, a hashed
/// directory, or `SSL_CERT_FILE`/`SSL_CERT_DIR` naming one.
fn system_store_exists() -> bool {
    let probed = openssl_probe::probe();
    probed.cert_file.is_some() || !probed.cert_dir.is_empty()
}

/// The system's trust anchors. The distribution's CA bundle file alone when
/// there is one: Debian, Fedora, Arch and Alpine all put every CA they trust
/// in it, and their hashed directory next to it holds the same certificates
/// again, one file each. Reading both, as rustls-native-certs does, took
/// about 440 more system calls and 2.0 ms more (bench/README.md). With no
/// bundle, or with `SSL_CERT_FILE` or `SSL_CERT_DIR` set,
/// rustls-native-certs decides, as before.
fn system_trust_anchors() -> Vec<CertificateDer<'static>> {
    let configured = ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|var| std::env::var_os(var).is_some());
    let found = match openssl_probe::probe().cert_file {
        Some(bundle) if !configured => rustls_native_certs::load_certs_from_paths(Some(&bundle), None),
        _ => rustls_native_certs::load_native_certs(),
    };
    found.certs
}

/// Encodes DER certificates as PEM, for files a user hands to curl.
pub fn certs_to_pem(certs: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for cert in certs {
        push_pem(&mut out, "CERTIFICATE", cert.as_ref());
    }
    out
}

/// Appends one PEM block (`-----BEGIN {label}-----`, base64 in 64-column
/// lines) to `out`.
pub fn push_pem(out: &mut String, label: &str, der: &[u8]) {
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    let encoded = crate::util::encoding::base64_standard(der);
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
}
