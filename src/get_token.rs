//! `GET /get_token`, the whole flow: without parameters it starts a flow
//! (302 to the provider), with `code` and `state` it finishes one (check the
//! state, exchange the code, store the token, answer with it), with `error`
//! it reports the user's refusal. The state is always checked before the
//! token endpoint is called.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::app::App;
use crate::encoding::{UrlSafe32, cookie_pairs, pick_params};
use crate::error::AppError;
use crate::oauth::Pkce;
use crate::pending::COOKIE_PREFIX;
use crate::routes::{self, Body, json_response};
use crate::secret::Secret;
use crate::token_store::{TokenStore, now_unix};

/// Yandex refuses a `state` longer than this.
const MAX_STATE: usize = 1024;
/// Far above any real authorization code; bounds what we forward.
const MAX_CODE: usize = 4096;

/// Dispatches on the query: start, callback or refusal.
pub async fn handle(request: &Request<Incoming>, app: &App) -> Result<Response<Body>, AppError> {
    let query = request.uri().query().unwrap_or("");
    let [code, state, error, error_description] =
        pick_params(query, ["code", "state", "error", "error_description"])
            .map_err(|err| AppError::BadRequest(format!("bad query string: {err}")))?;
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
        if let Some(state) = &state {
            app.pending.take(state, cookies(request), now_unix()).ok();
        }
        return Err(AppError::Denied {
            error: error.chars().take(64).collect(),
            description: error_description.unwrap_or_default().chars().take(256).collect(),
        });
    }
    match (code, state) {
        (None, None) => Ok(start(app, request)),
        // Boxed, so every redirect's future is not as large as the
        // exchange's (7 KiB) and copied whole with each request.
        (Some(code), Some(state)) => Box::pin(finish(app, request, &code, &state)).await,
        (Some(_), None) => Err(AppError::BadState("the callback has a code but no state")),
        (None, Some(_)) => Err(AppError::BadRequest("the callback has a state but no code".into())),
    }
}

/// The request's cookies, as (name, value).
fn cookies(request: &Request<Incoming>) -> impl Iterator<Item = (&str, &str)> {
    cookie_pairs(request.headers().get_all(header::COOKIE).iter().map(HeaderValue::as_bytes))
}

/// Starts a flow: a fresh state and PKCE pair, sealed into a cookie for
/// this browser, and a redirect to the provider's authorize page.
fn start(app: &App, request: &Request<Incoming>) -> Response<Body> {
    let state = UrlSafe32::random();
    let pkce = Pkce::generate();
    let location = app.oauth.authorize_url(&state, &pkce.challenge);
    let present: Vec<&str> =
        cookies(request).map(|(name, _)| name).filter(|name| name.starts_with(COOKIE_PREFIX)).collect();
    let (cookie, clears) = app.pending.start(state.as_bytes(), &pkce.verifier, now_unix(), &present);
    app.metrics.flow_started();
    let mut response = routes::response(StatusCode::FOUND, Body::default(), 2 + clears.len());
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::try_from(location).expect("percent-encoded URL is a valid header"),
    );
    for cookie in std::iter::once(cookie).chain(clears.into_iter().map(String::into_bytes)) {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::try_from(cookie).expect("base64url cookie is a valid header"),
        );
    }
    response
}

/// Finishes a flow: state, then exchange, then store, then answer.
async fn finish(
    app: &App,
    request: &Request<Incoming>,
    code: &str,
    state: &str,
) -> Result<Response<Body>, AppError> {
    let taken = app.pending.take(state, cookies(request), now_unix()).map_err(AppError::BadState)?;
    let verifier = taken.verifier;
    if code.is_empty() || code.len() > MAX_CODE {
        return Err(AppError::BadRequest("the code is empty or too long".into()));
    }
    let started = Instant::now();
    let token = app.oauth.exchange_code(&Secret::new(code.to_owned()), &verifier).await;
    app.metrics.upstream_latency(started.elapsed());
    let token = token.map_err(AppError::Upstream)?;
    let started = Instant::now();
    let account = app.oauth.lookup_account(token.access_token()).await;
    app.metrics.upstream_latency(started.elapsed());
    if !app.allow_logins.is_empty() {
        match &account {
            Ok(account) if !app.allow_logins.contains(&account.login) => {
                if let Err(err) = app.oauth.revoke(token.access_token()).await {
                    crate::warn!("a token of an account not on --allow-login could not be revoked: {err}");
                }
                return Err(AppError::LoginNotAllowed(account.login.clone()));
            }
            Ok(_) => {}
            // Without a name the allow-list cannot be checked: keep nothing,
            // but hand the token over rather than throw it away.
            Err(err) => {
                return Err(AppError::StoreFailed {
                    reason: format!("whose token this is could not be checked against --allow-login: {err}"),
                    token: Secret::new(TokenStore::document(token)),
                });
            }
        }
    }
    let mut doc = TokenStore::document(token);
    let login = match &account {
        Ok(account) => {
            doc["login"] = account.login.clone().into();
            if let Some(id) = &account.id {
                doc["id"] = id.clone().into();
            }
            Some(account.login.clone())
        }
        Err(_) => {
            doc["login"] = serde_json::Value::Null;
            None
        }
    };
    let store = app.store.clone();
    let saved = {
        let doc = doc.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(login) = &login {
                store.save_account(login, &doc)?;
            }
            store.save(&doc)
        })
        .await
    };
    match saved {
        Ok(Ok(())) => {
            app.metrics.token_stored();
            if let Err(err) = &account {
                crate::warn!(
                    "the account of a new token could not be looked up ({err}); stored as token.json only"
                );
                doc["warning"] =
                    "the Yandex account could not be looked up: the token is stored as token.json only"
                        .into();
            }
            let mut response = json_response(StatusCode::OK, &doc);
            if let Ok(clear) = HeaderValue::try_from(taken.clear_cookie) {
                response.headers_mut().append(header::SET_COOKIE, clear);
            }
            Ok(response)
        }
        Ok(Err(err)) => Err(AppError::StoreFailed {
            reason: format!("writing into {} failed: {err}", app.store.dir().display()),
            token: Secret::new(doc),
        }),
        Err(_) => {
            Err(AppError::StoreFailed { reason: "the storing task failed".into(), token: Secret::new(doc) })
        }
    }
}
