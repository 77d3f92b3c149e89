//! `--flow paste`, for apps "For API access" whose redirect is Yandex's own
//! `verification_code` page: the page with the link and the form, the
//! pasted code posted back, and every way a post is refused before the
//! token endpoint is called. Over HTTP/1.1 and HTTP/2.

use hyper::Method;

use crate::support::browser::Browser;
use crate::support::client::{Client, Reply, client_config};
use crate::support::{World, have, required};

const PASTE: &[&str] = &["--flow", "paste"];

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The value of the first `attribute="…"` after `marker` in an HTML page,
/// with the page's escaping undone.
fn html_attribute(page: &str, marker: &str, attribute: &str) -> String {
    let from = &page[page.find(marker).unwrap_or_else(|| panic!("{marker} not in {page}"))..];
    let start = from.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    let value = &from[start..start + from[start..].find('"').unwrap()];
    value.replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">")
}

fn h2_client(world: &World) -> Client {
    Client::with_config(client_config(&world.pki.ca_der, &[b"h2"], rustls::DEFAULT_VERSIONS))
}

/// Opens the page and plays the user at Yandex: the authorize URL, then the
/// code on the `verification_code` page. Returns (state, code).
async fn page_and_code(world: &World, client: &mut Client) -> (String, String) {
    let page = client.get(world.server.addr, "/get_token").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let authorize = html_attribute(&page.body, "id=\"authorize\"", "href");
    let state = html_attribute(&page.body, "name=\"state\"", "value");
    // Yandex is another site: the browser's HTTP/1.1 client goes there.
    let mut yandex = world.client();
    let at_yandex = yandex.get_url(&authorize).await;
    assert_eq!(at_yandex.status, 302, "{}", at_yandex.body);
    assert!(at_yandex.location().starts_with(&format!("{}verification_code?", world.fake.url())));
    let shown = yandex.get_url(at_yandex.location()).await;
    let code = shown.body.split("<b id=\"code\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_eq!(code.len(), 16, "Yandex's codes are 16 characters now");
    (state, code)
}

fn form(code: &str, state: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("state", state)
        .finish()
}

#[tokio::test]
async fn the_page_links_to_yandex_with_verification_code_and_carries_the_form() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let page = client.get(world.server.addr, "/get_token").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"), "{csp}");
    assert!(!csp.contains("script-src") && !csp.contains("unsafe"), "{csp}");
    assert!(page.body.contains("<form method=\"post\" action=\"/get_token\">"), "{}", page.body);
    assert!(page.body.contains("name=\"code\""), "{}", page.body);
    assert!(page.body.contains("name=\"viewport\""), "readable on a phone");
    assert!(page.body.contains("logged in at Yandex"), "says whose account");
    assert!(!page.body.contains("<script"), "works without JavaScript");
    let authorize = html_attribute(&page.body, "id=\"authorize\"", "href");
    assert!(authorize.starts_with(&format!("{}authorize?", world.fake.url())), "{authorize}");
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!("{}verification_code", world.fake.url()))
    );
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    let state = html_attribute(&page.body, "name=\"state\"", "value");
    assert_eq!(query_param(&authorize, "state"), Some(state));
    let cookie = page.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-") && cookie.contains("HttpOnly"), "{cookie}");
    assert_eq!(page.header("cache-control"), Some("no-store"));

    let json = client
        .send_with(
            world.server.addr,
            Method::GET,
            "/get_token",
            &[("accept", "application/json")],
            String::new(),
        )
        .await;
    assert_eq!(json.status, 200);
    let answer = json.json();
    let url = answer["authorize_url"].as_str().unwrap();
    assert_eq!(query_param(url, "state").as_deref(), answer["state"].as_str());
}

