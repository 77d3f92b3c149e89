//! Issue 7: the certificate from ACME, against Pebble (Let's Encrypt's test
//! CA) validating on our real listeners: tls-alpn-01 and http-01, the
//! chain checked against Pebble's root, the cache reused across a
//! restart, a forced renewal under an open connection, and a CA that goes
//! away while the old certificate stays in service.

use std::net::SocketAddr;
use std::process::Command;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{client_config, tls_connect};
use crate::support::free_port;
use crate::support::notify::NotifyReceiver;
use crate::support::pebble::{self, Pebble};
use crate::support::pki::TestPki;
use crate::support::process::Running;

const DOMAIN: &str = "token.example.com";

/// Ports, files and flags for one server under test.
struct Setup {
    pki: TestPki,
    dir: tempfile::TempDir,
    https: u16,
    http: u16,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            pki: TestPki::new(),
            dir: tempfile::tempdir().unwrap(),
            https: free_port(),
            http: free_port(),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.https))
    }

    fn token_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("tokens")
    }

    fn start_server(&self, pebble: &Pebble, extra: &[&str]) -> Running {
        self.start_with(
            pebble::acme_flags(&pebble.directory, &pebble.listener_ca, DOMAIN, &self.token_dir()),
            extra,
            &[],
        )
    }

    fn start_with(&self, acme_flags: Vec<String>, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let secret = self.dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let mut args: Vec<String> = [
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.https),
            "--redirect-listen",
            &format!("127.0.0.1:{}", self.http),
            "--client-id",
            "test-app",
            "--client-secret-file",
            secret.to_str().unwrap(),
            "--acme-retry",
            "200ms",
            "--allow-any-login",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(acme_flags);
        args.extend(extra.iter().map(|s| s.to_string()));
        Running::start_with_env(&args, env).0
    }
}

/// Connects as a browser would to DOMAIN, trusting only `root`; returns the
/// verified connection and the leaf it was shown.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Vec<u8>) {
    let tls = tls_connect(addr, DOMAIN, client_config(root, &[b"http/1.1"], rustls::DEFAULT_VERSIONS)).await;
    let leaf = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
    (tls, leaf)
}

/// One keep-alive `GET /healthz` on an open connection; the status line.
async fn healthz(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    tls.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned()
}

/// `curl -k` (the placeholder is self-signed): status and body.
fn curl_insecure(setup: &Setup, path: &str) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}", "--resolve", &format!("{DOMAIN}:{}:127.0.0.1", setup.https)])
        .arg(format!("https://{DOMAIN}:{}{path}", setup.https))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

#[tokio::test]
async fn tls_alpn_01_issues_a_verifiable_certificate_and_a_restart_reuses_it() {
    if !pebble::available() {
        return;
    }
    let setup = Setup::new();
    // The CA is not up yet: the server serves a placeholder, tells every
    // request to wait, and retries.
    let nobody = format!("https://127.0.0.1:{}/dir", free_port());
    let notify = NotifyReceiver::new();
    let mut server = setup.start_with(
        pebble::acme_flags(&nobody, &setup.pki.ca_pem, DOMAIN, &setup.token_dir()),
        &[],
        &[("NOTIFY_SOCKET", &notify.env_value())],
    );
    // Not READY=1 without a certificate; STATUS= says why, and start-up
    // time is extended while waiting.
    let first = notify.next();
    assert!(first.contains("STATUS=") && first.contains("waiting for the ACME certificate"), "{first}");
    assert!(first.contains("EXTEND_TIMEOUT_USEC=") && !first.contains("READY=1"), "{first}");
    server.wait_for_line("(attempt 1)");
    let (status, body) = curl_insecure(&setup, "/get_token");
    assert_eq!(status, "503", "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "certificate_pending");
    server.wait_for_line("(attempt 2)");
    assert!(server.stderr().contains("the ACME server is unreachable"), "{}", server.stderr());
    let statuses: Vec<String> = (0..3).map(|_| notify.next()).collect();
    assert!(statuses.iter().all(|m| !m.contains("READY=1")), "{statuses:?}");
    assert!(
        statuses.iter().any(|m| m.contains("ACME order failed") && m.contains("no certificate yet")),
        "{statuses:?}"
    );
    drop(server);

    let pebble = Pebble::start(&setup.pki, setup.http, setup.https);
    let notify = NotifyReceiver::new();
    let directory = pebble::acme_flags(&pebble.directory, &pebble.listener_ca, DOMAIN, &setup.token_dir());
    let mut server = setup.start_with(directory, &[], &[("NOTIFY_SOCKET", &notify.env_value())]);
    // READY=1 comes once the certificate is served, and not before.
    let ready = loop {
        let message = notify.next();
        if message.contains("READY=1") {
            break message;
        }
    };
    assert!(ready.contains("serving the certificate for token.example.com"), "{ready}");
    assert!(server.stderr().contains("ACME: got a certificate for token.example.com"), "{}", server.stderr());
    let root = pebble.root();
    let (mut tls, leaf) = connect(setup.addr(), &root).await;
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");
    assert_eq!(pebble.orders(), 1);

    // The cache: private, whole, and used on restart without a new order.
    use std::os::unix::fs::PermissionsExt;
    let cache = setup.token_dir().join("acme");
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in std::fs::read_dir(&cache).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{:?}", entry.path());
    }
    assert_eq!(server.terminate().code(), Some(0));
    let server = setup.start_server(&pebble, &[]);
    // Said before "listening on", which `start` waited for.
    assert!(server.stderr().contains("ACME: serving the cached certificate for token.example.com"));
    let (mut tls, again) = connect(setup.addr(), &root).await;
    assert_eq!(again, leaf, "the cached certificate is served after a restart");
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");
    assert_eq!(pebble.orders(), 1, "no new order for a good cached certificate");
    let log = server.stderr();
    assert!(!log.contains("PRIVATE KEY") && !log.contains("ordering"), "{log}");
}

