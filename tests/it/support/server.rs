//! Runs the real server in process on a pre-bound 127.0.0.1:0 listener,
//! configured through the real command-line parser, with a oneshot for
//! shutdown.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use yandex_token::config::{self, Config, Invocation};
use yandex_token::http::app::App;
use yandex_token::http::server::{self, Listeners};

use super::pki::TestPki;

pub struct TestServer {
    pub addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    /// The `/metrics` listener, when the config names one.
    pub metrics_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The command-line flags that point a server at `fake`, with the secret
/// written to a file in `dir`.
pub fn flags_for(pki: &TestPki, oauth_url: &str, secret: &str, dir: &std::path::Path) -> Vec<String> {
    let secret_file = dir.join("client_secret");
    // Atomically: another process may be reading it right now.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(".client_secret.{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::write(&tmp, format!("{secret}\n")).unwrap();
    std::fs::rename(&tmp, &secret_file).unwrap();
    vec![
        "--cert".into(),
        pki.cert.display().to_string(),
        "--key".into(),
        pki.key.display().to_string(),
        "--client-id".into(),
        "test-client-id".into(),
        "--client-secret-file".into(),
        secret_file.display().to_string(),
        "--oauth-url".into(),
        oauth_url.into(),
        "--ca-file".into(),
        pki.ca_pem.display().to_string(),
        "--token-dir".into(),
        dir.join("tokens").display().to_string(),
        "--login-url".into(),
        format!("{oauth_url}info"),
        "--direct-url".into(),
        format!("{oauth_url}direct/json/v5/"),
        // The servers of most tests keep any account's token on purpose;
        // tests of --allow-login take this out.
        "--allow-any-login".into(),
    ]
}

pub fn parse_config(args: &[String]) -> Config {
    match config::parse(args.iter().map(OsString::from), |_| None).unwrap() {
        Invocation::Run(config) => *config,
        other => panic!("unexpected {other:?}"),
    }
}

impl TestServer {
    pub async fn start_with(
        pki: &TestPki,
        oauth_url: &str,
        secret: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        Self::start_with_flags(pki, oauth_url, secret, &[], tweak).await
    }

    /// As [`TestServer::start_with`], with more command-line flags.
    pub async fn start_with_flags(
        pki: &TestPki,
        oauth_url: &str,
        secret: &str,
        extra: &[&str],
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = flags_for(pki, oauth_url, secret, dir.path());
        flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let mut config = parse_config(&flags);
        tweak(&mut config);
        let app = Arc::new(App::from_config(&config).unwrap());
        let https = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = https.local_addr().unwrap();
        let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_addr = Some(http.local_addr().unwrap());
        let metrics = config.metrics_listen.map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let metrics_addr = metrics.as_ref().map(|listener| listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::run(
            Listeners { https: vec![https], http: Some(http), metrics },
            app.clone(),
            async move {
                rx.await.ok();
            },
        ));
        TestServer { addr, http_addr, metrics_addr, app, dir, shutdown: Some(tx), task: Some(task) }
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens/token.json")
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).ok();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
