//! The command line and the environment into a [`Config`]: each value
//! checked where it can be without touching files, each error naming the
//! flag or variable and the bad value.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::options::{OPTIONS, REPEATABLE};
use super::{
    AcmeChallenge, AcmeSettings, Activation, Command, Config, ConfigError, DIRECT_PRODUCTION, DIRECT_SANDBOX,
    Flow, Invocation, LETS_ENCRYPT, Limits, METRICS_MOVED,
};
use crate::util::endpoint::{Endpoint, host_without_port};

/// Parses `args` (without the program name) and the environment seen through
/// `env` into an [`Invocation`]. Flags win over environment variables; an
/// empty environment variable counts as unset.
pub fn parse<I>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut command = None;
    let mut flags: Vec<Option<String>> = vec![None; OPTIONS.len()];
    let mut program = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `exec -- COMMAND [ARGS…]`: everything after `--` is the program's,
        // as given (not UTF-8 checked, never read as an option).
        if arg == "--" {
            if command != Some(Command::Exec) {
                return Err(ConfigError("'--' ends the options of `exec` only".to_owned()));
            }
            program.extend(args.by_ref());
            if program.is_empty() {
                return Err(ConfigError("exec needs a program after '--'".to_owned()));
            }
            break;
        }
        let arg =
            arg.into_string().map_err(|raw| ConfigError(format!("argument {raw:?} is not valid UTF-8")))?;
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            _ => {}
        }
        if arg == "--metrics" || arg.starts_with("--metrics=") {
            return Err(ConfigError(METRICS_MOVED.to_owned()));
        }
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (flag, None),
            };
            let index = OPTIONS
                .iter()
                .position(|spec| spec.flag == name)
                .ok_or_else(|| ConfigError(format!("unknown option '--{name}'")))?;
            let switch = OPTIONS[index].value.is_empty();
            let value = match inline {
                Some(value) => value,
                None if switch => "1".to_owned(),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| ConfigError(format!("option '--{name}' needs a value")))?,
            };
            match flags[index].as_mut() {
                // Repeatable options collect their values, comma-separated
                // like their environment variable.
                Some(values) if REPEATABLE.contains(&name) => {
                    values.push(',');
                    values.push_str(&value);
                }
                Some(_) => return Err(ConfigError(format!("option '--{name}' is given more than once"))),
                None => flags[index] = Some(value),
            }
        } else if arg.starts_with('-') && arg != "-" {
            return Err(ConfigError(format!("unknown option '{arg}'")));
        } else if command.is_none() {
            command = Some(
                Command::from_name(&arg).ok_or_else(|| ConfigError(format!("unknown command '{arg}'")))?,
            );
        } else {
            return Err(ConfigError(format!("unexpected argument '{arg}'")));
        }
    }
    let command = command.unwrap_or(Command::Serve);
    if command == Command::Exec && program.is_empty() {
        return Err(ConfigError("usage: yandex-token exec [--login L] -- COMMAND [ARGS…]".to_owned()));
    }
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let raw = |flag: &str| -> Option<(String, String)> {
        let index = OPTIONS.iter().position(|spec| spec.flag == flag).expect("flag is in OPTIONS");
        let spec = &OPTIONS[index];
        match &flags[index] {
            Some(value) => Some((format!("--{}", spec.flag), value.clone())),
            None => env(spec.env).map(|value| (spec.env.to_owned(), value)),
        }
    };
    let mut config = build(command, raw, env)?;
    config.program = program;
    Ok(Invocation::Run(Box::new(config)))
}

