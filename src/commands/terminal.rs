//! The two ways to get a token at a terminal, with no listener, domain or
//! certificate: `login` (the pasted-code flow: print the authorize URL,
//! read the code Yandex shows from stdin) and `device` (the device flow:
//! show a user code, poll until the user allows it). Both end in the same
//! login sequence as the server's callback ([`crate::keeper::login`]).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::keeper::Keeper;
use crate::keeper::login::{Grant, Kept, LoginError, Progress};
use crate::oauth::{DeviceCode, OAuthClient, OAuthError, Pkce, Token, usable_code};
use crate::util::encoding::{UrlSafe32, percent_encode, pick_params};
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

/// What both flows need: the keeper (clients, store, allow-list) and a
/// runtime.
struct Parts {
    keeper: Keeper,
    runtime: tokio::runtime::Runtime,
}

fn parts(config: &Config) -> Result<Parts, Stop> {
    let keeper = Keeper::from_config(config).map_err(|err| Stop::config(err.to_string()))?;
    let runtime = super::runtime().map_err(|failure| Stop::failed(failure.error.to_string()))?;
    Ok(Parts { keeper, runtime })
}

fn run_login(config: &Config) -> Result<String, Stop> {
    let parts = parts(config)?;
    let state = UrlSafe32::random();
    let pkce = Pkce::generate();
    let mut url = String::from_utf8(parts.keeper.oauth.authorize_url(&state, &pkce.challenge))
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
    let grant = Grant::Code { code, verifier: Secret::new(pkce.verifier.expose().as_str().to_owned()) };
    store(&parts, grant)
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
            .keeper
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
            outcome = poll(&parts.keeper.oauth, &grant, tty) => outcome,
            _ = interrupt.recv() => {
                if tty {
                    eprintln!();
                }
                Err(Stop { code: EXIT_INTERRUPTED, message: "interrupted: nothing was stored".into() })
            }
        }
    })?;
    store(&parts, Grant::Token(token))
}

/// Polls the token endpoint at the grant's interval until the user allows
/// or denies, or the codes expire. `slow_down` adds 5 seconds; a poll that
/// times out or cannot reach Yandex doubles the interval, up to a minute
/// (RFC 8628 §3.5). Refused app credentials or a success that is not a
/// token end the wait at once: waiting cannot help.
async fn poll(oauth: &OAuthClient, grant: &DeviceCode, tty: bool) -> Result<Token, Stop> {
    const LONGEST_INTERVAL: Duration = Duration::from_secs(60);
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
            Err(err @ (OAuthError::CredentialsRefused { .. } | OAuthError::NotAToken(_))) => {
                return Err(Stop::failed(format!("{err}; nothing was stored")));
            }
            Err(err) => {
                interval = (interval * 2).min(LONGEST_INTERVAL);
                crate::warn!("polling failed ({err}); trying again in {} s", interval.as_secs());
            }
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

/// Runs the login sequence to its end (the exchange, the account, the
/// allow-list, the save, the Direct verdict) and describes what was stored
/// (never the token). A token that could not be stored is printed on
/// stdout: it is the only copy.
fn store(parts: &Parts, grant: Grant) -> Result<String, Stop> {
    let outcome = parts.runtime.block_on(async {
        let mut login = parts.keeper.start(grant, ());
        login.settled(std::time::Duration::MAX).await
    });
    match outcome {
        Progress::Finished(kept) | Progress::Stored(kept) => Ok(summary(&kept)),
        Progress::Running => Err(Stop::failed("the login ended without an outcome")),
        Progress::Failed(err) => Err(Stop::failed(match &*err {
            LoginError::Exchange(OAuthError::Rejected { error, description }) => format!(
                "Yandex refused the code ({error}: {}); run yandex-token login again and paste the new code \
                 within 10 minutes",
                description.as_deref().unwrap_or("no description")
            ),
            LoginError::Exchange(err) => err.to_string(),
            LoginError::NotStored { reason, token } => {
                println!("{}", token.expose().to_json());
                format!("the token was issued but not stored ({reason}); it is printed above: copy it now")
            }
            LoginError::LoginNotAllowed { login, revoked } => LoginError::refusal_text(login, revoked),
        })),
    }
}

/// `stored the token of LOGIN in FILE; it expires on DATE (N days)`.
fn summary(kept: &Kept) -> String {
    let doc = &kept.doc;
    if kept.saved.superseded {
        return format!(
            "not stored: {} already holds a token of {} issued later",
            kept.saved.file.display(),
            doc.login_or_unknown()
        );
    }
    let expiry =
        doc.expiry().map(|(date, days)| format!("; it expires on {date} ({days} days)")).unwrap_or_default();
    let direct = doc.direct_check().map(|check| format!("\n{}", check.advice())).unwrap_or_default();
    format!(
        "stored the token of {} in {}{expiry}{direct}",
        doc.login.as_deref().unwrap_or("an account Yandex ID did not name"),
        kept.saved.file.display()
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
