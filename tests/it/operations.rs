//! Running under systemd, tested with the real binary: socket activation
//! through Debian's `systemd-socket-activate` (fds mapped by name), the
//! sd_notify sequence seen by a datagram receiver, SIGHUP certificate swaps
//! (and a bad pair kept out), and SIGTERM letting an in-flight token
//! exchange finish.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::support::client::Client;
use crate::support::fake_oauth::{FakeOAuth, Mode};
use crate::support::free_port;
use crate::support::notify::NotifyReceiver;
use crate::support::pki::TestPki;
use crate::support::process::{BIN, Running};
use crate::support::server::flags_for;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "20"]).args(args).output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn socket_activation_maps_fds_by_name() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    // `http` first: the order systemd passes fds in is not stable, names are.
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg(format!("--listen=127.0.0.1:{http_port}"))
        .arg(format!("--listen=127.0.0.1:{https_port}"))
        .arg("--fdname=http:https")
        .arg(BIN)
        .arg("serve")
        // A TEST-NET address no machine has: binding it would fail, so the
        // server can only be serving on the fds it was given.
        .args(["--listen", "127.0.0.1:1"])
        .args(flags_for(&pki, "https://localhost:9/", "secret", dir.path()));
    let mut activator = Running::spawn(&mut command);
    activator.wait_for_line(&format!("127.0.0.1:{https_port}"));

    let (body, err) =
        curl(&["--cacert", pki.ca_pem.to_str().unwrap(), &format!("https://localhost:{https_port}/healthz")]);
    assert_eq!(body, "ok\n", "{err}\n{}", activator.stderr());
    let (head, err) = curl(&["-i", &format!("http://127.0.0.1:{http_port}/get_token?a=b")]);
    assert!(head.starts_with("HTTP/1.1 308"), "{head}{err}");
    assert!(head.contains(&format!("location: https://127.0.0.1:{https_port}/get_token?a=b")), "{head}");
    let status = activator.terminate();
    assert!(status.success(), "{status:?}\n{}", activator.stderr());
    let stderr = activator.stderr();
    assert!(stderr.contains(&format!("listening on https://127.0.0.1:{https_port}")), "{stderr}");
    assert!(stderr.contains(&format!("redirecting http://127.0.0.1:{http_port}")), "{stderr}");
}

fn copy_pair(from: &TestPki, to: &Path) {
    std::fs::copy(&from.cert, to.join("fullchain.pem")).unwrap();
    std::fs::copy(&from.key, to.join("privkey.pem")).unwrap();
}

fn client_trusting(cas: &[&TestPki]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for pki in cas {
        roots.add(pki.ca_der.clone()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // A resumed session reports the certificate of the session it resumes:
    // every handshake here must be a full one to see what is served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Opens a keep-alive HTTP/1.1 connection; returns its sender and the
/// SHA-256 of the certificate the server presented.
async fn connect(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> (hyper::client::conn::http1::SendRequest<Empty<Bytes>>, Vec<u8>) {
    let stream = crate::support::client::tls_connect(addr, "localhost", tls).await;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref()).as_ref().to_vec();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    (sender, fingerprint)
}

async fn healthz(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> u16 {
    let request = hyper::Request::get("/healthz").header("host", "localhost").body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

fn fingerprint_of(pki: &TestPki) -> Vec<u8> {
    let leaf = rustls_pki_types::CertificateDer::pem_file_iter(&pki.cert).unwrap().next().unwrap().unwrap();
    ring::digest::digest(&ring::digest::SHA256, leaf.as_ref()).as_ref().to_vec()
}

use rustls_pki_types::pem::PemObject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_sequence_and_sighup_certificate_swap() {
    let (first, second) = (TestPki::new(), TestPki::new());
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    copy_pair(&first, &live);
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags_for(&first, "https://localhost:9/", "secret", dir.path()));
    let cert_at = args.iter().position(|a| a == "--cert").unwrap();
    args[cert_at + 1] = live.join("fullchain.pem").display().to_string();
    args[cert_at + 3] = live.join("privkey.pem").display().to_string();

    let notify = NotifyReceiver::new();
    let (mut server, addr) = Running::start_with_env(&args, &[("NOTIFY_SOCKET", &notify.env_value())]);
    let ready = notify.next();
    assert!(ready.starts_with("READY=1\nSTATUS=serving https://127.0.0.1:"), "{ready}");

    let tls = client_trusting(&[&first, &second]);
    let (mut old_connection, seen) = connect(addr, tls.clone()).await;
    assert_eq!(seen, fingerprint_of(&first));
    assert_eq!(healthz(&mut old_connection).await, 200);

    // A new pair in place, then SIGHUP: RELOADING (with the clock), READY.
    copy_pair(&second, &live);
    server.signal("HUP");
    let reloading = notify.next();
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    let usec: u64 = reloading.rsplit('=').next().unwrap().parse().unwrap();
    assert!(usec > 0);
    assert!(notify.next().starts_with("READY=1"));
    let (_, seen) = connect(addr, tls.clone()).await;
    assert_eq!(seen, fingerprint_of(&second), "new handshakes get the new certificate");
    assert_eq!(healthz(&mut old_connection).await, 200, "open connections are untouched");

    // A bad pair (key does not match): the old one stays, the service stays ready.
    std::fs::copy(first.key.clone(), live.join("privkey.pem")).unwrap();
    server.signal("HUP");
    assert!(notify.next().starts_with("RELOADING=1"));
    let again = notify.next();
    assert!(again.starts_with("READY=1") && again.contains("failed"), "{again}");
    let (mut sender, seen) = connect(addr, tls).await;
    assert_eq!(seen, fingerprint_of(&second), "a bad pair must not replace the good one");
    assert_eq!(healthz(&mut sender).await, 200);

    let status = server.terminate();
    assert!(notify.next().starts_with("STOPPING=1"));
    assert!(status.success(), "{status:?}");
    let stderr = server.stderr();
    assert!(stderr.contains("reload failed") && stderr.contains("does not match"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_token_exchange_finish() {
    let pki = TestPki::new();
    let fake = FakeOAuth::start(&pki).await;
    fake.set_mode(Mode::Slow(Duration::from_millis(1500)));
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags_for(&pki, &fake.url(), &fake.state.secret, dir.path()));
    let (mut server, addr) = Running::start(&args);
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));

    let mut client = Client::new(&pki.ca_der);
    let start = client.get(addr, "/get_token").await;
    let callback = client.get_url(start.location()).await.location().to_owned();
    let in_flight = tokio::spawn(async move { client.get_url(&callback).await });
    fake.state.token_request_seen.notified().await;
    server.signal("TERM");
    let reply = tokio::time::timeout(Duration::from_secs(20), in_flight).await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server.stderr())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{:?}\n{}", status.0, status.1);
    assert!(dir.path().join("tokens/token.json").exists());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after SIGTERM");
}

#[test]
fn fds_meant_for_another_process_are_ignored() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags_for(&pki, "https://localhost:9/", "secret", dir.path()));
    // LISTEN_PID=1 is not us: the server must bind --listen itself and not
    // touch fd 3.
    let (mut server, addr) = Running::start_with_env(
        &args,
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1"), ("LISTEN_FDNAMES", "https")],
    );
    let (body, err) = curl(&[
        "--cacert",
        pki.ca_pem.to_str().unwrap(),
        &format!("https://localhost:{}/healthz", addr.port()),
    ]);
    assert_eq!(body, "ok\n", "{err}");
    assert!(server.terminate().success());
}
