//! The token endpoint failing every way it can: each gets its status and a
//! JSON error, nothing is stored, and the server keeps serving.

use std::time::Duration;

use crate::support::fake_oauth::Mode;
use crate::support::server::TestServer;
use crate::support::{World, callback_for, complete_flow};

async fn assert_still_serving(world: &World) {
    let mut client = world.client();
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
}

async fn flow_with_mode(mode: Mode, expected_status: u16, expected_error: &str) {
    let world = World::with(|config| config.limits.upstream_timeout = Duration::from_millis(500)).await;
    world.fake.set_mode(mode);
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, expected_status, "{mode:?}: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["error"], expected_error, "{mode:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(!world.server.token_file().exists());
    assert_still_serving(&world).await;
    // And once the provider recovers, a new flow succeeds.
    world.fake.set_mode(Mode::Normal);
    assert_eq!(complete_flow(&mut client, &world.server).await.status, 200);
}

#[tokio::test]
async fn a_500_is_a_502() {
    flow_with_mode(Mode::Status500, 502, "upstream_bad_response").await;
}

#[tokio::test]
async fn garbage_is_a_502() {
    flow_with_mode(Mode::Garbage, 502, "upstream_bad_response").await;
}

#[tokio::test]
async fn an_oversized_body_is_a_502() {
    flow_with_mode(Mode::HugeBody, 502, "upstream_bad_response").await;
}

#[tokio::test]
async fn a_slow_endpoint_is_a_504() {
    flow_with_mode(Mode::Slow(Duration::from_secs(5)), 504, "upstream_timeout").await;
}

#[tokio::test]
async fn an_expired_code_is_the_providers_400() {
    let world = World::new().await;
    *world.fake.state.code_ttl.lock().unwrap() = Duration::ZERO;
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert_eq!(reply.json()["error_description"], "Code has expired");
    assert_still_serving(&world).await;
}

#[tokio::test]
async fn wrong_client_credentials_are_the_servers_fault_not_the_users() {
    let world = World::new().await;
    world
        .server
        .app
        .keeper
        .oauth
        .set_secret(yandex_token::util::secret::Secret::new("not-the-secret".into()));
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    // invalid_client: our configuration is wrong, so it is a 502, not a 400.
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.json()["error"], "server_credentials_refused");
    assert!(!reply.body.contains("not-the-secret"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_502() {
    let world = World::new().await;
    // A port nobody listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = TestServer::start_with(
        &world.pki,
        &format!("https://localhost:{}/", closed.port()),
        &world.fake.state.secret,
        |_| {},
    )
    .await;
    let mut client = world.client();
    let start = client.get(server.addr, "/get_token").await;
    let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let reply = client.get(server.addr, &format!("/get_token?code=somecode&state={state}")).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.json()["error"], "upstream_unreachable");
    assert_eq!(client.get(server.addr, "/healthz").await.status, 200);
    let _ = callback_for(&server);
}

#[tokio::test]
async fn an_untrusted_endpoint_certificate_is_a_502() {
    // Our server trusts the system roots plus its --ca-file; a fake signed by
    // another CA must be refused, not silently accepted.
    let world = World::new().await;
    let other_pki = crate::support::pki::TestPki::new();
    let server =
        TestServer::start_with(&other_pki, &world.fake.url(), &world.fake.state.secret, |_| {}).await;
    *world.fake.state.callback.lock().unwrap() = Some(callback_for(&server));
    let mut client = crate::support::client::Client::new(&other_pki.ca_der);
    let start = client.get(server.addr, "/get_token").await;
    let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let reply = client.get(server.addr, &format!("/get_token?code=somecode&state={state}")).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.json()["error_description"].as_str().unwrap().contains("TLS"), "{}", reply.body);
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn reload_rereads_the_client_secret() {
    let world = World::new().await;
    // The provider rotates the secret; the file is updated; SIGHUP's reload runs.
    let secret_file = world.server.dir.path().join("client_secret");
    std::fs::write(&secret_file, "rotated-secret\n").unwrap();
    let fake_secret = &world.fake.state.secret;
    let mut client = world.client();
    assert!(world.server.app.reload().is_empty());
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.json()["error"], "server_credentials_refused", "the new secret is in use");
    std::fs::write(&secret_file, format!("{fake_secret}\n")).unwrap();
    assert!(world.server.app.reload().is_empty());
    assert_eq!(complete_flow(&mut client, &world.server).await.status, 200);
    // An unreadable secret file keeps the current secret.
    std::fs::remove_file(&secret_file).unwrap();
    assert_eq!(world.server.app.reload().len(), 1);
    assert_eq!(complete_flow(&mut client, &world.server).await.status, 200);
}

/// The system's roots are read at start, and not finding any is not
/// remembered. The real binary starts with no `--ca-file` and
/// `SSL_CERT_FILE` naming an empty file: it says so at start, the first
/// callback is a 502 that says why, and once the file holds the fake's CA
/// the next flow gets its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_system_roots_are_read_again_at_the_first_exchange() {
    use crate::support::client::Client;
    use crate::support::process::Running;

    let pki = crate::support::pki::TestPki::new();
    let fake = crate::support::fake_oauth::FakeOAuth::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, "").unwrap();
    let no_hashed_dir = dir.path().join("certs");
    std::fs::create_dir(&no_hashed_dir).unwrap();
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(crate::support::server::flags_for(&pki, &fake.url(), &fake.state.secret, dir.path()));
    let ca_flag = args.iter().position(|arg| arg == "--ca-file").unwrap();
    args.drain(ca_flag..ca_flag + 2);
    let env = [("SSL_CERT_FILE", roots.to_str().unwrap()), ("SSL_CERT_DIR", no_hashed_dir.to_str().unwrap())];
    let (mut server, addr) = Running::start_with_env(&args, &env);
    assert!(server.stderr().contains("no trust anchors"), "said at start: {}", server.stderr());
    *fake.state.callback.lock().unwrap() = Some(format!("https://localhost:{}/get_token", addr.port()));
    let mut client = Client::new(&pki.ca_der);
    let mut flow = async || {
        let start = client.get(addr, "/get_token").await;
        let at_provider = client.get_url(start.location()).await;
        client.get_url(at_provider.location()).await
    };

    let reply = flow().await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.json()["error"], "upstream_unreachable");
    assert!(reply.body.contains("no trust anchors"), "{}", reply.body);
    assert_eq!(fake.token_calls(), 0);

    std::fs::copy(&pki.ca_pem, &roots).unwrap();
    let reply = flow().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(fake.token_calls(), 1);
    assert!(server.terminate().success());
}
