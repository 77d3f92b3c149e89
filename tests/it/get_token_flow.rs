//! The flow through `/get_token`: the redirect, the callback, the stored
//! token, and every way a callback can be refused before the token endpoint
//! is called.

use std::os::unix::fs::PermissionsExt;

use crate::support::{World, complete_flow};

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn start_redirects_to_authorize_with_pkce_and_a_host_cookie() {
    let world = World::new().await;
    let mut client = world.client();
    let reply = client.get(world.server.addr, "/get_token").await;
    assert_eq!(reply.status, 302);
    let location = reply.location();
    assert!(location.starts_with(&format!("{}authorize?", world.fake.url())), "{location}");
    assert_eq!(query_param(location, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(location, "client_id").as_deref(), Some("test-client-id"));
    assert_eq!(query_param(location, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(location, "code_challenge").unwrap().len(), 43);
    assert!(query_param(location, "state").unwrap().len() >= 43);
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-"), "{cookie}");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert!(reply.header("strict-transport-security").unwrap().starts_with("max-age="));
    // Two starts give two different states and challenges.
    let again = client.get(world.server.addr, "/get_token").await;
    assert_ne!(query_param(again.location(), "state"), query_param(location, "state"));
    assert_ne!(query_param(again.location(), "code_challenge"), query_param(location, "code_challenge"));
}

#[tokio::test]
async fn a_whole_flow_stores_the_token_privately_and_answers_with_it() {
    let world = World::new().await;
    let mut client = world.client();
    let reply = complete_flow(&mut client, &world.server).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let answered = reply.json();
    let issued = world.fake.state.issued_tokens.lock().unwrap().clone();
    assert_eq!(issued.len(), 1);
    assert_eq!(answered["access_token"], issued[0].as_str());
    assert_eq!(answered["token_type"], "bearer");
    assert!(answered.get("refresh_token").is_none(), "the refresh token stays on the server");
    assert!(answered["obtained_at"].as_u64().unwrap() > 1_700_000_000);

    let file = world.server.token_file();
    let mut stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(stored["refresh_token"].as_str().unwrap().starts_with("1:refresh:"));
    stored.as_object_mut().unwrap().remove("refresh_token");
    assert_eq!(stored, answered);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let dir = file.parent().unwrap();
    assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn two_tabs_started_side_by_side_both_complete() {
    let world = World::new().await;
    let mut client = world.client();
    let first = client.get(world.server.addr, "/get_token").await;
    let second = client.get(world.server.addr, "/get_token").await;
    let second_cb = client.get_url(second.location()).await;
    let first_cb = client.get_url(first.location()).await;
    assert_eq!(client.get_url(second_cb.location()).await.status, 200);
    assert_eq!(client.get_url(first_cb.location()).await.status, 200);
    assert_eq!(world.fake.state.issued_tokens.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_reused_state_is_refused_without_calling_the_token_endpoint() {
    let world = World::new().await;
    let mut client = world.client();
    let start = client.get(world.server.addr, "/get_token").await;
    let callback = client.get_url(start.location()).await.location().to_owned();
    assert_eq!(client.get_url(&callback).await.status, 200);
    let calls = world.fake.token_calls();
    let replay = client.get_url(&callback).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_state");
    assert_eq!(world.fake.token_calls(), calls, "the token endpoint was called for a reused state");
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let world = World::new().await;
    let mut victim = world.client();
    let start = victim.get(world.server.addr, "/get_token").await;
    let callback = victim.get_url(start.location()).await.location().to_owned();
    // An attacker's browser (no cookie, or its own cookie) replaying the URL.
    let mut attacker = world.client();
    let reply = attacker.get_url(&callback).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_state");
    attacker.get(world.server.addr, "/get_token").await;
    assert!(!attacker.cookies.is_empty());
    assert_eq!(attacker.get_url(&callback).await.status, 400);
    assert_eq!(world.fake.token_calls(), 0);
    // The victim's own callback still works: refusals consumed nothing of theirs.
    assert_eq!(victim.get_url(&callback).await.status, 200);
}

#[tokio::test]
async fn unknown_missing_and_oversized_states_are_refused() {
    let world = World::new().await;
    let mut client = world.client();
    client.get(world.server.addr, "/get_token").await;
    let long_state = "s".repeat(1025);
    for target in [
        "/get_token?code=abc&state=made-up".to_owned(),
        "/get_token?code=abc".to_owned(),
        format!("/get_token?code=abc&state={long_state}"),
    ] {
        let reply = client.get(world.server.addr, &target).await;
        assert_eq!(reply.status, 400, "{target}: {}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_state", "{target}");
        assert!(reply.json()["error_description"].as_str().unwrap().len() > 10);
    }
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn malformed_queries_get_a_clear_400() {
    let world = World::new().await;
    let mut client = world.client();
    for target in [
        "/get_token?code=a&code=b&state=s",
        "/get_token?code=%zz&state=s",
        "/get_token?code=%ff%fe&state=s",
        "/get_token?state=only",
    ] {
        let reply = client.get(world.server.addr, target).await;
        assert_eq!(reply.status, 400, "{target}: {}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_request", "{target}");
    }
    assert_eq!(world.fake.token_calls(), 0);
    assert_eq!(client.get(world.server.addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn denial_is_a_403_json_and_never_a_redirect() {
    let world = World::new().await;
    let mut client = world.client();
    let start = client.get(world.server.addr, "/get_token").await;
    let state = query_param(start.location(), "state").unwrap();
    let reply = client
        .get(
            world.server.addr,
            &format!("/get_token?error=access_denied&error_description=User+denied+access&state={state}"),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.header("location").is_none());
    assert_eq!(reply.json()["error"], "access_denied");
    assert_eq!(reply.json()["error_description"], "User denied access");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(world.fake.token_calls(), 0);
    // The denied flow's state is spent: it cannot finish a flow afterwards.
    let reply = client.get(world.server.addr, &format!("/get_token?code=c&state={state}")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_state");
    assert_eq!(world.fake.token_calls(), 0);
}

#[tokio::test]
async fn a_code_injected_into_another_flow_fails_pkce() {
    // An attacker's code (issued for the attacker's challenge) pasted into
    // the victim's callback: the victim's verifier does not match.
    let world = World::new().await;
    let mut attacker = world.client();
    let a_start = attacker.get(world.server.addr, "/get_token").await;
    let a_callback = attacker.get_url(a_start.location()).await.location().to_owned();
    let stolen_code = query_param(&a_callback, "code").unwrap();
    let mut victim = world.client();
    let v_start = victim.get(world.server.addr, "/get_token").await;
    let v_state = query_param(v_start.location(), "state").unwrap();
    let reply =
        victim.get(world.server.addr, &format!("/get_token?code={stolen_code}&state={v_state}")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert!(!world.server.token_file().exists());
}

#[tokio::test]
async fn debug_prints_hold_no_secret_state_or_token() {
    let world = World::new().await;
    let mut client = world.client();
    let start = client.get(world.server.addr, "/get_token").await;
    let state = query_param(start.location(), "state").unwrap();
    let debug = format!("{:?}", world.server.app);
    assert!(!debug.contains(&world.fake.state.secret), "the client secret is in Debug");
    assert!(!debug.contains(&state), "a state is in Debug");
    let reply = complete_flow(&mut client, &world.server).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert!(!format!("{:?}", world.server.app).contains(&token));
    let err = yandex_token::http::error::AppError::StoreFailed {
        reason: "disk full".into(),
        token: yandex_token::util::secret::Secret::new(serde_json::json!({ "access_token": token.clone() })),
    };
    assert!(!format!("{err:?}").contains(&token), "a token is in an error's Debug");
}

#[tokio::test]
async fn a_flood_of_new_flows_does_not_push_out_a_users_flow() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let world = World::new().await;
    let mut user = world.client();
    let start = user.get(world.server.addr, "/get_token").await;
    let callback = user.get_url(start.location()).await.location().to_owned();
    // 3,000 flows started by someone else, pipelined on one connection.
    let mut flood = world.tls(&[b"http/1.1"]).await;
    const FLOWS: usize = 3000;
    let requests = "GET /get_token HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(FLOWS);
    flood.write_all(requests.as_bytes()).await.unwrap();
    let mut seen = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = String::new();
    while seen < FLOWS {
        let n = flood.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed after {seen} answers");
        tail.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen += tail.matches("HTTP/1.1 302").count();
        tail = tail.rsplit("HTTP/1.1 302").next().unwrap_or("").to_owned();
    }
    let reply = user.get_url(&callback).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn the_state_the_verifier_and_the_cookie_are_independent_random_values() {
    // They come from one draw of the OS's generator: none may give another away.
    let world = World::new().await;
    let mut client = world.client();
    let start = client.get(world.server.addr, "/get_token").await;
    let state = query_param(start.location(), "state").unwrap();
    let cookie =
        start.header("set-cookie").unwrap().split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let at_yandex = client.get_url(start.location()).await;
    assert_eq!(client.get_url(at_yandex.location()).await.status, 200);
    let verifier = world.fake.state.verifiers.lock().unwrap()[0].clone();
    assert_eq!((state.len(), verifier.len()), (43, 43));
    assert_ne!(state, verifier);
    assert!(!cookie.contains(&state[..16]) && !cookie.contains(&verifier[..16]), "the cookie is sealed");
}
