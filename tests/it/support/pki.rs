//! A test PKI made at test time: a CA and a leaf for localhost, 127.0.0.1
//! and ::1, written as PEM files. Clients trust the CA properly; nothing
//! skips verification.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;

/// PEM files for one CA and one server certificate, in a temp directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_der: CertificateDer<'static>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "yandex-token test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names).unwrap().signed_by(&leaf_key, &ca).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestPki {
            ca_pem: write("ca.pem", ca.pem()),
            cert: write("fullchain.pem", leaf.pem() + &ca.pem()),
            key: write("privkey.pem", leaf_key.serialize_pem()),
            ca_der: ca.der().clone(),
            dir,
        }
    }

    /// A second, unrelated leaf key: for "key does not match" tests.
    pub fn write_unrelated_key(&self) -> PathBuf {
        let path = self.dir.path().join("other-key.pem");
        std::fs::write(&path, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        path
    }
}
