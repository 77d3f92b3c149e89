//! `/get_token`, the whole flow. `GET` without parameters starts a flow: a
//! 302 to the provider (`--flow callback`) or a page with the link and a
//! form for the code Yandex shows (`--flow paste`). `GET` with `code` and
//! `state`, or the form's `POST`, finishes one (check the state, exchange
//! the code, keep the token, answer with it); `GET` with `error` reports
//! the user's refusal. The state is always checked before the token
//! endpoint is called.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use ring::aead::NONCE_LEN;

use crate::config::Flow;
use crate::http::accept;
use crate::http::app::App;
use crate::http::connections::ClientAddr;
use crate::http::error::AppError;
use crate::http::response::{self, Body, json_response};
use crate::keeper::login::{Grant, Kept, Login, Progress};
use crate::oauth::pending::{ALREADY_USED, COOKIE_PREFIX, clear_for_state, cookie_name};
use crate::oauth::{OAuthError, Pkce, usable_code};
use crate::util::encoding::{UrlSafe32, cookie_pairs, pick_params, printable};
use crate::util::secret::{Secret, fill_random};
use crate::util::time::now_unix;

/// Yandex refuses a `state` longer than this.
const MAX_STATE: usize = 1024;
/// The pasted-code form: a code and a state, with room to spare.
const MAX_FORM: usize = 8 * 1024;

/// Dispatches on the query: start, callback or refusal.
pub async fn handle<B>(request: &Request<B>, app: &App) -> Result<Response<Body>, AppError> {
    let query = request.uri().query().unwrap_or("");
    let [code, state, error, error_description] =
        pick_params(query, ["code", "state", "error", "error_description"])
            .map_err(|err| AppError::BadRequest(format!("bad query string: {err}")))?;
    // HEAD with a code or a state would finish or spend a flow: only GET may.
    if request.method() == hyper::Method::HEAD && (code.is_some() || state.is_some()) {
        return Err(AppError::MethodNotAllowed(if app.flow == Flow::Paste { "GET, POST" } else { "GET" }));
    }
    if let Some(state) = &state {
        if state.len() > MAX_STATE {
            return Err(AppError::BadState("state is longer than 1024 characters"));
        }
    }
    if let Some(error) = error {
        if error.is_empty() {
            return Err(AppError::BadRequest("the error parameter is empty".into()));
        }
        // The flow is over either way: spend its state, if it is ours.
        let denied = AppError::Denied {
            error: printable(&error, 64),
            description: printable(&error_description.unwrap_or_default(), 256),
        };
        return Err(match state {
            Some(state) => {
                // Spending a state is charged like an exchange: minting
                // states is free, so refusals must not be.
                let client = client_addr(request);
                app.exchanges.check_rate(client).map_err(AppError::TooBusy)?;
                if app.pending.take(&state, cookies(request.headers()), now_unix()).is_ok() {
                    app.exchanges.count(client);
                }
                denied.ending_flow(clear_for_state(&state))
            }
            None => denied,
        });
    }
    match (code, state) {
        (None, None) if app.flow == Flow::Paste => Ok(paste_page(app, request)),
        (None, None) => Ok(start(app, request)),
        // Boxed, so every redirect's future is not as large as the
        // exchange's (7 KiB) and copied whole with each request.
        (Some(code), Some(state)) => {
            Box::pin(finish(app, request.headers(), client_addr(request), &code, &state)).await
        }
        (Some(_), None) => Err(AppError::BadState("the callback has a code but no state")),
        (None, Some(_)) => Err(AppError::BadRequest("the callback has a state but no code".into())),
    }
}

/// The request's cookies, as (name, value).
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    cookie_pairs(headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes))
}

/// A flow just begun: its state, where the browser goes to allow it, and
/// the `Set-Cookie` values that bind it to this browser.
struct Begun {
    state: UrlSafe32,
    authorize_url: Vec<u8>,
    set_cookies: Vec<Vec<u8>>,
}

/// Begins a flow: a fresh state and PKCE pair, sealed into a cookie for
/// this browser, and the provider's authorize URL.
fn begin(app: &App, headers: &HeaderMap) -> Begun {
    // The state, the PKCE verifier and the cookie's nonce in one draw from
    // the OS: one getrandom(2) per flow instead of three.
    let mut random = [0u8; 32 + 32 + NONCE_LEN];
    fill_random(&mut random);
    let (state, rest) = random.split_at(32);
    let (verifier, nonce) = rest.split_at(32);
    let state = UrlSafe32::encode(state.try_into().expect("32 bytes"));
    let pkce = Pkce::from_verifier(UrlSafe32::encode(verifier.try_into().expect("32 bytes")));
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("NONCE_LEN bytes");
    random.fill(0);
    let authorize_url = app.keeper.oauth.authorize_url(&state, &pkce.challenge);
    let present: Vec<&str> =
        cookies(headers).map(|(name, _)| name).filter(|name| name.starts_with(COOKIE_PREFIX)).collect();
    let (cookie, clears) = app.pending.start(state.as_bytes(), &pkce.verifier, &nonce, now_unix(), &present);
    app.keeper.metrics.flow_started();
    let set_cookies = std::iter::once(cookie).chain(clears.into_iter().map(String::into_bytes)).collect();
    Begun { state, authorize_url, set_cookies }
}