/// Turns raw strings (each with the flag or variable it came from) into a
/// [`Config`], checking every value that can be checked without touching
/// files: ripgrep's way, raw values first (`raw`, `env`), then one function
/// per group that derives and validates its settings.
fn build(
    command: Command,
    raw: impl Fn(&str) -> Option<(String, String)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    if env("YANDEX_TOKEN_METRICS").is_some() {
        return Err(ConfigError(METRICS_MOVED.replace("--metrics", "YANDEX_TOKEN_METRICS")));
    }
    let listeners = listeners(command, &raw)?;
    let oauth = oauth(command, &raw, &env)?;
    let access = access(&raw)?;
    let selection = selection(&raw)?;
    let path = |flag: &str, default: &str| {
        raw(flag).map_or_else(|| PathBuf::from(default), |(_, value)| PathBuf::from(value))
    };
    Ok(Config {
        command,
        listen: listeners.listen,
        redirect_listen: listeners.redirect_listen,
        metrics_listen: listeners.metrics_listen,
        public_host: listeners.public_host,
        cert: path("cert", "certs/fullchain.pem"),
        key: path("key", "certs/privkey.pem"),
        ca_file: raw("ca-file").map(|(_, value)| PathBuf::from(value)),
        acme: parse_acme(&raw)?,
        client_id: oauth.client_id,
        client_secret_file: oauth.client_secret_file,
        oauth_url: oauth.oauth_url,
        token_endpoint: oauth.token_endpoint,
        flow: oauth.flow,
        redirect_uri: oauth.redirect_uri,
        login_url: oauth.login_url,
        login_hint: oauth.login_hint,
        force_confirm: oauth.force_confirm,
        device_id: oauth.device_id,
        device_name: oauth.device_name,
        token_dir: token_dir(command, &raw, &env),
        limits: parse_limits(&raw)?,
        allow_logins: access.allow_logins,
        allow_any_login: access.allow_any_login,
        direct_url: direct(&raw)?,
        login: selection.login,
        all: selection.all,
        if_expires_within: selection.if_expires_within,
        json: selection.json,
        env: selection.env,
        activation: Activation::from_env(&env).map_err(ConfigError)?,
        notify_socket: env("NOTIFY_SOCKET"),
        journal: env("JOURNAL_STREAM").is_some(),
        program: Vec::new(),
    })
}

/// Where the server listens and whom it redirects to.
struct Listeners {
    listen: SocketAddr,
    redirect_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    public_host: Option<String>,
}

fn listeners(
    command: Command,
    raw: &impl Fn(&str) -> Option<(String, String)>,
) -> Result<Listeners, ConfigError> {
    let default_listen = match command {
        Command::Demo => "127.0.0.1:8443",
        _ => "[::]:443",
    };
    let listen = match raw("listen") {
        Some((source, value)) => parse_addr(&source, &value)?,
        None => default_listen.parse().expect("default address parses"),
    };
    let address = |flag: &str| raw(flag).map(|(source, value)| parse_addr(&source, &value)).transpose();
    let public_host = raw("public-host")
        .map(|(source, value)| match host_without_port(&value) {
            Some(host) if host == value => Ok(value),
            _ => Err(ConfigError(format!("{source}: {value:?} is not a host name"))),
        })
        .transpose()?;
    Ok(Listeners {
        listen,
        redirect_listen: address("redirect-listen")?,
        metrics_listen: address("metrics-listen")?,
        public_host,
    })
}

/// The app at Yandex and how a login goes.
struct OAuth {
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    oauth_url: String,
    token_endpoint: Endpoint,
    flow: Flow,
    redirect_uri: Option<String>,
    login_url: Endpoint,
    login_hint: Option<String>,
    force_confirm: bool,
    device_id: Option<String>,
    device_name: Option<String>,
}

