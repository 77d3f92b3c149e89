//! The two ways to get a token at a terminal, with no listener, domain or
//! certificate: `login` (the pasted-code flow: print the authorize URL,
//! read the code Yandex shows from stdin) and `device` (the device flow:
//! show a user code, poll until the user allows it). Both end in the same
//! [`keep`] as the server's callback.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::http::app;
use crate::oauth::{DeviceCode, OAuthClient, OAuthError, Pkce, Token, usable_code};
use crate::store::keep::KeepError;
use crate::store::keep::{Keeper, keep};
use crate::store::{TokenStore, stored_expiry};
use crate::util::encoding::{UrlSafe32, percent_encode, pick_params};
use crate::util::metrics::Metrics;
use crate::util::secret::Secret;

/// Exit status when the user pressed Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;
/// The longest line read from stdin: a pasted code, or a whole URL.
const MAX_LINE: u64 = 8 * 1024;

/// Why a terminal flow ended without a token, and its exit status.
struct Stop {
    code: u8,
    message: String,
}

impl Stop {
    fn config(message: impl Into<String>) -> Stop {
        Stop { code: crate::commands::EXIT_CONFIG, message: message.into() }
    }

    fn failed(message: impl Into<String>) -> Stop {
        Stop { code: 1, message: message.into() }
    }
}

/// `login`: the pasted-code flow in a terminal.
pub fn login(config: &Config) -> ExitCode {
    finish(run_login(config))
}

/// `device`: the device flow.
pub fn device(config: &Config) -> ExitCode {
    finish(run_device(config))
}

/// Prints the outcome: what was stored on stdout, or why not on stderr.
fn finish(outcome: Result<String, Stop>) -> ExitCode {
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(stop) => {
            if !stop.message.is_empty() {
                crate::error!("{}", stop.message);
            }
            ExitCode::from(stop.code)
        }
    }
}

/// What both flows need: the OAuth client (client id, secret, trust
/// anchors), the store and a runtime.
struct Parts {
    oauth: OAuthClient,
    direct: Option<crate::oauth::direct::DirectClient>,
    store: TokenStore,
    runtime: tokio::runtime::Runtime,
}

fn parts(config: &Config) -> Result<Parts, Stop> {
    let secret_file = config.client_secret_file.as_deref().ok_or_else(|| {
        Stop::config("no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE)")
    })?;
    let secret = app::read_secret(secret_file).map_err(|err| Stop::config(err.to_string()))?;
    let oauth = app::oauth_client(config, secret).map_err(|err| Stop::config(err.to_string()))?;
    let direct = app::direct_client(config, oauth.tls().clone());
    let store = TokenStore::new(config.token_dir.clone().unwrap_or_else(|| "tokens".into()));
    let runtime = super::runtime().map_err(|failure| Stop::failed(failure.error.to_string()))?;
    Ok(Parts { oauth, direct, store, runtime })
}

