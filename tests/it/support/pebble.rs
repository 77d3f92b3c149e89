//! Pebble, Let's Encrypt's test ACME server (Debian package `pebble`), and
//! `pebble-challtestsrv` as its DNS server (every name is 127.0.0.1), on
//! free loopback ports, validating challenges on the ports our server
//! listens on. Readiness is Pebble's own "ACME directory available" line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::pki::TestPki;

/// Whether Pebble is installed; see [`super::required`] for what happens
/// when it is not.
pub fn available() -> bool {
    super::required(
        "pebble and pebble-challtestsrv (apt-get install pebble)",
        super::have("pebble") && super::have("pebble-challtestsrv"),
    )
}

use super::free_port;

/// A running Pebble and its DNS server; both killed on drop.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    /// Everything Pebble printed so far.
    pub log: Arc<Mutex<String>>,
    pub directory: String,
    management: u16,
    /// Pebble's listener certificate, for `--acme-ca-file`.
    pub listener_ca: PathBuf,
    ports: Ports,
}

#[derive(Clone, Copy)]
struct Ports {
    http: u16,
    tls: u16,
    listen: u16,
    management: u16,
    lifetime: Option<u64>,
}

/// A stopped Pebble's ports: a restart comes back at the same directory
/// URL, with a new root and no memory of accounts, as a CA that lost its
/// state would.
pub struct Stopped(Ports);

impl Stopped {
    pub fn restart(self, pki: &TestPki) -> Pebble {
        Pebble::start_at(pki, self.0)
    }
}

impl Pebble {
    /// Starts Pebble validating on `http_port` (http-01) and `tls_port`
    /// (tls-alpn-01), with its listener certificate from `pki`.
    pub fn start(pki: &TestPki, http_port: u16, tls_port: u16) -> Pebble {
        Pebble::start_with_lifetime(pki, http_port, tls_port, None)
    }

    /// As [`Pebble::start`], issuing certificates valid for `lifetime`
    /// seconds instead of Pebble's five years.
    pub fn start_with_lifetime(
        pki: &TestPki,
        http_port: u16,
        tls_port: u16,
        lifetime: Option<u64>,
    ) -> Pebble {
        let ports =
            Ports { http: http_port, tls: tls_port, listen: free_port(), management: free_port(), lifetime };
        Pebble::start_at(pki, ports)
    }

    /// Stops Pebble, keeping its ports for [`Stopped::restart`].
    pub fn stop(self) -> Stopped {
        Stopped(self.ports)
    }

    fn start_at(pki: &TestPki, ports: Ports) -> Pebble {
        let Ports { http: http_port, tls: tls_port, listen, management, lifetime } = ports;
        let dns_port = free_port();
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port()), "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts");
        let mut config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": pki.cert,
            "privateKey": pki.key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(lifetime) = lifetime {
            config["pebble"]["certificateValidityPeriod"] = lifetime.into();
        }
        let config_path = pki.dir.path().join(format!("pebble-{listen}.json"));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Command::new("pebble")
            .args(["-config", config_path.to_str().unwrap(), "-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready) = mpsc::channel();
        let reader = BufReader::new(pebble.stdout.take().unwrap());
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if line.contains("ACME directory available at") {
                    ready_tx.send(()).ok();
                }
                collected.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let pebble = Pebble {
            pebble,
            dns,
            log,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            listener_ca: pki.ca_pem.clone(),
            ports,
        };
        if ready.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!("pebble did not come up; it said:\n{}", pebble.log.lock().unwrap());
        }
        pebble
    }

    /// The root Pebble made at this start (`/roots/0`), fetched with curl.
    pub fn root(&self) -> CertificateDer<'static> {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let output = Command::new("curl")
            .args(["-sS", "--fail", "--cacert", self.listener_ca.to_str().unwrap(), &url])
            .output()
            .expect("curl is installed");
        assert!(output.status.success(), "GET {url}: {}", String::from_utf8_lossy(&output.stderr));
        CertificateDer::from_pem_slice(&output.stdout).expect("a PEM root")
    }

    /// How many orders Pebble has created.
    pub fn orders(&self) -> usize {
        // Orders Pebble created: a POST it refused (its deliberate
        // badNonce, which the client retries) logs "POST /order-plz" too.
        self.log.lock().unwrap().matches("Added order").count()
    }
}

/// The `--acme-*` flags (and `--token-dir`) for a directory URL.
pub fn acme_flags(directory: &str, ca: &Path, domain: &str, token_dir: &Path) -> Vec<String> {
    [
        "--acme-domain",
        domain,
        "--acme-directory",
        directory,
        "--acme-ca-file",
        ca.to_str().unwrap(),
        "--token-dir",
        token_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