fn oauth(
    command: Command,
    raw: &impl Fn(&str) -> Option<(String, String)>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<OAuth, ConfigError> {
    let client_id = raw("client-id")
        .map(|(source, value)| {
            if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                Err(ConfigError(format!(
                    "{source}: client id {value:?} contains spaces or control characters"
                )))
            } else {
                Ok(value)
            }
        })
        .transpose()?;
    let client_secret_file = raw("client-secret-file")
        .map(|(_, value)| PathBuf::from(value))
        .or_else(|| env("CREDENTIALS_DIRECTORY").map(|dir| PathBuf::from(dir).join("client_secret")));
    let (oauth_url, token_endpoint) = match raw("oauth-url") {
        Some((source, value)) => parse_oauth_url(&source, &value)?,
        None => parse_oauth_url("--oauth-url", "https://oauth.yandex.ru/")?,
    };
    let flow = match raw("flow") {
        None => Flow::Callback,
        Some((_, value)) if value == "callback" => Flow::Callback,
        Some((_, value)) if value == "paste" => Flow::Paste,
        Some((source, value)) => {
            return Err(ConfigError(format!("{source}: {value:?} is not callback or paste")));
        }
    };
    let redirect_uri = raw("redirect-uri")
        .map(|(source, value)| {
            if (value.starts_with("https://") || value.starts_with("http://"))
                && value.parse::<hyper::Uri>().is_ok()
            {
                Ok(value)
            } else {
                Err(ConfigError(format!("{source}: {value:?} is not an absolute http(s) URL")))
            }
        })
        .transpose()?
        // Apps "For API access" redirect only to Yandex's own code page.
        .or_else(|| {
            (flow == Flow::Paste || command == Command::Login)
                .then(|| format!("{oauth_url}verification_code"))
        });
    let login_url = match raw("login-url") {
        Some((source, value)) => {
            Endpoint::parse(&value).map_err(|why| ConfigError(format!("{source}: {value:?} {why}")))?
        }
        None => Endpoint::parse("https://login.yandex.ru/info").expect("the default URL parses"),
    };
    let login_hint = raw("login-hint")
        .map(|(source, value)| {
            valid_login(&value)
                .then_some(value.clone())
                .ok_or_else(|| ConfigError(format!("{source}: {value:?} is not a Yandex login")))
        })
        .transpose()?;
    let device_id = raw("device-id")
        .map(|(source, value)| {
            let printable = value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if (6..=50).contains(&value.len()) && printable {
                Ok(value)
            } else {
                Err(ConfigError(format!("{source}: {value:?} is not 6 to 50 printable ASCII characters")))
            }
        })
        .transpose()?;
    let device_name = raw("device-name")
        .map(|(source, value)| {
            if value.chars().count() <= 100
                && !value.chars().any(char::is_control)
                && !value.trim().is_empty()
            {
                Ok(value)
            } else {
                Err(ConfigError(format!(
                    "{source}: {value:?} is empty, has control characters or is over 100 characters"
                )))
            }
        })
        .transpose()?;
    Ok(OAuth {
        client_id,
        client_secret_file,
        oauth_url,
        token_endpoint,
        flow,
        redirect_uri,
        login_url,
        login_hint,
        force_confirm: switch(raw("force-confirm"))?,
        device_id,
        device_name,
    })
}

/// Whose tokens are kept.
struct Access {
    allow_logins: Vec<String>,
    allow_any_login: bool,
}