fn run_login(config: &Config) -> Result<String, Stop> {
    let parts = parts(config)?;
    let state = UrlSafe32::random();
    let pkce = Pkce::generate();
    let mut url = String::from_utf8(parts.oauth.authorize_url(&state, &pkce.challenge))
        .expect("the authorize URL is ASCII");
    if let Some(hint) = &config.login_hint {
        url.push_str("&login_hint=");
        percent_encode(hint, &mut url);
    }
    if config.force_confirm {
        url.push_str("&force_confirm=yes");
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{url}").and_then(|()| stdout.flush()).map_err(|err| Stop::failed(err.to_string()))?;
    drop(stdout);
    let interactive = std::io::stdin().is_terminal();
    if std::io::stderr().is_terminal() {
        eprintln!(
            "Open the URL above in a browser, log in to Yandex and click Allow.\n\
             Yandex then shows a code: paste it here and press Enter."
        );
    }
    let line = read_line(interactive)?;
    let code = code_from(&line)?;
    let token = parts.runtime.block_on(parts.oauth.exchange_code(&code, &Secret::new(pkce.verifier.expose().as_str().to_owned()))).map_err(|err| {
        Stop::failed(match &err {
            OAuthError::Rejected { error, description } => format!(
                "Yandex refused the code ({error}: {}); run yandex-token login again and paste the new code \
                 within 10 minutes",
                description.as_deref().unwrap_or("no description")
            ),
            _ => err.to_string(),
        })
    })?;
    store(config, &parts, token)
}

/// Reads one line of stdin (never the command line, where `ps` shows it).
fn read_line(interactive: bool) -> Result<String, Stop> {
    let mut line = String::new();
    let read = std::io::stdin().lock().take(MAX_LINE).read_line(&mut line);
    match read {
        Ok(0) => Err(Stop::failed(if interactive {
            "no code entered".to_owned()
        } else {
            "no code on stdin: paste the code Yandex showed, followed by Enter".to_owned()
        })),
        Ok(_) => Ok(line),
        Err(err) => Err(Stop::failed(format!("cannot read the code from stdin: {err}"))),
    }
}

/// The code in a pasted line: the line itself, trimmed, or the `code`
/// parameter of a pasted URL. Only its length and printable ASCII are
/// checked (Yandex's codes were 7 digits, now 16 characters).
fn code_from(line: &str) -> Result<Secret<String>, Stop> {
    let line = line.trim();
    let code = match line.split_once('?') {
        Some((base, query)) if base.starts_with("https://") || base.starts_with("http://") => {
            let query = query.split('#').next().unwrap_or("");
            match pick_params(query, ["code"]) {
                Ok([Some(code)]) => code,
                _ => return Err(Stop::failed("the pasted URL has no code parameter: paste the code itself")),
            }
        }
        _ => line.to_owned(),
    };
    let code = usable_code(&code).ok_or_else(|| {
        Stop::failed(
            "that is not a code: paste the code Yandex showed (letters and digits, no spaces inside)",
        )
    })?;
    Ok(Secret::new(code.to_owned()))
}

fn run_device(config: &Config) -> Result<String, Stop> {
    let parts = parts(config)?;
    let tty = std::io::stderr().is_terminal();
    let token = parts.runtime.block_on(async {
        // Listening before the code is shown: a Ctrl-C from then on ends
        // the flow cleanly, whenever it comes.
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|err| Stop::failed(format!("cannot listen for Ctrl-C: {err}")))?;
        let grant = parts
            .oauth
            .request_device_code(config.device_id.as_deref(), config.device_name.as_deref())
            .await
            .map_err(|err| Stop::failed(format!("could not start the device flow: {err}")))?;
        println!("open: {}\ncode: {}", grant.verification_url, grant.user_code);
        std::io::stdout().flush().ok();
        if tty {
            eprintln!(
                "Open that page on any device, log in to Yandex, enter the code and click Allow. \
                 Waiting (Ctrl-C to give up)..."
            );
        }
        tokio::select! {
            outcome = poll(&parts.oauth, &grant, tty) => outcome,
            _ = interrupt.recv() => {
                if tty {
                    eprintln!();
                }
                Err(Stop { code: EXIT_INTERRUPTED, message: "interrupted: nothing was stored".into() })
            }
        }
    })?;
    store(config, &parts, token)
}

/// Polls the token endpoint at the grant's interval until the user allows
/// or denies, or the codes expire. `slow_down` adds 5 seconds (RFC 8628
/// §3.5); a poll that fails on the way is retried until the codes expire.
async fn poll(oauth: &OAuthClient, grant: &DeviceCode, tty: bool) -> Result<Token, Stop> {
    let expired = || Stop::failed("the code expired before it was allowed: run yandex-token device again");
    let deadline = tokio::time::Instant::now() + grant.expires_in;
    let mut interval = grant.interval;
    loop {
        let next = tokio::time::Instant::now() + interval;
        if next >= deadline {
            return Err(expired());
        }
        wait_until(next, deadline, tty).await;
        match oauth.poll_device(&grant.device_code).await {
            Ok(token) => {
                if tty {
                    eprintln!("\rallowed.{:40}", "");
                }
                return Ok(token);
            }
            Err(OAuthError::Rejected { error, description }) => match error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += Duration::from_secs(5),
                "access_denied" => {
                    return Err(Stop::failed("access was denied at Yandex: nothing was stored"));
                }
                "expired_token" | "invalid_grant" => return Err(expired()),
                _ => {
                    return Err(Stop::failed(format!(
                        "Yandex refused: {error} ({})",
                        description.as_deref().unwrap_or("no description")
                    )));
                }
            },
            Err(err) => crate::warn!("polling failed, trying again: {err}"),
        }
    }
}

