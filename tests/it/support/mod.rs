//! Shared test fixtures: the test PKI, the fake Yandex, the in-process
//! server, the test client and the child-process runner.

pub mod browser;
pub mod client;
pub mod fake_oauth;
pub mod notify;
#[cfg(feature = "acme")]
pub mod pebble;
pub mod pki;
pub mod process;
pub mod server;

use client::{Client, Reply};
use server::TestServer;

/// Whether `tool` is on the PATH; tests that drive it skip without it.
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether a test that needs `what` (a tool, root) may run. `.ci/run` sets
/// `YANDEX_TOKEN_CI=1` after installing every tool: there a missing one
/// fails the test instead of letting it pass untested. Elsewhere the test
/// says on stderr that it skipped, and why.
pub fn required(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("YANDEX_TOKEN_CI").is_none(),
        "{what} is missing, and .ci/run (YANDEX_TOKEN_CI) says it must be here"
    );
    eprintln!("SKIPPED: {what} is missing (.ci/run installs it and makes this a failure)");
    false
}

/// A free loopback TCP port for a process that binds it later (Pebble, a
/// socket-activated or restarted server). Taken below Linux's ephemeral
/// range (32768 and up), so a connection made meanwhile by another test
/// cannot get it as its source port, as a port from `bind(0)`, released
/// and bound again, can; each call in this process gets a different one,
/// checked free when given.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    loop {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(step < COUNT, "no free port left below the ephemeral range");
        let port = u16::try_from(FIRST + (start + step) % COUNT).expect("under 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Drives one whole flow as a browser would: start, the provider's
/// redirect, the callback. Returns the callback's reply.
pub async fn complete_flow(client: &mut Client, server: &TestServer) -> Reply {
    let start = client.get(server.addr, "/get_token").await;
    assert_eq!(start.status, 302, "{}", start.body);
    let at_provider = client.get_url(start.location()).await;
    assert_eq!(at_provider.status, 302, "{}", at_provider.body);
    client.get_url(at_provider.location()).await
}

/// Starts a flow and plays the user at Yandex (who clicks Allow), without
/// coming back: returns the callback's target (`/get_token?code=…&state=…`)
/// for the test to send as it likes.
pub async fn callback_target(client: &mut Client, server: &TestServer) -> String {
    let start = client.get(server.addr, "/get_token").await;
    assert_eq!(start.status, 302, "{}", start.body);
    let at_provider = client.get_url(start.location()).await;
    assert_eq!(at_provider.status, 302, "{}", at_provider.body);
    format!("/get_token?{}", at_provider.location().split_once('?').unwrap().1)
}

/// The provider's callback URL for a server.
pub fn callback_for(server: &TestServer) -> String {
    format!("https://localhost:{}/get_token", server.addr.port())
}

/// A test PKI, a fake Yandex and our server pointed at it.
pub struct World {
    pub pki: pki::TestPki,
    pub fake: fake_oauth::FakeOAuth,
    pub server: TestServer,
}

impl World {
    pub async fn new() -> World {
        World::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut yandex_token::config::Config)) -> World {
        World::with_flags(&[], tweak).await
    }

    /// A world whose server gets `extra` command-line flags.
    pub async fn with_flags(extra: &[&str], tweak: impl FnOnce(&mut yandex_token::config::Config)) -> World {
        let pki = pki::TestPki::new();
        let fake = fake_oauth::FakeOAuth::start(&pki).await;
        let server = TestServer::start_with_flags(&pki, &fake.url(), &fake.state.secret, extra, tweak).await;
        *fake.state.callback.lock().unwrap() = Some(callback_for(&server));
        World { pki, fake, server }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.pki.ca_der)
    }

    /// A raw TLS connection to our server, offering `alpn`.
    pub async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let config = client::client_config(&self.pki.ca_der, alpn, rustls::DEFAULT_VERSIONS);
        client::tls_connect(self.server.addr, "localhost", config).await
    }
}
