//! What the bench examples share: a TLS client like the load generators',
//! on ring's default provider (not the server's suite order), trusting the
//! certificates of one PEM file.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;

/// A rustls client configuration trusting the CA certificates in `ca_pem`;
/// an error names the file when it holds none that rustls can use.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, String> {
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca_pem)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("{ca_pem}: {err}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(format!("{ca_pem}: no usable CA certificate"));
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth())
}
