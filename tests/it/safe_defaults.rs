//! Safe by default (issue 17): no stranger's token without an allow-list
//! or an explicit choice, the refresh token kept on the server, the OS's
//! randomness, flow cookies cleared on every outcome, token exchanges
//! bounded, and `/metrics` off the public port.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::fake_oauth::Mode;
use crate::support::pki::TestPki;
use crate::support::process::run;
use crate::support::server::flags_for;
use crate::support::{World, callback_target, complete_flow};

fn cleared(reply: &crate::support::client::Reply) -> bool {
    reply.headers.get_all("set-cookie").iter().any(|value| {
        let value = value.to_str().unwrap();
        value.starts_with("__Host-yt-flow-") && value.contains("Max-Age=0")
    })
}

#[test]
fn serve_and_check_refuse_to_start_without_an_allow_list_or_a_choice() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let flags: Vec<String> = flags_for(&pki, "https://oauth.yandex.ru/", "s3cret", dir.path())
        .into_iter()
        .filter(|flag| flag != "--allow-any-login")
        .collect();
    for command in ["serve", "check"] {
        let mut args = vec![command, "--listen", "127.0.0.1:0"];
        args.extend(flags.iter().map(String::as_str));
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 78, "{command}: {stderr}");
        assert!(stderr.contains("--allow-login") && stderr.contains("--allow-any-login"), "{stderr}");
        // Either choice is accepted (check then runs its checks).
        let mut chosen = args.clone();
        chosen.retain(|arg| *arg != "--listen" && *arg != "127.0.0.1:0");
        if command == "check" {
            chosen.extend(["--allow-login", "alice"]);
            let (code, _, stderr) = run(&chosen);
            assert_eq!(code, 0, "{stderr}");
        }
    }
    let (code, _, stderr) = run(&["check", "--allow-login", "alice", "--allow-any-login"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("contradict"), "{stderr}");
}

#[test]
fn the_old_metrics_switch_names_its_replacement() {
    let (code, _, stderr) = run(&["serve", "--metrics"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}

#[tokio::test]
async fn a_browser_gets_a_page_without_the_refresh_token_and_a_script_gets_json() {
    let world = World::new().await;
    let mut client = world.client();
    let target = callback_target(&mut client, &world.server).await;
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = client
        .send_with(world.server.addr, hyper::Method::GET, &target, &[("accept", accept)], String::new())
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let token = world.fake.state.issued_tokens.lock().unwrap()[0].clone();
    assert!(page.body.contains(&format!("readonly value=\"{token}\"")), "{}", page.body);
    assert!(
        page.body.contains("<code id=\"show\">yandex-token show --login test-user</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"expires\""), "{}", page.body);
    assert!(!page.body.contains("refresh"), "{}", page.body);
    assert!(!page.body.contains("<script"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(!csp.contains("script-src") && !csp.contains("unsafe"), "{csp}");
    assert!(cleared(&page));
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.server.token_file()).unwrap()).unwrap();
    assert!(stored["refresh_token"].is_string(), "kept on the server");
}

#[test]
fn rustls_takes_its_random_bytes_from_the_os_through_ring() {
    let ours = yandex_token::tls::provider();
    let ring = rustls::crypto::ring::default_provider();
    assert_eq!(format!("{:?}", ours.secure_random), format!("{:?}", ring.secure_random));
}

#[tokio::test]
async fn every_callback_outcome_clears_the_flow_cookie() {
    // Denied.
    let world = World::new().await;
    let mut client = world.client();
    let start = client.get(world.server.addr, "/get_token").await;
    let state = start.location().split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let reply = client.get(world.server.addr, &format!("/get_token?error=access_denied&state={state}")).await;
    assert_eq!(reply.status, 403);
    assert!(cleared(&reply), "denied");
    // Refused by the allow-list.
    let world = World::with(|c| c.allow_logins = vec!["alice".into()]).await;
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 403);
    assert!(cleared(&reply), "refused");
    // The token endpoint failed.
    let world = World::new().await;
    world.fake.set_mode(Mode::Status500);
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 502);
    assert!(cleared(&reply), "failed");
    // The code was refused.
    world.fake.set_mode(Mode::Normal);
    *world.fake.state.code_ttl.lock().unwrap() = Duration::ZERO;
    let reply = complete_flow(&mut world.client(), &world.server).await;
    assert_eq!(reply.status, 400);
    assert!(cleared(&reply), "rejected");
}

#[tokio::test]
async fn exchanges_per_minute_are_capped_before_yandex_is_called() {
    let world = World::with_flags(&["--exchange-rate", "2"], |_| {}).await;
    for _ in 0..2 {
        assert_eq!(complete_flow(&mut world.client(), &world.server).await.status, 200);
    }
    let mut client = world.client();
    let target = callback_target(&mut client, &world.server).await;
    let reply = client.get(world.server.addr, &target).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json()["error"], "too_many_exchanges");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(world.fake.token_calls(), 2, "Yandex was not called a third time");
}

#[tokio::test]
async fn exchanges_at_once_are_capped_before_yandex_is_called() {
    let world = World::with_flags(&["--max-exchanges", "1"], |_| {}).await;
    world.fake.set_mode(Mode::Slow(Duration::from_secs(2)));
    let first = {
        let addr = world.server.addr;
        let mut client = world.client();
        let target = callback_target(&mut client, &world.server).await;
        tokio::spawn(async move { client.get(addr, &target).await.status })
    };
    world.fake.state.token_request_seen.notified().await;
    let mut client = world.client();
    let target = callback_target(&mut client, &world.server).await;
    let reply = client.get(world.server.addr, &target).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(world.fake.state.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(first.await.unwrap(), 200);
    // The refused flow was not spent: once the first is done, it completes.
    world.fake.set_mode(Mode::Normal);
    assert_eq!(client.get(world.server.addr, &target).await.status, 200);
}