fn access(raw: &impl Fn(&str) -> Option<(String, String)>) -> Result<Access, ConfigError> {
    let allow_logins = match raw("allow-login") {
        Some((source, value)) => value
            .split(',')
            .map(str::trim)
            .filter(|login| !login.is_empty())
            .map(|login| {
                valid_login(login)
                    .then(|| login.to_ascii_lowercase())
                    .ok_or_else(|| ConfigError(format!("{source}: {login:?} is not a Yandex login")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let allow_any_login = switch(raw("allow-any-login"))?;
    if allow_any_login && !allow_logins.is_empty() {
        return Err(ConfigError(
            "--allow-login and --allow-any-login contradict each other: give one of them".to_owned(),
        ));
    }
    Ok(Access { allow_logins, allow_any_login })
}

/// The Direct API's base URL; `None` with `--direct-check=false`.
fn direct(raw: &impl Fn(&str) -> Option<(String, String)>) -> Result<Option<Endpoint>, ConfigError> {
    let direct_check = match raw("direct-check") {
        None => true,
        some => switch(some)?,
    };
    let direct_url = match (raw("direct-url"), switch(raw("direct-sandbox"))?) {
        (Some((source, _)), true) => {
            return Err(ConfigError(format!("{source} and --direct-sandbox: give one of them")));
        }
        (Some((source, value)), false) => parse_base_url(&source, &value)?,
        (None, true) => parse_base_url("--direct-sandbox", DIRECT_SANDBOX)?,
        (None, false) => parse_base_url("--direct-url", DIRECT_PRODUCTION)?,
    };
    Ok(direct_check.then_some(direct_url))
}

/// The token directory: `--token-dir`, else systemd's state directory,
/// else `./tokens`; the demo makes its own.
fn token_dir(
    command: Command,
    raw: &impl Fn(&str) -> Option<(String, String)>,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    match raw("token-dir") {
        Some((_, value)) => Some(PathBuf::from(value)),
        None if command == Command::Demo => None,
        // systemd may list several state directories separated by ':'.
        None => Some(
            env("STATE_DIRECTORY")
                .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("tokens")),
        ),
    }
}

/// What the terminal commands act on and how they print.
struct Selection {
    login: Option<String>,
    all: bool,
    if_expires_within: Option<u64>,
    json: bool,
    env: bool,
}

fn selection(raw: &impl Fn(&str) -> Option<(String, String)>) -> Result<Selection, ConfigError> {
    let login = raw("login")
        .map(|(source, value)| {
            valid_login(&value)
                .then(|| value.to_ascii_lowercase())
                .ok_or_else(|| ConfigError(format!("{source}: {value:?} is not a Yandex login")))
        })
        .transpose()?;
    let if_expires_within = raw("if-expires-within")
        .map(|(source, value)| {
            value
                .trim()
                .parse::<u64>()
                .ok()
                .and_then(|days| days.checked_mul(86_400))
                .ok_or_else(|| ConfigError(format!("{source}: {value:?} is not a number of days")))
        })
        .transpose()?;
    Ok(Selection {
        login,
        all: switch(raw("all"))?,
        if_expires_within,
        json: switch(raw("json"))?,
        env: switch(raw("env"))?,
    })
}

/// The `--acme-*` options; `None` unless `--acme-domain` is given.
fn parse_acme(raw: &impl Fn(&str) -> Option<(String, String)>) -> Result<Option<AcmeSettings>, ConfigError> {
    let Some((source, value)) = raw("acme-domain") else {
        for flag in ["acme-email", "acme-directory", "acme-ca-file", "acme-challenge", "acme-retry"] {
            if let Some((source, _)) = raw(flag) {
                return Err(ConfigError(format!("{source} needs --acme-domain")));
            }
        }
        return Ok(None);
    };
    let mut domains = Vec::new();
    for domain in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let domain = domain.to_ascii_lowercase();
        if !valid_domain(&domain) {
            return Err(ConfigError(format!(
                "{source}: {domain:?} is not a DNS name such as token.example.com"
            )));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    if domains.is_empty() {
        return Err(ConfigError(format!("{source}: no domain given")));
    }
    let email = raw("acme-email")
        .map(|(source, value)| {
            let plausible =
                value.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',');
            if plausible {
                Ok(value)
            } else {
                Err(ConfigError(format!("{source}: {value:?} is not an email address")))
            }
        })
        .transpose()?;
    let directory = match raw("acme-directory") {
        Some((source, value)) => {
            Endpoint::parse(&value).map_err(|why| ConfigError(format!("{source}: {value:?} {why}")))?;
            value
        }
        None => LETS_ENCRYPT.to_owned(),
    };
    let challenge = match raw("acme-challenge") {
        None => AcmeChallenge::TlsAlpn01,
        Some((source, value)) => [AcmeChallenge::TlsAlpn01, AcmeChallenge::Http01]
            .into_iter()
            .find(|challenge| challenge.name() == value)
            .ok_or_else(|| ConfigError(format!("{source}: {value:?} is not tls-alpn-01 or http-01")))?,
    };
    let retry = match raw("acme-retry") {
        Some((source, value)) => parse_duration(&value).filter(|d| !d.is_zero()).ok_or_else(|| {
            ConfigError(format!("{source}: {value:?} is not a duration such as 1m, 30s or 1h"))
        })?,
        None => Duration::from_secs(60),
    };
    Ok(Some(AcmeSettings {
        domains,
        email,
        directory,
        ca_file: raw("acme-ca-file").map(|(_, value)| PathBuf::from(value)),
        challenge,
        retry,
    }))
}

/// Whether `name` is a DNS name a public CA could put on a certificate:
/// dot-separated labels of letters, digits and inner hyphens. No
/// wildcards (they need DNS-01) and no IP addresses.
pub fn valid_domain(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The limit flags over [`Limits::default`].
fn parse_limits(raw: &impl Fn(&str) -> Option<(String, String)>) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let duration = |flag: &str, slot: &mut Duration| -> Result<(), ConfigError> {
        if let Some((source, value)) = raw(flag) {
            *slot = parse_duration(&value).filter(|d| !d.is_zero()).ok_or_else(|| {
                ConfigError(format!("{source}: {value:?} is not a duration such as 10s, 500ms or 2m"))
            })?;
        }
        Ok(())
    };
    duration("tls-handshake-timeout", &mut limits.tls_handshake_timeout)?;
    duration("header-read-timeout", &mut limits.header_read_timeout)?;
    duration("idle-timeout", &mut limits.idle_timeout)?;
    duration("upstream-connect-timeout", &mut limits.upstream_connect_timeout)?;
    duration("upstream-timeout", &mut limits.upstream_timeout)?;
    duration("drain-timeout", &mut limits.drain_timeout)?;
    let size = |flag: &str, slot: &mut usize| -> Result<(), ConfigError> {
        if let Some((source, value)) = raw(flag) {
            *slot = parse_size(&value).filter(|n| *n > 0).ok_or_else(|| {
                ConfigError(format!("{source}: {value:?} is not a size such as 16KiB or 65536"))
            })?;
        }
        Ok(())
    };
    size("max-header-bytes", &mut limits.max_header_bytes)?;
    size("max-exchanges", &mut limits.max_exchanges)?;
    size("exchange-rate", &mut limits.exchanges_per_minute)?;
    size("exchange-rate-per-client", &mut limits.exchanges_per_client_minute)?;
    size("upstream-max-body", &mut limits.upstream_max_body)?;
    let mut connections = limits.max_connections;
    size("max-connections", &mut connections)?;
    limits.max_connections = connections;
    let mut streams = limits.h2_max_concurrent_streams as usize;
    size("h2-max-streams", &mut streams)?;
    limits.h2_max_concurrent_streams = u32::try_from(streams)
        .map_err(|_| ConfigError(format!("--h2-max-streams: {streams} is too large")))?;
    Ok(limits)
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => number,
        "" | "s" => number.checked_mul(1000)?,
        "m" | "min" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// `16KiB`, `64k`, `1MiB`, or a bare number of bytes (or items).
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Whether `login` looks like a Yandex login: letters, digits, `.` and
/// `-`, not starting with a dot. It also becomes a file name, so nothing else.
pub fn valid_login(login: &str) -> bool {
    // Yandex ID may name an account by its whole e-mail address.
    !login.is_empty()
        && login.len() <= 100
        && !login.starts_with(['.', '@'])
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
}

/// A switch's value: given as a flag, or `1`/`true`/`yes` (`0`/`false`/`no`) in the environment.
fn switch(raw: Option<(String, String)>) -> Result<bool, ConfigError> {
    match raw {
        None => Ok(false),
        Some((source, value)) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError(format!("{source}: {value:?} is not 1/0, true/false or yes/no"))),
        },
    }
}

fn parse_addr(source: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError(format!(
            "{source}: {value:?} is not an IP address and port such as 0.0.0.0:443 or [::]:443"
        ))
    })
}

/// An `https://` base URL ending in `/` (one is added).
fn parse_base_url(source: &str, value: &str) -> Result<Endpoint, ConfigError> {
    let mut base = value.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    Endpoint::parse(&base).map_err(|why| ConfigError(format!("{source}: {value:?} {why}")))
}

fn parse_oauth_url(source: &str, value: &str) -> Result<(String, Endpoint), ConfigError> {
    let mut base = value.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    let endpoint = Endpoint::parse(&format!("{base}token"))
        .map_err(|why| ConfigError(format!("{source}: {value:?} {why}")))?;
    Ok((base, endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(args.iter().map(OsString::from), lookup)? {
            Invocation::Run(config) => Ok(*config),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn acme_options_are_parsed_and_checked() {
        assert!(parse_with(&[], &[]).unwrap().acme.is_none());
        let config = parse_with(
            &[
                "--acme-domain",
                "Token.Example.com",
                "--acme-domain",
                "b.example.com",
                "--acme-email",
                "me@example.com",
            ],
            &[],
        )
        .unwrap();
        let acme = config.acme.unwrap();
        assert_eq!(acme.domains, ["token.example.com", "b.example.com"]);
        assert_eq!(acme.email.as_deref(), Some("me@example.com"));
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(acme.retry, Duration::from_secs(60));
        let from_env = parse_with(
            &[],
            &[
                ("YANDEX_TOKEN_ACME_DOMAINS", "a.example.com, a.example.com,b.example.org"),
                ("YANDEX_TOKEN_ACME_CHALLENGE", "http-01"),
            ],
        )
        .unwrap()
        .acme
        .unwrap();
        assert_eq!(from_env.domains, ["a.example.com", "b.example.org"]);
        assert_eq!(from_env.challenge, AcmeChallenge::Http01);
        let error = |args: &[&str]| parse_with(args, &[]).unwrap_err().0;
        assert!(error(&["--acme-domain", "*.example.com"]).contains("\"*.example.com\" is not a DNS name"));
        assert!(error(&["--acme-domain", "localhost"]).contains("\"localhost\""));
        assert!(error(&["--acme-domain", "192.0.2.1"]).contains("192.0.2.1"));
        assert!(
            error(&["--acme-domain", "a.example.com", "--acme-challenge", "dns-01"])
                .contains("\"dns-01\" is not tls-alpn-01 or http-01")
        );
        assert!(
            error(&["--acme-domain", "a.example.com", "--acme-email", "nobody"])
                .contains("\"nobody\" is not an email")
        );
        assert!(
            error(&["--acme-domain", "a.example.com", "--acme-directory", "http://ca.test/dir"])
                .contains("not an https:// URL")
        );
        assert!(error(&["--acme-domain", "a.example.com", "--acme-retry", "soon"]).contains("\"soon\""));
        assert!(error(&["--acme-email", "me@example.com"]).contains("--acme-email needs --acme-domain"));
    }

    #[test]
    fn defaults_match_the_design() {
        let config = parse_with(&[], &[]).unwrap();
        assert_eq!(config.command, Command::Serve);
        assert_eq!(config.listen, "[::]:443".parse().unwrap());
        assert_eq!(config.cert, PathBuf::from("certs/fullchain.pem"));
        assert_eq!(config.key, PathBuf::from("certs/privkey.pem"));
        assert_eq!(config.oauth_url, "https://oauth.yandex.ru/");
        assert_eq!(config.token_endpoint.authority(), "oauth.yandex.ru");
        assert_eq!(config.token_dir, Some(PathBuf::from("tokens")));
        assert_eq!(config.client_secret_file, None);
    }

    #[test]
    fn flags_win_over_environment() {
        let config = parse_with(
            &["--listen", "127.0.0.1:8443", "--client-id=abc"],
            &[("YANDEX_TOKEN_LISTEN", "0.0.0.0:1"), ("YANDEX_TOKEN_CLIENT_ID", "env")],
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(config.client_id.as_deref(), Some("abc"));
    }

    #[test]
    fn systemd_directories_supply_defaults() {
        let config = parse_with(
            &[],
            &[("CREDENTIALS_DIRECTORY", "/run/credentials/x"), ("STATE_DIRECTORY", "/var/lib/yt:/other")],
        )
        .unwrap();
        assert_eq!(config.client_secret_file, Some(PathBuf::from("/run/credentials/x/client_secret")));
        assert_eq!(config.token_dir, Some(PathBuf::from("/var/lib/yt")));
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let config = parse_with(&[], &[("YANDEX_TOKEN_REDIRECT_URI", "")]).unwrap();
        assert_eq!(config.redirect_uri, None);
    }

    #[test]
    fn oauth_url_gets_a_trailing_slash() {
        let config = parse_with(&["--oauth-url", "https://127.0.0.1:9999/oauth"], &[]).unwrap();
        assert_eq!(config.oauth_url, "https://127.0.0.1:9999/oauth/");
        assert_eq!(config.token_endpoint.path(), "/oauth/token");
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let err = parse_with(&["--listen", "localhost:443"], &[]).unwrap_err();
        assert!(err.0.contains("--listen") && err.0.contains("localhost:443"), "{err}");
        let err = parse_with(&[], &[("YANDEX_TOKEN_OAUTH_URL", "http://plain/")]).unwrap_err();
        assert!(err.0.contains("YANDEX_TOKEN_OAUTH_URL") && err.0.contains("http://plain/"), "{err}");
        let err = parse_with(&["--redirect-uri", "not a url"], &[]).unwrap_err();
        assert!(err.0.contains("--redirect-uri"), "{err}");
    }

    #[test]
    fn unknown_and_repeated_options_are_refused() {
        assert!(parse_with(&["--nope", "1"], &[]).unwrap_err().0.contains("--nope"));
        assert!(parse_with(&["--cert", "a", "--cert", "b"], &[]).unwrap_err().0.contains("more than once"));
        assert!(parse_with(&["--cert"], &[]).unwrap_err().0.contains("needs a value"));
        assert!(parse_with(&["frobnicate"], &[]).unwrap_err().0.contains("frobnicate"));
    }

    #[test]
    fn demo_has_its_own_defaults() {
        let config = parse_with(&["demo"], &[("STATE_DIRECTORY", "/var/lib/yt")]).unwrap();
        assert_eq!(config.command, Command::Demo);
        assert_eq!(config.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(config.token_dir, None);
    }

    #[test]
    fn limits_parse_with_units() {
        let config = parse_with(
            &["--header-read-timeout", "500ms", "--max-header-bytes", "32KiB", "--h2-max-streams", "8"],
            &[("YANDEX_TOKEN_IDLE_TIMEOUT", "2m"), ("YANDEX_TOKEN_MAX_CONNECTIONS", "100")],
        )
        .unwrap();
        assert_eq!(config.limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(120));
        assert_eq!(config.limits.max_header_bytes, 32 * 1024);
        assert_eq!(config.limits.h2_max_concurrent_streams, 8);
        assert_eq!(config.limits.max_connections, 100);
        for (flag, bad) in
            [("--idle-timeout", "soon"), ("--idle-timeout", "0s"), ("--max-header-bytes", "1TB")]
        {
            let err = parse_with(&[flag, bad], &[]).unwrap_err();
            assert!(err.0.contains(flag) && err.0.contains(bad), "{err}");
        }
    }

    #[test]
    fn accounts_options_parse() {
        let config = parse_with(
            &["refresh", "--allow-login", "Alice", "--allow-login=bob", "--all", "--if-expires-within", "30"],
            &[],
        )
        .unwrap();
        assert_eq!(config.command, Command::Refresh);
        assert_eq!(config.allow_logins, vec!["alice".to_owned(), "bob".to_owned()]);
        assert!(config.all && !config.json);
        assert_eq!(config.if_expires_within, Some(30 * 86_400));
        let config =
            parse_with(&["list"], &[("YANDEX_TOKEN_ALLOW_LOGINS", "a, b"), ("YANDEX_TOKEN_JSON", "yes")])
                .unwrap();
        assert_eq!((config.command, config.allow_logins.len(), config.json), (Command::List, 2, true));
        assert!(parse_with(&["--login", "../etc"], &[]).unwrap_err().0.contains("../etc"));
        assert!(parse_with(&["--listen", "1", "--listen", "2"], &[]).is_err(), "only some options repeat");
    }

    #[test]
    fn help_lists_every_flag_and_variable() {
        let help = crate::config::help_text();
        for spec in OPTIONS {
            assert!(help.contains(&format!("--{}", spec.flag)), "{}", spec.flag);
            assert!(help.contains(spec.env), "{}", spec.env);
        }
    }
}
