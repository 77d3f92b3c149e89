//! The HTML the server shows people: the pasted-code page of `--flow
//! paste`, the stored token, and what went wrong. Plain HTML that works without JavaScript and on a phone, with
//! its one stylesheet allowed by hash in a strict Content-Security-Policy,
//! and every inserted value escaped.

use std::sync::OnceLock;

use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::http::response::{self, Body};
use crate::util::encoding::{base64_standard, html_escape};

/// The stylesheet every page carries inline, allowed by its hash.
const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;max-width:36em;margin:0 auto;\
padding:1em}h1{font-size:1.4em}li{margin-bottom:1em}input[type=text]{width:100%;box-sizing:border-box;\
font:1.1em monospace;padding:.5em}button,a.button{font-size:1.1em;padding:.5em 1em;margin-top:.5em}\
.note{background:#f4f4f4;padding:.5em}";

/// `Content-Security-Policy` for the pages: nothing loads, no script runs,
/// only the stylesheet above applies and forms post only back here.
fn policy() -> &'static HeaderValue {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    POLICY.get_or_init(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
        let value = format!(
            "default-src 'none'; style-src 'sha256-{}'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
            base64_standard(digest.as_ref())
        );
        HeaderValue::try_from(value).expect("base64 is a valid header value")
    })
}

/// A `200 text/html` page with the pages' policy.
fn page(title: &str, body: &str) -> Response<Body> {
    page_with_status(StatusCode::OK, title, body)
}

/// A `text/html` page with the pages' policy.
fn page_with_status(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        html_escape(title)
    );
    let mut response = response::response(status, Body::new(Bytes::from(html)), 2);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy().clone());
    response
}

/// The pasted-code page: step 1 opens Yandex in a new tab (the user logs
/// in and clicks Allow, and Yandex shows a code); step 2 posts the code
/// with the flow's state back to `/get_token`.
pub fn paste_form(authorize_url: &str, state: &str) -> Response<Body> {
    let body = format!(
        "<h1>Get a Yandex OAuth token</h1>\n\
         <p class=\"note\">The token will belong to the Yandex account that is logged in at Yandex in this \
         browser. To use another one, log out at Yandex first.</p>\n<ol>\n\
         <li><a id=\"authorize\" href=\"{url}\" target=\"_blank\" rel=\"noopener\">Open Yandex and click \
         Allow</a>. Yandex then shows a code; copy it.</li>\n\
         <li><form method=\"post\" action=\"/get_token\">\
         <label for=\"code\">Paste the code here:</label>\n\
         <input id=\"code\" name=\"code\" type=\"text\" required autocomplete=\"off\" autocapitalize=\"off\" \
         spellcheck=\"false\" maxlength=\"4096\">\n\
         <input type=\"hidden\" name=\"state\" value=\"{state}\">\n\
         <button type=\"submit\">Get the token</button></form></li>\n</ol>\n\
         <p>This page is good for 10 minutes; reload it to start again.</p>\n",
        url = html_escape(authorize_url),
        state = html_escape(state),
    );
    page("Get a Yandex OAuth token", &body)
}

/// What a browser sees once the token is stored: whose it is, when it
/// expires, the access token ready to select and copy, and the line that
/// prints it for scripts. The refresh token stays on the server.
pub fn token_stored(
    login: Option<&str>,
    expires: Option<(String, u64)>,
    direct: Option<&str>,
    access_token: &str,
) -> Response<Body> {
    let whose = match login {
        Some(login) => format!("<p>The token of the Yandex account <b id=\"login\">{}</b> is stored on the server.</p>\n", html_escape(login)),
        None => "<p>The token is stored on the server as <code>token.json</code> (Yandex did not say whose it is).</p>\n".to_owned(),
    };
    let expiry = match expires {
        Some((date, days)) => format!("<p>It expires on <b id=\"expires\">{date}</b>, in {days} days.</p>\n"),
        None => String::new(),
    };
    let direct = direct
        .map(|advice| format!("<p class=\"note\" id=\"direct\">Direct API: {}.</p>\n", html_escape(advice)))
        .unwrap_or_default();
    let show = match login {
        Some(login) => format!("yandex-token show --login {}", html_escape(login)),
        None => "yandex-token show".to_owned(),
    };
    let body = format!(
        "<h1>Token stored</h1>\n{whose}{expiry}{direct}\
         <p><label for=\"token\">Access token (select it and copy):</label>\n\
         <input id=\"token\" type=\"text\" readonly value=\"{}\" autocomplete=\"off\" spellcheck=\"false\"></p>\n\
         <p>Scripts on the server get it with:</p>\n<p class=\"note\"><code id=\"show\">{show}</code></p>\n",
        html_escape(access_token),
    );
    page("Token stored", &body)
}

/// What a browser sees when something went wrong: what happened, what to
/// do, and a link that starts again. A token that was issued but not
/// stored is shown whole, to copy: it is the only copy.
pub fn error(status: StatusCode, what: &str, todo: &str, unstored_token: Option<&str>) -> Response<Body> {
    let token = unstored_token
        .map(|token| {
            format!(
                "<p><label for=\"token\">The token document (select it and copy it now):</label></p>\n\
                 <p class=\"note\"><code id=\"token\">{}</code></p>\n",
                html_escape(token)
            )
        })
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<h1>{}</h1>\n<p id=\"what\">{}</p>\n<p id=\"todo\">{}</p>\n{token}\
         <p><a class=\"button\" id=\"again\" href=\"/get_token\">Start again</a></p>\n",
        html_escape(title),
        html_escape(what),
        html_escape(todo),
    );
    page_with_status(status, title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_stylesheet() {
        let policy = policy().to_str().unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
        assert!(policy.contains(&format!("'sha256-{}'", base64_standard(digest.as_ref()))), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("form-action 'self'"), "{policy}");
    }

    #[tokio::test]
    async fn inserted_values_are_escaped() {
        let response = paste_form("https://x/authorize?a=1&b=\"<", "s\"<");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("href=\"https://x/authorize?a=1&amp;b=&quot;&lt;\""), "{body}");
        assert!(body.contains("value=\"s&quot;&lt;\""), "{body}");
    }
}