/// Adds a begun flow's cookies to a response.
fn add_cookies(response: &mut Response<Body>, set_cookies: Vec<Vec<u8>>) {
    for cookie in set_cookies {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::try_from(cookie).expect("base64url cookie is a valid header"),
        );
    }
}

/// Starts a callback flow: a redirect to the provider's authorize page.
fn start<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let begun = begin(app, request.headers());
    let mut response = response::response(StatusCode::FOUND, Body::default(), 1 + begun.set_cookies.len());
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::try_from(begun.authorize_url).expect("percent-encoded URL is a valid header"),
    );
    add_cookies(&mut response, begun.set_cookies);
    response
}

/// Starts a pasted-code flow: a page with the link to the authorize page
/// and the form the code goes into, or for a client that asks for JSON
/// `{"authorize_url", "state"}` to post back itself.
fn paste_page<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let begun = begin(app, request.headers());
    let authorize_url = String::from_utf8(begun.authorize_url).expect("the authorize URL is ASCII");
    let mut response = if accept::wants_json(request.headers()) {
        json_response(
            StatusCode::OK,
            &serde_json::json!({ "authorize_url": authorize_url, "state": begun.state.as_str() }),
        )
    } else {
        let mut page = crate::http::pages::paste_form(&authorize_url, begun.state.as_str());
        // The form's POST then carries this page's origin, which
        // check_same_origin compares; the link to Yandex gets no Referer.
        page.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        page
    };
    add_cookies(&mut response, begun.set_cookies);
    response
}

/// `POST /get_token` in `paste` mode: the form with the pasted `code` and
/// the flow's `state`. Refused before anything is read when it comes from
/// another site or is not a small form; then handled exactly as a callback.
pub async fn submit(
    request: &Request<()>,
    body: &mut Incoming,
    app: &App,
) -> Result<Response<Body>, AppError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_FORM as u64) {
        return Err(AppError::PayloadTooLarge(MAX_FORM));
    }
    // The body is read before any answer; its time is the header's. What
    // is left of a body over the cap, the connection deals with.
    let form = tokio::time::timeout(app.limits.header_read_timeout, read_capped(body, MAX_FORM))
        .await
        .map_err(|_| AppError::RequestTimeout)??;
    let parts = request;
    check_same_origin(parts.headers(), parts.uri().authority().map(hyper::http::uri::Authority::as_str))?;
    let media_type = parts
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(AppError::UnsupportedMediaType("application/x-www-form-urlencoded"));
    }
    let form =
        std::str::from_utf8(&form).map_err(|_| AppError::BadRequest("the form body is not UTF-8".into()))?;
    let [code, state] = pick_params(form, ["code", "state"])
        .map_err(|err| AppError::BadRequest(format!("bad form body: {err}")))?;
    let state = state.ok_or(AppError::BadState("the form has no state: start again at /get_token"))?;
    if state.len() > MAX_STATE {
        return Err(AppError::BadState("state is longer than 1024 characters"));
    }
    let code = code.ok_or_else(|| AppError::BadRequest("the form has no code".into()))?;
    Box::pin(finish(app, parts.headers(), client_addr(parts), &code, &state)).await
}

/// Reads a body of at most `cap` bytes, leaving the rest unread when it is
/// larger (413).
async fn read_capped(body: &mut Incoming, cap: usize) -> Result<Vec<u8>, AppError> {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| AppError::BadRequest("the form body could not be read".into()))?;
        if let Some(data) = frame.data_ref() {
            if read.len() + data.len() > cap {
                return Err(AppError::PayloadTooLarge(cap));
            }
            read.extend_from_slice(data);
        }
    }
    Ok(read)
}

/// The address the request came from, when the connection knows it.
fn client_addr<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    request.extensions().get::<ClientAddr>().map(|addr| addr.0)
}