async fn paste_completes(mut client: Client, world: &World) {
    let (state, code) = page_and_code(world, &mut client).await;
    // Pasted as people paste: with spaces and a newline around it.
    let reply =
        client.post_form(world.server.addr, "/get_token", &[], form(&format!("  {code}\n"), &state)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let issued = world.fake.state.issued_tokens.lock().unwrap().last().cloned().unwrap();
    assert_eq!(reply.json()["access_token"], issued.as_str());
    assert!(reply.header("set-cookie").unwrap().contains("Max-Age=0"), "the spent flow cookie is cleared");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.server.token_file()).unwrap()).unwrap();
    assert_eq!(stored["access_token"], issued.as_str());
    assert!(world.server.dir.path().join("tokens/accounts/test-user.json").exists());
}

#[tokio::test]
async fn a_pasted_code_gets_a_token_over_http1() {
    let world = World::with_flags(PASTE, |_| {}).await;
    paste_completes(world.client(), &world).await;
}

#[tokio::test]
async fn a_pasted_code_gets_a_token_over_http2() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let client = h2_client(&world);
    paste_completes(client, &world).await;
    // The server answered over HTTP/2 indeed.
    let reply = h2_client(&world).get(world.server.addr, "/healthz").await;
    assert_eq!(reply.version, hyper::Version::HTTP_2);
}

#[tokio::test]
async fn a_browser_posting_from_the_page_itself_is_accepted() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let (state, code) = page_and_code(&world, &mut client).await;
    let origin = format!("https://localhost:{}", world.server.addr.port());
    let headers = [("sec-fetch-site", "same-origin"), ("origin", origin.as_str())];
    let reply = client.post_form(world.server.addr, "/get_token", &headers, form(&code, &state)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The page tells browsers to send its origin with its form
/// (`same-origin`), so the Origin check compares something real; every
/// other answer keeps `no-referrer`.
#[tokio::test]
async fn the_paste_page_sends_its_origin_and_nothing_else_does() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let page = client.get(world.server.addr, "/get_token").await;
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));
    let health = client.get(world.server.addr, "/healthz").await;
    assert_eq!(health.header("referrer-policy"), Some("no-referrer"));
    let json = client
        .send_with(
            world.server.addr,
            hyper::Method::GET,
            "/get_token",
            &[("accept", "application/json")],
            String::new(),
        )
        .await;
    assert_eq!(json.header("referrer-policy"), Some("no-referrer"));
}

/// Every refusal below leaves the token endpoint uncalled.
async fn refused(world: &World, reply: Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json()["error"], error, "{}", reply.body);
    assert_eq!(world.fake.token_calls(), 0, "the token endpoint was called");
}

#[tokio::test]
async fn posts_from_other_sites_are_refused_and_do_not_spend_the_flow() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let (state, code) = page_and_code(&world, &mut client).await;
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
        vec![("origin", "http://localhost")],
        // What a browser sends under `Referrer-Policy: no-referrer`, and
        // from a sandboxed frame or a data: page: never the page's own.
        vec![("origin", "null")],
        vec![("sec-fetch-site", "same-origin"), ("origin", "null")],
        vec![("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")],
    ] {
        let reply = client.post_form(world.server.addr, "/get_token", &headers, form(&code, &state)).await;
        refused(&world, reply, 403, "cross_site_request").await;
    }
    let reply = client.post_form(world.server.addr, "/get_token", &[], form(&code, &state)).await;
    assert_eq!(reply.status, 200, "the flow survives refused posts: {}", reply.body);
}

