//! Whose token it is: accounts stored side by side, the allow-list that
//! revokes and refuses, a failed lookup that still stores, and the
//! `refresh`, `list` and `show --login` commands against the fake Yandex
//! (single-use refresh tokens, as a strict server's).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use crate::support::process::run;
use crate::support::server::flags_for;
use crate::support::{World, complete_flow};

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// Completes a flow as `login`; returns the stored document, which is the
/// answer plus the refresh token that never leaves the server.
async fn flow_as(world: &World, login: &str) -> Value {
    *world.fake.state.login.lock().unwrap() = login.to_owned();
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut answer = reply.json();
    assert!(answer.get("refresh_token").is_none(), "the refresh token stays on the server");
    // Without a login (the lookup failed) the token is in token.json only,
    // and the answer adds a warning.
    let file = match answer["login"].as_str() {
        Some(login) => format!("tokens/accounts/{login}.json"),
        None => "tokens/token.json".to_owned(),
    };
    let mut stored = read_json(&world.server.dir.path().join(file));
    assert!(stored["refresh_token"].is_string());
    let refresh = stored.as_object_mut().unwrap().remove("refresh_token").unwrap();
    let warning = answer.as_object_mut().unwrap().remove("warning");
    assert_eq!(stored, answer);
    stored["refresh_token"] = refresh;
    if let Some(warning) = warning {
        stored["warning"] = warning;
    }
    stored
}

#[tokio::test]
async fn two_accounts_are_stored_side_by_side() {
    let world = World::new().await;
    let alice = flow_as(&world, "alice").await;
    let bob = flow_as(&world, "Bob").await;
    assert_eq!((alice["login"].as_str(), bob["login"].as_str()), (Some("alice"), Some("bob")));
    assert_eq!(alice["id"], "1130000000000001");
    let tokens = world.server.dir.path().join("tokens");
    for (login, doc) in [("alice", &alice), ("bob", &bob)] {
        let path = tokens.join(format!("accounts/{login}.json"));
        assert_eq!(&read_json(&path), doc);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(std::fs::metadata(tokens.join("accounts")).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(read_json(&tokens.join("token.json")), bob, "token.json is the most recent");
}

/// A token of an account off the allow-list is dropped, and the answer says
/// only what happened: a regular token cannot be revoked by the app (the
/// fake refuses, as Yandex does), so it is "not kept here", never
/// "revoked"; a device token is revoked, and the answer says so.
#[tokio::test]
async fn a_login_off_the_allow_list_is_refused_and_told_as_it_is() {
    let world = World::with(|c| c.allow_logins = vec!["alice".into()]).await;
    *world.fake.state.login.lock().unwrap() = "mallory".into();
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["error"], "login_not_allowed");
    let description = reply.json()["error_description"].as_str().unwrap().to_owned();
    assert!(description.contains("mallory") && description.contains("not kept here"), "{description}");
    assert!(description.contains("not revoked"), "{description}");
    assert!(!description.contains("was revoked"), "{description}");
    let issued = world.fake.state.issued_tokens.lock().unwrap().clone();
    assert!(world.fake.state.revoked.lock().unwrap().is_empty());
    assert!(!reply.body.contains(&issued[0]), "a refused token must not reach the browser");
    assert!(!world.server.dir.path().join("tokens/token.json").exists());
    assert!(!world.server.dir.path().join("tokens/accounts").exists());
    // The owner still gets in.
    assert_eq!(flow_as(&world, "alice").await["login"], "alice");

    // With --device-id every token is a device token, which Yandex revokes.
    let world = World::with_flags(&["--device-id", "box-0001", "--device-name", "the box"], |c| {
        c.allow_logins = vec!["alice".into()];
    })
    .await;
    *world.fake.state.login.lock().unwrap() = "mallory".into();
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let description = reply.json()["error_description"].as_str().unwrap().to_owned();
    assert!(description.contains("revoked at Yandex"), "{description}");
    let issued = world.fake.state.issued_tokens.lock().unwrap().clone();
    assert_eq!(*world.fake.state.revoked.lock().unwrap(), issued, "the device token was not revoked");
}

#[tokio::test]
async fn a_failed_lookup_still_stores_the_token() {
    let world = World::new().await;
    world.fake.state.info_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let answer = flow_as(&world, "alice").await;
    assert_eq!(answer["login"], Value::Null);
    assert!(answer["warning"].as_str().unwrap().contains("could not be looked up"));
    let stored = read_json(&world.server.dir.path().join("tokens/token.json"));
    assert_eq!(stored["access_token"], answer["access_token"]);
    assert!(!world.server.dir.path().join("tokens/accounts").exists());
}

#[tokio::test]
async fn with_an_allow_list_a_failed_lookup_hands_the_token_over_unstored() {
    let world = World::with(|c| c.allow_logins = vec!["alice".into()]).await;
    world.fake.state.info_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json()["error"], "token_not_stored");
    let issued = world.fake.state.issued_tokens.lock().unwrap()[0].clone();
    assert_eq!(reply.json()["token"]["access_token"], issued.as_str());
    assert!(!world.server.dir.path().join("tokens/token.json").exists());
}