#[tokio::test]
async fn http_01_is_answered_on_the_plain_http_listener() {
    if !pebble::available() {
        return;
    }
    let setup = Setup::new();
    let pebble = Pebble::start(&setup.pki, setup.http, setup.https);
    let mut server = setup.start_server(&pebble, &["--acme-challenge", "http-01"]);
    server.wait_for_line("ACME: got a certificate for token.example.com");
    let log = server.stderr();
    assert!(log.contains("answering the http-01 challenge"), "{log}");
    // Pebble fetched the key authorization; the log names the prefix only,
    // never the token.
    assert!(log.contains("path=/.well-known/acme-challenge/ status=200"), "{log}");
    let token_logged = log.lines().any(|line| {
        line.split("acme-challenge/").skip(1).any(|rest| !rest.is_empty() && !rest.starts_with(' '))
    });
    assert!(!token_logged, "{log}");
    let root = pebble.root();
    let (mut tls, _) = connect(setup.addr(), &root).await;
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK");
    // With the order over, unknown tokens are 404 and the rest still redirects.
    let probe = |path: &str| {
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Host: {DOMAIN}")])
            .arg(format!("http://127.0.0.1:{}{path}", setup.http))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(probe("/.well-known/acme-challenge/unknown-token"), "404");
    assert_eq!(probe("/get_token"), "308");

    // With no challenge open, a client offering only acme-tls/1 gets no
    // certificate at all: the real one is never shown to it.
    let config = client_config(&root, &[b"acme-tls/1"], rustls::DEFAULT_VERSIONS);
    let tcp = tokio::net::TcpStream::connect(setup.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(DOMAIN).unwrap();
    let refused = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await;
    assert!(refused.is_err(), "a handshake for acme-tls/1 without a challenge must fail");
    let (mut tls, _) = connect(setup.addr(), &root).await;
    assert_eq!(healthz(&mut tls).await, "HTTP/1.1 200 OK", "and the server keeps serving");
}

#[tokio::test]
async fn a_certificate_is_renewed_when_a_third_of_its_lifetime_is_left() {
    if !pebble::available() {
        return;
    }
    let setup = Setup::new();
    // Nine-second certificates: renewal is due six seconds after issue.
    let pebble = Pebble::start_with_lifetime(&setup.pki, setup.http, setup.https, Some(9));
    let mut server = setup.start_server(&pebble, &[]);
    server.wait_for_line("ACME: got a certificate for token.example.com");
    let root = pebble.root();
    let (mut open, first) = connect(setup.addr(), &root).await;
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");
    server.wait_for_line("is due for renewal");
    server.wait_for_line("ACME: got a certificate for token.example.com");
    let (_, second) = connect(setup.addr(), &root).await;
    assert_ne!(second, first, "the renewed certificate is served to new connections");
    assert_eq!(pebble.orders(), 2);
}

#[tokio::test]
async fn a_forced_renewal_swaps_the_certificate_under_open_connections_and_a_dead_ca_keeps_the_old_one() {
    if !pebble::available() {
        return;
    }
    let setup = Setup::new();
    let pebble = Pebble::start(&setup.pki, setup.http, setup.https);
    let mut server = setup.start_server(&pebble, &[]);
    server.wait_for_line("ACME: got a certificate for token.example.com");
    let first_root = pebble.root();
    let (mut open, first) = connect(setup.addr(), &first_root).await;
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // The CA goes away; the operator forces a renewal (delete the cached
    // certificate, SIGHUP). Orders fail and are retried; the old
    // certificate is served meanwhile.
    let pebble = pebble.stop();
    std::fs::remove_file(setup.token_dir().join("acme/certificate.json")).unwrap();
    server.signal("HUP");
    server.wait_for_line("(attempt 1)");
    server.wait_for_line("(attempt 2)");
    let (mut during, shown) = connect(setup.addr(), &first_root).await;
    assert_eq!(shown, first, "the old certificate is served while the CA is down");
    assert_eq!(healthz(&mut during).await, "HTTP/1.1 200 OK");

    // The CA is back (a new Pebble, with a new root): the retry succeeds and
    // the new certificate is served to new connections, while the
    // connection opened before keeps working.
    // It also forgot our account, as a CA may: a new one is made.
    let pebble = pebble.restart(&setup.pki);
    server.wait_for_line("ACME: got a certificate for token.example.com");
    assert!(server.stderr().contains("ACME: created an account"), "{}", server.stderr());
    let second_root = pebble.root();
    let (mut fresh, second) = connect(setup.addr(), &second_root).await;
    assert_ne!(second, first);
    assert_eq!(healthz(&mut fresh).await, "HTTP/1.1 200 OK");
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");
    assert_eq!(open.get_ref().1.peer_certificates().unwrap()[0].to_vec(), first);
    assert!(setup.token_dir().join("acme/certificate.json").exists());
}