#[tokio::test]
async fn bad_states_cookies_and_bodies_never_reach_the_token_endpoint() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let (state, code) = page_and_code(&world, &mut client).await;
    let addr = world.server.addr;

    let reply = client.post_form(addr, "/get_token", &[], form(&code, "not-the-state")).await;
    refused(&world, reply, 400, "invalid_state").await;
    let reply = client.post_form(addr, "/get_token", &[], format!("code={code}")).await;
    refused(&world, reply, 400, "invalid_state").await;
    // Another browser, without this one's cookie.
    let mut stranger = world.client();
    let reply = stranger.post_form(addr, "/get_token", &[], form(&code, &state)).await;
    refused(&world, reply, 400, "invalid_state").await;
    let reply = client
        .send_with(
            addr,
            Method::POST,
            "/get_token",
            &[("content-type", "application/json")],
            form(&code, &state),
        )
        .await;
    refused(&world, reply, 415, "unsupported_media_type").await;
    let reply = client.send_with(addr, Method::POST, "/get_token", &[], form(&code, &state)).await;
    refused(&world, reply, 415, "unsupported_media_type").await;
    let huge = format!("{}&pad={}", form(&code, &state), "x".repeat(64 * 1024));
    let reply = client.post_form(addr, "/get_token", &[], huge).await;
    refused(&world, reply, 413, "payload_too_large").await;
    let reply = client.post_form(addr, "/get_token", &[], form("two words", &state)).await;
    refused(&world, reply, 400, "invalid_request").await;
    let reply =
        client.post_form(addr, "/get_token", &[], format!("{}&code=again", form(&code, &state))).await;
    refused(&world, reply, 400, "invalid_request").await;

    // The flow is still good after all of that; then it is spent.
    let reply = client.post_form(addr, "/get_token", &[], form(&code, &state)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(world.fake.token_calls(), 1);
}

async fn refused_after(world: &World, reply: Reply) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_state");
    assert_eq!(world.fake.token_calls(), 1, "a replay never reaches the token endpoint");
}

/// A double click: the browser sends the same form twice, with the same
/// flow cookie. The second gets the first login's outcome (the same token,
/// no second call to Yandex); a POST without that cookie gets nothing.
#[tokio::test]
async fn a_repeated_post_from_the_same_browser_gets_the_first_outcome() {
    let world = World::with_flags(PASTE, |_| {}).await;
    let mut client = world.client();
    let (state, code) = page_and_code(&world, &mut client).await;
    let jar = client.cookies.clone();
    let first = client.post_form(world.server.addr, "/get_token", &[], form(&code, &state)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let mut same_browser = world.client();
    same_browser.cookies = jar;
    let again = same_browser.post_form(world.server.addr, "/get_token", &[], form(&code, &state)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["access_token"], first.json()["access_token"]);
    assert!(again.json().get("refresh_token").is_none());
    assert_eq!(world.fake.token_calls(), 1, "a repeat never reaches the token endpoint");
    let stranger = world.client().post_form(world.server.addr, "/get_token", &[], form(&code, &state)).await;
    refused_after(&world, stranger).await;
}

#[tokio::test]
async fn paste_mode_still_takes_callbacks_and_callback_mode_refuses_posts() {
    let world =
        World::with_flags(&["--flow", "paste", "--redirect-uri", "https://localhost:1/get_token"], |_| {})
            .await;
    let mut client = world.client();
    let page = client.get(world.server.addr, "/get_token").await;
    let authorize = html_attribute(&page.body, "id=\"authorize\"", "href");
    let at_yandex = client.get_url(&authorize).await;
    // The fake sends the browser to the given redirect_uri; bring the
    // callback to our server instead.
    let query = at_yandex.location().split_once('?').unwrap().1.to_owned();
    let reply = client.get(world.server.addr, &format!("/get_token?{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let world = World::new().await;
    let reply = world.client().post_form(world.server.addr, "/get_token", &[], "code=a&state=b".into()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    assert_eq!(world.fake.token_calls(), 0);
}

/// A mistyped code spends the flow; a browser is told so on a page with a
/// way to start again, not with raw JSON. A JSON client keeps the JSON, and
/// `text/html;q=0` is read as "not HTML".
#[tokio::test]
async fn a_browser_gets_a_page_when_something_goes_wrong() {
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let world = World::with_flags(PASTE, |_| {}).await;
    let addr = world.server.addr;
    let mut client = world.client();
    let (state, _) = page_and_code(&world, &mut client).await;
    let reply =
        client.post_form(addr, "/get_token", &[("accept", BROWSER)], form("wrong0code0123", &state)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(reply.body.contains("<a class=\"button\" id=\"again\" href=\"/get_token\">"), "{}", reply.body);
    assert!(reply.body.contains("a code works once"), "{}", reply.body);
    assert!(!reply.body.contains("{\"error\""), "{}", reply.body);
    assert!(reply.header("content-security-policy").unwrap().contains("default-src 'none'"));
    // The flow's cookie is cleared on the page as on the JSON.
    assert!(reply.headers.get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("Max-Age=0")));

    for accept in ["application/json", "text/html;q=0, */*", "*/*"] {
        let (state, _) = page_and_code(&world, &mut client).await;
        let reply =
            client.post_form(addr, "/get_token", &[("accept", accept)], form("wrong0code0123", &state)).await;
        assert_eq!(reply.status, 400, "{accept}: {}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_grant", "{accept}");
    }
    // A 405 keeps its Allow header on the page too.
    let reply =
        client.send_with(addr, hyper::Method::PUT, "/get_token", &[("accept", BROWSER)], String::new()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST"));
    assert!(reply.body.contains("id=\"again\""), "{}", reply.body);
}

/// Plays the user at Yandex for a page open in the browser: follows its
/// authorize link, reads the code Yandex shows. Returns (state, code).
async fn code_for_browser_page(world: &World, browser: &Browser) -> (String, String) {
    let authorize = browser.attribute(&browser.find("#authorize").await, "href").await;
    let state = browser.attribute(&browser.find("input[name=state]").await, "value").await;
    let mut yandex = world.client();
    let at_yandex = yandex.get_url(&authorize).await;
    assert_eq!(at_yandex.status, 302, "{}", at_yandex.body);
    let shown = yandex.get_url(at_yandex.location()).await;
    let code = shown.body.split("<b id=\"code\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    (state, code)
}

/// Serves one page on plain HTTP at 127.0.0.1 (another origin than the
/// server's https://localhost): every request gets `html`.
async fn other_origin(html: String) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                tcp.write_all(answer.as_bytes()).await.ok();
            });
        }
    });
    (addr, task)
}