fn cli(world: &World, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(flags_for(&world.pki, &world.fake.url(), &world.fake.state.secret, world.server.dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

async fn cli_async(world: &World, extra: &[&str]) -> (i32, String, String) {
    tokio::task::block_in_place(|| cli(world, extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_list_and_show_manage_the_accounts() {
    let world = World::new().await;
    let alice = flow_as(&world, "alice").await;
    let bob = flow_as(&world, "bob").await;
    let tokens = world.server.dir.path().join("tokens");
    let account = |login: &str| read_json(&tokens.join(format!("accounts/{login}.json")));

    // One account.
    let (code, _, stderr) = cli_async(&world, &["refresh", "--login", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    let alice2 = account("alice");
    assert_ne!(alice2["access_token"], alice["access_token"]);
    assert_ne!(alice2["refresh_token"], alice["refresh_token"], "the new refresh token is stored");
    assert_eq!(alice2["login"], "alice");
    assert_eq!(account("bob"), bob);
    assert_eq!(read_json(&tokens.join("token.json")), bob, "token.json holds bob's token still");

    // The expiry filter: a year left is not within 30 days.
    let (code, _, stderr) = cli_async(&world, &["refresh", "--all", "--if-expires-within", "30"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not due"), "{stderr}");
    assert_eq!(account("alice"), alice2);

    // All of them, when within the window.
    let (code, _, stderr) = cli_async(&world, &["refresh", "--all", "--if-expires-within", "400"]).await;
    assert_eq!(code, 0, "{stderr}");
    let bob2 = account("bob");
    assert_ne!(account("alice"), alice2);
    assert_ne!(bob2["access_token"], bob["access_token"]);
    assert_eq!(read_json(&tokens.join("token.json")), bob2, "token.json follows its account");

    // list and show.
    let (code, stdout, _) = cli_async(&world, &["list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("alice\t") && lines[1].starts_with("bob\t"), "{stdout}");
    assert!(lines[0].contains("days left"), "{stdout}");
    let (_, stdout, _) = cli_async(&world, &["list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[1]["login"], "bob");
    assert!(listed[1]["days_left"].as_i64().unwrap() >= 364);
    let (code, stdout, _) = cli_async(&world, &["show", "--login", "bob"]).await;
    assert_eq!((code, stdout.trim()), (0, bob2["access_token"].as_str().unwrap()));

    // A refused refresh (the refresh token was revoked) says so and keeps the file.
    world.fake.state.refresh_tokens.lock().unwrap().clear();
    let before = account("alice");
    let (code, _, stderr) = cli_async(&world, &["refresh", "--login", "alice"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid_grant") && stderr.contains("browser flow"), "{stderr}");
    assert_eq!(account("alice"), before);
    for secret in [world.fake.state.secret.as_str(), before["refresh_token"].as_str().unwrap()] {
        assert!(!stderr.contains(secret), "stderr leaks a secret: {stderr}");
    }
}

#[tokio::test]
async fn metrics_count_flows_and_errors_on_their_own_listener_only() {
    let world = World::with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let mut client = world.client();
    assert_eq!(complete_flow(&mut client, &world.server).await.status, 200);
    assert_eq!(client.get(world.server.addr, "/get_token?code=x&state=y").await.status, 400);
    // Not on the public port, whatever the configuration.
    assert_eq!(client.get(world.server.addr, "/metrics").await.status, 404);
    let metrics = world.server.metrics_addr.unwrap();
    let reply = crate::support::client::plain(metrics, hyper::Method::GET, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = reply.body;
    for line in [
        "yandex_token_flows_started_total 1",
        "yandex_token_tokens_stored_total 1",
        "yandex_token_errors_total{kind=\"bad_state\"} 1",
        "yandex_token_upstream_seconds_count 2",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let open: i64 =
        text.lines().find_map(|l| l.strip_prefix("yandex_token_connections_open ")).unwrap().parse().unwrap();
    assert!(open >= 1, "{text}");
    let leaf =
        rustls_pki_types::CertificateDer::pem_file_iter(&world.pki.cert).unwrap().next().unwrap().unwrap();
    let expiry = yandex_token::tls::validity::not_after(&leaf).unwrap();
    assert!(text.contains(&format!("yandex_token_certificate_expiry_seconds {expiry}")), "{text}");
    let token = world.fake.state.issued_tokens.lock().unwrap()[0].clone();
    assert!(!text.contains(&token) && !text.contains("test-user"), "metrics expose a token or a login");

    let head = crate::support::client::plain(metrics, hyper::Method::HEAD, "/metrics").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = crate::support::client::plain(metrics, hyper::Method::POST, "/metrics").await;
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(crate::support::client::plain(metrics, hyper::Method::GET, "/").await.status, 404);
}