/// Refuses a form posted from another site (CSRF defence in depth; the
/// `SameSite=Lax` flow cookie bound to the state is the main defence, and
/// is not sent cross-site either). Browsers send `Sec-Fetch-Site`, and
/// `Origin` on every POST: the paste page's `Referrer-Policy: same-origin`
/// makes that the page's real origin, so `null` (a sandboxed frame, a
/// `data:` page, or a policy that hides it) is refused with any foreign
/// origin. curl sends neither header.
fn check_same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), AppError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(AppError::CrossSite);
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| AppError::CrossSite)?;
    // HTTP/2 carries the host as :authority, which hyper puts in the URI.
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).or(authority);
    match (origin.strip_prefix("https://"), host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(AppError::CrossSite),
    }
}

/// How long an answer waits for the Direct API's verdict once the token is
/// stored; past it, the answer says the check still runs.
const DIRECT_PATIENCE: Duration = Duration::from_secs(3);

/// Finishes a flow: the code's shape, then the state, then the login
/// (exchange, account, allow-list, save, Direct verdict) as a task of its
/// own, and the answer once the token is stored. The code is checked first
/// so that a bad paste does not spend the flow; the token endpoint is
/// called only after the state.
async fn finish(
    app: &App,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
    code: &str,
    state: &str,
) -> Result<Response<Body>, AppError> {
    let code = usable_code(code).ok_or_else(|| {
        AppError::BadRequest(
            "the code is empty, too long or not printable ASCII: paste the code Yandex showed".into(),
        )
    })?;
    // The limits first: a flow refused for them stays usable for a retry.
    let slot = app.exchanges.slot().map_err(AppError::TooBusy)?;
    app.exchanges.check_rate(client).map_err(AppError::TooBusy)?;
    let taken = match app.pending.take(state, cookies(headers), now_unix()) {
        Ok(taken) => taken,
        Err(refusal) => {
            // This browser's flow cookie, a state it already sent: the
            // double click. The first login's outcome answers it.
            if refusal == ALREADY_USED {
                if let Some(login) = app.logins.find(state) {
                    return answer_login(headers, login, clear_for_state(state)).await;
                }
            }
            // A cookie of this state that cannot be used (expired, damaged)
            // is dropped too.
            let name = cookie_name(state);
            let refused = AppError::BadState(refusal);
            return Err(if cookies(headers).any(|(cookie, _)| cookie == name) {
                refused.ending_flow(clear_for_state(state))
            } else {
                refused
            });
        }
    };
    // From here on the flow is spent: every answer clears its cookie.
    app.exchanges.count(client);
    let grant = Grant::Code { code: Secret::new(code.to_owned()), verifier: taken.verifier };
    let login = app.keeper.start(grant, slot);
    app.logins.add(state, login.clone());
    answer_login(headers, login, taken.clear_cookie).await
}

/// Waits for a login's outcome (for the Direct verdict only
/// [`DIRECT_PATIENCE`]) and answers with it. If this request goes away
/// meanwhile, the login goes on without it.
async fn answer_login(
    headers: &HeaderMap,
    mut login: Login,
    clear_cookie: String,
) -> Result<Response<Body>, AppError> {
    let kept = match login.settled(DIRECT_PATIENCE).await {
        Progress::Stored(kept) => (kept, true),
        Progress::Finished(kept) => (kept, false),
        Progress::Failed(err) => return Err(AppError::from(&*err).ending_flow(clear_cookie)),
        Progress::Running => {
            return Err(AppError::Upstream(OAuthError::Unreachable(
                "the login ended without an outcome".into(),
            ))
            .ending_flow(clear_cookie));
        }
    };
    let mut response = answer(headers, &kept.0, kept.1);
    if let Ok(clear) = HeaderValue::try_from(clear_cookie) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}

/// The answer to a completed flow, without the refresh token (it stays on
/// disk, where `refresh` uses it): a page for a browser (`Accept:
/// text/html`), the token JSON for everyone else (curl's `*/*` included).
/// `checking` says the Direct API has not answered yet.
fn answer(headers: &HeaderMap, kept: &Kept, checking: bool) -> Response<Body> {
    const CHECKING: &str = "the check is still running; yandex-token status will tell";
    const SUPERSEDED: &str =
        "a token of this account issued later is already stored; this one was not written";
    let mut doc = kept.doc.without_refresh_token();
    let warning = if kept.saved.superseded { Some(SUPERSEDED) } else { kept.warning.as_deref() };
    if let Some(warning) = warning {
        doc["warning"] = warning.into();
    }
    if checking {
        doc["direct"] = serde_json::json!({ "status": "checking", "note": CHECKING });
    }
    if !accept::wants_html(headers) {
        return json_response(StatusCode::OK, &doc);
    }
    let direct = if checking {
        Some(CHECKING.to_owned())
    } else {
        kept.doc.direct_check().map(|check| check.advice())
    };
    crate::http::pages::token_stored(
        kept.doc.login.as_deref(),
        kept.doc.expiry(),
        direct.as_deref(),
        &kept.doc.access_token,
    )
}