/// In a real browser (headless Chromium): the paste page's own form gets
/// the token (Chromium sends the page's real Origin, as the page's
/// `Referrer-Policy: same-origin` lets it), and a page on another origin
/// posting the same fields to the server is refused with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_page_posts_and_another_origin_is_refused() {
    if !required("chromedriver and chromium", have("chromedriver") && have("chromium")) {
        return;
    }
    let world = World::with_flags(PASTE, |_| {}).await;
    let page = format!("https://localhost:{}/get_token", world.server.addr.port());
    let browser = Browser::start().await;

    // Another origin first: a page of its own with the victim's state and
    // a good code, posting to the server. Refused before Yandex is asked.
    browser.open(&page).await;
    let (state, code) = code_for_browser_page(&world, &browser).await;
    let evil = format!(
        "<!doctype html><form method=\"post\" action=\"{page}\"><input name=\"code\" value=\"{code}\">\
         <input name=\"state\" value=\"{state}\"><button id=\"go\" type=\"submit\">go</button></form>"
    );
    let (evil_addr, evil_task) = other_origin(evil).await;
    browser.open(&format!("http://{evil_addr}/")).await;
    browser.click(&browser.find("#go").await).await;
    browser.text_with("may only be posted from this server's own page").await;
    assert_eq!(world.fake.token_calls(), 0, "a cross-origin post reached Yandex");
    evil_task.abort();

    // The page itself: paste the code, press the button, get the token.
    browser.open(&page).await;
    let (_, code) = code_for_browser_page(&world, &browser).await;
    browser.type_into(&browser.find("#code").await, &code).await;
    browser.click(&browser.find("button[type=submit]").await).await;
    browser.text_with("Token stored").await;
    assert_eq!(world.fake.token_calls(), 1);
    let stored = std::fs::read_to_string(world.server.token_file()).unwrap();
    assert!(stored.contains(world.fake.state.issued_tokens.lock().unwrap()[0].as_str()));
}
