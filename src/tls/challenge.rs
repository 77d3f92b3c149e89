//! Answers to ACME challenges while an order is open (RFC 8737 tls-alpn-01
//! and RFC 8555 §8.3 http-01), shared by the ACME task that sets them and
//! the listeners that serve them, plus the self-signed certificates the
//! server needs: one for each tls-alpn-01 challenge and a placeholder to
//! serve while the first real certificate is on its way.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls;

/// The ALPN protocol of tls-alpn-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Where http-01 challenges are fetched (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The challenges currently open. Empty except during an order.
#[derive(Default)]
pub struct Challenges {
    /// Domain → the `acmeIdentifier` certificate for it.
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Token → key authorization.
    http: RwLock<HashMap<String, String>>,
}

impl Challenges {
    /// Serves `certificate` to validators connecting for `domain`.
    pub fn set_tls_alpn(&self, domain: &str, certificate: Arc<CertifiedKey>) {
        write(&self.tls_alpn).insert(domain.to_ascii_lowercase(), certificate);
    }

    /// The challenge certificate for `domain`, if one is open.
    pub fn tls_alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        read(&self.tls_alpn).get(&domain.to_ascii_lowercase()).cloned()
    }

    /// Answers `GET /.well-known/acme-challenge/{token}` with `key_authorization`.
    pub fn set_http(&self, token: &str, key_authorization: String) {
        write(&self.http).insert(token.to_owned(), key_authorization);
    }

    /// The key authorization for an http-01 `token`, if one is open.
    pub fn http(&self, token: &str) -> Option<String> {
        read(&self.http).get(token).cloned()
    }

    /// Forgets every challenge: the order is over, whichever way.
    pub fn clear(&self) {
        write(&self.tls_alpn).clear();
        write(&self.http).clear();
    }
}

impl fmt::Debug for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenges")
            .field("tls_alpn", &read(&self.tls_alpn).len())
            .field("http", &read(&self.http).len())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poison| poison.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poison| poison.into_inner())
}

/// The tls-alpn-01 certificate for `domain`: self-signed, fresh P-256 key,
/// the domain as its only name and the critical `acmeIdentifier`
/// extension holding SHA-256 of the key authorization (RFC 8737 §3).
pub fn tls_alpn_certificate(
    domain: &str,
    key_authorization_sha256: &[u8],
) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|err| err.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(key_authorization_sha256)];
    let key = rcgen::KeyPair::generate().map_err(|err| err.to_string())?;
    let cert = params.self_signed(&key).map_err(|err| err.to_string())?;
    // Not through `tls::certified_key`: its key check parses the
    // certificate with webpki, which refuses the critical acmeIdentifier.
    // The key is the one just made for this certificate.
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key =
        tls::provider().key_provider.load_private_key(key_der).map_err(|err| err.to_string())?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key)))
}

/// The certificate served before the first real one arrives: self-signed
/// for `names`, so TLS works and every request can be told to wait.
pub fn placeholder_certificate(names: &[String]) -> Result<Arc<CertifiedKey>, String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|err| err.to_string())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "yandex-token: certificate pending");
    self_signed(params)
}

fn self_signed(params: rcgen::CertificateParams) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|err| err.to_string())?;
    let cert = params.self_signed(&key).map_err(|err| err.to_string())?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    tls::certified_key(vec![cert.der().clone()], key_der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_found_by_name_and_cleared() {
        let challenges = Challenges::default();
        let cert = tls_alpn_certificate("a.example.com", &[7; 32]).unwrap();
        challenges.set_tls_alpn("A.Example.com", cert.clone());
        challenges.set_http("tok", "tok.thumb".to_owned());
        assert!(Arc::ptr_eq(&challenges.tls_alpn("a.example.COM").unwrap(), &cert));
        assert!(challenges.tls_alpn("b.example.com").is_none());
        assert_eq!(challenges.http("tok").as_deref(), Some("tok.thumb"));
        assert_eq!(format!("{challenges:?}"), "Challenges { tls_alpn: 1, http: 1 }");
        challenges.clear();
        assert!(challenges.tls_alpn("a.example.com").is_none());
        assert!(challenges.http("tok").is_none());
    }

    #[test]
    fn the_challenge_certificate_carries_the_critical_acme_identifier() {
        let digest = [0xab; 32];
        let cert = tls_alpn_certificate("a.example.com", &digest).unwrap();
        let der = cert.cert[0].as_ref();
        // id-pe-acmeIdentifier 1.3.6.1.5.5.7.1.31, critical, OCTET STRING(OCTET STRING(digest)).
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der.windows(oid.len()).position(|w| w == oid).expect("the extension is present");
        let rest = &der[at + oid.len()..];
        assert_eq!(&rest[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&rest[3..7], &[0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&rest[7..39], &digest);
    }
}