/// Sleeps until `next`; on a terminal, a countdown to `deadline` ticks
/// once a second on one line, otherwise a plain line per poll.
async fn wait_until(next: tokio::time::Instant, deadline: tokio::time::Instant, tty: bool) {
    if !tty {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs();
        eprintln!("waiting for Allow ({left} s left)");
        tokio::time::sleep_until(next).await;
        return;
    }
    loop {
        let now = tokio::time::Instant::now();
        if now >= next {
            return;
        }
        let left = deadline.saturating_duration_since(now).as_secs();
        eprint!("\rwaiting for Allow: {}:{:02} left ", left / 60, left % 60);
        std::io::stderr().flush().ok();
        tokio::time::sleep_until(next.min(now + Duration::from_secs(1))).await;
    }
}

/// Looks the account up, applies `--allow-login`, stores, and describes
/// what was stored (never the token). A token that could not be stored is
/// printed on stdout: it is the only copy.
fn store(config: &Config, parts: &Parts, token: Token) -> Result<String, Stop> {
    let metrics = Metrics::default();
    let keeper = Keeper {
        oauth: &parts.oauth,
        store: &parts.store,
        allow_logins: &config.allow_logins,
        metrics: &metrics,
        direct: parts.direct.as_ref(),
    };
    match parts.runtime.block_on(keep(keeper, token)) {
        Ok(doc) => Ok(summary(&parts.store, &doc)),
        Err(KeepError::NotStored { reason, token }) => {
            println!("{}", token.expose());
            Err(Stop::failed(format!(
                "the token was issued but not stored ({reason}); it is printed above: copy it now"
            )))
        }
        Err(KeepError::LoginNotAllowed(login)) => Err(Stop::failed(format!(
            "tokens of the Yandex account '{login}' are not kept here (--allow-login); the token was revoked"
        ))),
    }
}

/// `stored the token of LOGIN in FILE; it expires on DATE (N days)`.
fn summary(store: &TokenStore, doc: &Value) -> String {
    let login = doc.get("login").and_then(Value::as_str);
    let file = match login {
        Some(login) => store.account_path(login),
        None => store.path(),
    };
    let expiry = stored_expiry(doc)
        .map(|(date, days)| format!("; it expires on {date} ({days} days)"))
        .unwrap_or_default();
    let direct = doc
        .get("direct")
        .and_then(crate::oauth::direct::DirectCheck::from_json)
        .map(|check| format!("\n{}", check.advice()))
        .unwrap_or_default();
    format!(
        "stored the token of {} in {}{expiry}{direct}",
        login.unwrap_or("an account Yandex ID did not name"),
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::code_from;

    #[test]
    fn codes_are_trimmed_and_taken_from_pasted_urls() {
        let code = |line: &str| code_from(line).map(|c| c.expose().clone()).map_err(|stop| stop.message);
        assert_eq!(code("  abcdEFGH12345678 \n").unwrap(), "abcdEFGH12345678");
        assert_eq!(code("1234567\r\n").unwrap(), "1234567");
        assert_eq!(
            code("https://oauth.yandex.ru/verification_code?code=abcd1234efgh5678&state=x#frag").unwrap(),
            "abcd1234efgh5678"
        );
        assert!(code("").is_err());
        assert!(code("two words").is_err());
        assert!(code("https://oauth.yandex.ru/verification_code?state=x").is_err());
        assert!(code(&"x".repeat(5000)).is_err());
        assert!(code("код").is_err());
    }
}
