//! Command line and environment, parsed once into a validated [`Config`].
//!
//! Every option is one row of [`OPTIONS`]: its flag, its environment
//! variable, its default and its help. That row drives both parsing and
//! `--help`, so the two cannot drift apart. Parsing takes the environment as
//! a lookup function, so tests never touch the process environment, and
//! nothing reads the environment after this module has run.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::oauth::Endpoint;
use crate::systemd::Activation;

/// What the user asked the binary to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTPS server (the default).
    Serve,
    /// Trade the stored refresh token for a new token.
    Refresh,
    /// Ask the Direct API about each stored token now.
    Status,
    /// Print the stored access token.
    Show,
    /// Validate the configuration and exit.
    Check,
    /// Run the whole flow locally against a built-in stand-in for Yandex.
    Demo,
    /// List the stored accounts.
    List,
    /// The pasted-code flow in a terminal: print the authorize URL, read the code.
    Login,
    /// The device flow: show a user code, poll until the user allows it.
    Device,
}

impl Command {
    fn from_name(name: &str) -> Option<Command> {
        Some(match name {
            "serve" => Command::Serve,
            "refresh" => Command::Refresh,
            "status" => Command::Status,
            "show" => Command::Show,
            "check" => Command::Check,
            "demo" => Command::Demo,
            "list" => Command::List,
            "login" => Command::Login,
            "device" => Command::Device,
            _ => return None,
        })
    }
}

/// One command-line option and its environment variable.
#[derive(Debug)]
pub struct OptionSpec {
    /// The flag without its leading `--`.
    pub flag: &'static str,
    /// The environment variable read when the flag is absent.
    pub env: &'static str,
    /// The placeholder for the value in `--help`.
    pub value: &'static str,
    /// The default, as shown in `--help`.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every option, in `--help` order. DESIGN.md's interface table, verbatim.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        flag: "listen",
        env: "YANDEX_TOKEN_LISTEN",
        value: "ADDR",
        default: "[::]:443 (demo: 127.0.0.1:8443); ignored under socket activation",
        help: "address for the HTTPS listener",
    },
    OptionSpec {
        flag: "redirect-listen",
        env: "YANDEX_TOKEN_REDIRECT_LISTEN",
        value: "ADDR",
        default: "off",
        help: "address for a plain-HTTP listener that redirects to https",
    },
    OptionSpec {
        flag: "public-host",
        env: "YANDEX_TOKEN_PUBLIC_HOST",
        value: "HOST",
        default: "none (the request's Host header)",
        help: "host name the plain-HTTP listener redirects to",
    },
    OptionSpec {
        flag: "cert",
        env: "YANDEX_TOKEN_CERT",
        value: "PATH",
        default: "certs/fullchain.pem",
        help: "PEM certificate chain, leaf first",
    },
    OptionSpec {
        flag: "key",
        env: "YANDEX_TOKEN_KEY",
        value: "PATH",
        default: "certs/privkey.pem",
        help: "PEM private key (PKCS#8, SEC1 or PKCS#1; RSA or ECDSA)",
    },
    OptionSpec {
        flag: "acme-domain",
        env: "YANDEX_TOKEN_ACME_DOMAINS",
        value: "DOMAIN",
        default: "off (env: comma-separated; the flag repeats)",
        help: "get and renew the certificate for DOMAIN over ACME; --cert and --key are then unused",
    },
    OptionSpec {
        flag: "acme-email",
        env: "YANDEX_TOKEN_ACME_EMAIL",
        value: "EMAIL",
        default: "none",
        help: "contact address for the ACME account (expiry notices)",
    },
    OptionSpec {
        flag: "acme-directory",
        env: "YANDEX_TOKEN_ACME_DIRECTORY",
        value: "URL",
        default: "https://acme-v02.api.letsencrypt.org/directory (staging: https://acme-staging-v02.api.letsencrypt.org/directory)",
        help: "the ACME server's directory URL",
    },
    OptionSpec {
        flag: "acme-ca-file",
        env: "YANDEX_TOKEN_ACME_CA_FILE",
        value: "PATH",
        default: "none",
        help: "extra PEM trust anchors for the ACME server, on top of the system's",
    },
    OptionSpec {
        flag: "acme-challenge",
        env: "YANDEX_TOKEN_ACME_CHALLENGE",
        value: "TYPE",
        default: "tls-alpn-01",
        help: "tls-alpn-01 (port 443 only) or http-01 (answered on the plain-HTTP listener)",
    },
    OptionSpec {
        flag: "acme-retry",
        env: "YANDEX_TOKEN_ACME_RETRY",
        value: "DURATION",
        default: "1m",
        help: "first wait after a failed ACME order; doubles on each failure up to 1 day",
    },
    OptionSpec {
        flag: "client-id",
        env: "YANDEX_TOKEN_CLIENT_ID",
        value: "ID",
        default: "required",
        help: "the app's ClientID from oauth.yandex.ru",
    },
    OptionSpec {
        flag: "client-secret-file",
        env: "YANDEX_TOKEN_CLIENT_SECRET_FILE",
        value: "PATH",
        default: "$CREDENTIALS_DIRECTORY/client_secret when that is set",
        help: "file holding the app's Client secret (never on the command line)",
    },
    OptionSpec {
        flag: "oauth-url",
        env: "YANDEX_TOKEN_OAUTH_URL",
        value: "URL",
        default: "https://oauth.yandex.ru/",
        help: "OAuth server; authorize = URL + 'authorize', token = URL + 'token'",
    },
    OptionSpec {
        flag: "flow",
        env: "YANDEX_TOKEN_FLOW",
        value: "MODE",
        default: "callback",
        help: "callback (Yandex redirects to /get_token) or paste (the page takes the code Yandex shows)",
    },
    OptionSpec {
        flag: "redirect-uri",
        env: "YANDEX_TOKEN_REDIRECT_URI",
        value: "URL",
        default: "none (Yandex uses the app's first Callback URL); paste and login: URL + 'verification_code'",
        help: "sent as redirect_uri when set",
    },
    OptionSpec {
        flag: "ca-file",
        env: "YANDEX_TOKEN_CA_FILE",
        value: "PATH",
        default: "none",
        help: "extra PEM trust anchors for the token endpoint, on top of the system's",
    },
    OptionSpec {
        flag: "token-dir",
        env: "YANDEX_TOKEN_DIR",
        value: "PATH",
        default: "$STATE_DIRECTORY when set, else ./tokens (demo: a new temporary directory)",
        help: "where token.json is written",
    },
    OptionSpec {
        flag: "login-url",
        env: "YANDEX_TOKEN_LOGIN_URL",
        value: "URL",
        default: "https://login.yandex.ru/info",
        help: "Yandex ID endpoint that says whose token it is (?format=json is added)",
    },
    OptionSpec {
        flag: "direct-url",
        env: "YANDEX_TOKEN_DIRECT_URL",
        value: "URL",
        default: "https://api.direct.yandex.com/json/v5/",
        help: "the Direct API, asked (clients.get) whether it accepts each new token and as which client login",
    },
    OptionSpec {
        flag: "direct-sandbox",
        env: "YANDEX_TOKEN_DIRECT_SANDBOX",
        value: "",
        default: "off",
        help: "check tokens against Direct's sandbox, https://api-sandbox.direct.yandex.com/json/v5/",
    },
    OptionSpec {
        flag: "direct-check",
        env: "YANDEX_TOKEN_DIRECT_CHECK",
        value: "",
        default: "on; --direct-check=false for tokens of other Yandex APIs",
        help: "check every new or refreshed token with the Direct API",
    },
    OptionSpec {
        flag: "allow-login",
        env: "YANDEX_TOKEN_ALLOW_LOGINS",
        value: "LOGIN",
        default: "none: any account (env: comma-separated; the flag repeats)",
        help: "store tokens only for these Yandex logins; others are revoked and refused",
    },
    OptionSpec {
        flag: "allow-any-login",
        env: "YANDEX_TOKEN_ALLOW_ANY_LOGIN",
        value: "",
        default: "off: serve and check refuse to start without --allow-login or this",
        help: "store tokens of any Yandex account that completes the flow, on purpose",
    },
    OptionSpec {
        flag: "login",
        env: "YANDEX_TOKEN_LOGIN",
        value: "LOGIN",
        default: "none: token.json, the most recent token",
        help: "refresh, show, status: the account to act on",
    },
    OptionSpec {
        flag: "env",
        env: "YANDEX_TOKEN_SHOW_ENV",
        value: "",
        default: "off",
        help: "show: YANDEX_DIRECT_TOKEN=… and YANDEX_DIRECT_LOGIN=… lines, for eval or EnvironmentFile=",
    },
    OptionSpec {
        flag: "login-hint",
        env: "YANDEX_TOKEN_LOGIN_HINT",
        value: "LOGIN",
        default: "none",
        help: "login: passed to Yandex as login_hint (the account to suggest)",
    },
    OptionSpec {
        flag: "force-confirm",
        env: "YANDEX_TOKEN_FORCE_CONFIRM",
        value: "",
        default: "off",
        help: "login: make Yandex ask again (force_confirm=yes), to pick another account",
    },
    OptionSpec {
        flag: "device-id",
        env: "YANDEX_TOKEN_DEVICE_ID",
        value: "ID",
        default: "none: a plain token",
        help: "device: 6-50 printable ASCII characters; makes a device token (at most 30 per user and app)",
    },
    OptionSpec {
        flag: "device-name",
        env: "YANDEX_TOKEN_DEVICE_NAME",
        value: "NAME",
        default: "none (ignored without --device-id)",
        help: "device: the name Yandex shows for the device, at most 100 characters",
    },
    OptionSpec {
        flag: "all",
        env: "YANDEX_TOKEN_REFRESH_ALL",
        value: "",
        default: "off",
        help: "refresh, status: every stored account",
    },
    OptionSpec {
        flag: "if-expires-within",
        env: "YANDEX_TOKEN_IF_EXPIRES_WITHIN",
        value: "DAYS",
        default: "none: refresh regardless",
        help: "refresh: only tokens that expire within DAYS days",
    },
    OptionSpec {
        flag: "json",
        env: "YANDEX_TOKEN_JSON",
        value: "",
        default: "off",
        help: "list, status: JSON instead of lines",
    },
    OptionSpec {
        flag: "metrics-listen",
        env: "YANDEX_TOKEN_METRICS_LISTEN",
        value: "ADDR",
        default: "off; say 127.0.0.1:9464",
        help: "serve GET /metrics on this plain-HTTP address, off the public port (Prometheus text: counters only)",
    },
    OptionSpec {
        flag: "max-connections",
        env: "YANDEX_TOKEN_MAX_CONNECTIONS",
        value: "N",
        default: "1024",
        help: "connections held at once; at the cap the oldest that has not sent a request is shed",
    },
    OptionSpec {
        flag: "tls-handshake-timeout",
        env: "YANDEX_TOKEN_TLS_HANDSHAKE_TIMEOUT",
        value: "DURATION",
        default: "10s",
        help: "time a peer has to finish the TLS handshake",
    },
    OptionSpec {
        flag: "header-read-timeout",
        env: "YANDEX_TOKEN_HEADER_READ_TIMEOUT",
        value: "DURATION",
        default: "10s",
        help: "time from a connection's first byte (or its start) to a complete request head",
    },
    OptionSpec {
        flag: "idle-timeout",
        env: "YANDEX_TOKEN_IDLE_TIMEOUT",
        value: "DURATION",
        default: "60s",
        help: "time a keep-alive connection may sit idle between requests",
    },
    OptionSpec {
        flag: "max-header-bytes",
        env: "YANDEX_TOKEN_MAX_HEADER_BYTES",
        value: "SIZE",
        default: "16KiB",
        help: "request line plus headers (HTTP/1, at least 8KiB) and header list (HTTP/2)",
    },
    OptionSpec {
        flag: "h2-max-streams",
        env: "YANDEX_TOKEN_H2_MAX_STREAMS",
        value: "N",
        default: "64",
        help: "concurrent streams per HTTP/2 connection",
    },
    OptionSpec {
        flag: "upstream-connect-timeout",
        env: "YANDEX_TOKEN_UPSTREAM_CONNECT_TIMEOUT",
        value: "DURATION",
        default: "5s",
        help: "time to connect to the token endpoint (DNS included)",
    },
    OptionSpec {
        flag: "upstream-timeout",
        env: "YANDEX_TOKEN_UPSTREAM_TIMEOUT",
        value: "DURATION",
        default: "15s",
        help: "time for the whole token request",
    },
    OptionSpec {
        flag: "upstream-max-body",
        env: "YANDEX_TOKEN_UPSTREAM_MAX_BODY",
        value: "SIZE",
        default: "64KiB",
        help: "largest token-endpoint answer read",
    },
    OptionSpec {
        flag: "max-exchanges",
        env: "YANDEX_TOKEN_MAX_EXCHANGES",
        value: "N",
        default: "8",
        help: "token exchanges with Yandex at once; beyond, 429 and Yandex is not called",
    },
    OptionSpec {
        flag: "exchange-rate",
        env: "YANDEX_TOKEN_EXCHANGE_RATE",
        value: "N",
        default: "60",
        help: "token exchanges with Yandex per minute, over all clients; beyond, 429 with Retry-After",
    },
    OptionSpec {
        flag: "drain-timeout",
        env: "YANDEX_TOKEN_DRAIN_TIMEOUT",
        value: "DURATION",
        default: "20s",
        help: "time in-flight requests get to finish on SIGTERM",
    },
];

/// Options that may be given more than once.
const REPEATABLE: &[&str] = &["allow-login", "acme-domain"];

/// Limits on what peers can make the server hold or wait for. Each has a
/// default fit for a single-user service on a small machine.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections held at once, TLS handshakes included.
    pub max_connections: usize,
    /// Time a peer has to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time from a connection's start, or the first byte of its next
    /// request, to a complete request head.
    pub header_read_timeout: Duration,
    /// Time a connection may sit between requests with nothing sent.
    pub idle_timeout: Duration,
    /// Bytes of request line plus headers (HTTP/1) or header list (HTTP/2).
    pub max_header_bytes: usize,
    /// Streams one HTTP/2 connection may have open.
    pub h2_max_concurrent_streams: u32,
    /// Time to open the TCP connection to the token endpoint.
    pub upstream_connect_timeout: Duration,
    /// Time for the whole token request, connect included.
    pub upstream_timeout: Duration,
    /// Largest token-endpoint response body read.
    pub upstream_max_body: usize,
    /// How long a started flow may take to come back (a Yandex code's life).
    pub state_ttl: Duration,
    /// Flows kept per browser; the oldest goes first.
    pub states_per_browser: usize,
    /// How long in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
    /// Token exchanges with the provider at once.
    pub max_exchanges: usize,
    /// Token exchanges with the provider per minute.
    pub exchanges_per_minute: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            h2_max_concurrent_streams: 64,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(15),
            upstream_max_body: 64 * 1024,
            state_ttl: Duration::from_secs(600),
            states_per_browser: 8,
            drain_timeout: Duration::from_secs(20),
            max_exchanges: 8,
            exchanges_per_minute: 60,
        }
    }
}

/// The whole validated configuration. Built once at start; never re-read.
#[derive(Debug, Clone)]
pub struct Config {
    /// The command to run.
    pub command: Command,
    /// The HTTPS listener's address.
    pub listen: SocketAddr,
    /// The optional plain-HTTP redirect listener's address.
    pub redirect_listen: Option<SocketAddr>,
    /// Certificate chain path.
    pub cert: PathBuf,
    /// Private key path.
    pub key: PathBuf,
    /// The app's ClientID; commands that talk to Yandex require it.
    pub client_id: Option<String>,
    /// Where the client secret is read from.
    pub client_secret_file: Option<PathBuf>,
    /// The OAuth server, normalised to end in `/`.
    pub oauth_url: String,
    /// The token endpoint, `oauth_url + "token"`, parsed.
    pub token_endpoint: Endpoint,
    /// Which redirect the server's `/get_token` expects.
    pub flow: Flow,
    /// Sent as `redirect_uri` when set.
    pub redirect_uri: Option<String>,
    /// Extra trust anchors for the token endpoint.
    pub ca_file: Option<PathBuf>,
    /// Where tokens are stored; `None` for `demo` without an explicit one.
    pub token_dir: Option<PathBuf>,
    /// Resource limits and timeouts.
    pub limits: Limits,
    /// The Yandex ID endpoint that names a token's account.
    pub login_url: Endpoint,
    /// Logins whose tokens may be stored; empty means any.
    pub allow_logins: Vec<String>,
    /// `refresh`/`show`: the account; `None` means token.json.
    pub login: Option<String>,
    /// `refresh --all`.
    pub all: bool,
    /// `refresh --if-expires-within DAYS`, in seconds.
    pub if_expires_within: Option<u64>,
    /// `list --json`, `status --json`.
    pub json: bool,
    /// The Direct API's base URL (`…/json/v5/`), when tokens are checked there.
    pub direct_url: Option<Endpoint>,
    /// `show --env`.
    pub env: bool,
    /// `login --login-hint`.
    pub login_hint: Option<String>,
    /// `login --force-confirm`.
    pub force_confirm: bool,
    /// `device --device-id`.
    pub device_id: Option<String>,
    /// `device --device-name`.
    pub device_name: Option<String>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// `--allow-any-login`: the operator chose to keep any account's token.
    pub allow_any_login: bool,
    /// Pins the host of the plain-HTTP redirect instead of trusting `Host`.
    pub public_host: Option<String>,
    /// Sockets passed by systemd, if any (`LISTEN_*`).
    pub activation: Option<Activation>,
    /// `NOTIFY_SOCKET`, for `sd_notify`.
    pub notify_socket: Option<String>,
    /// Stderr goes to journald (`JOURNAL_STREAM` is set): log with `<N>` priorities.
    pub journal: bool,
    /// Certificates over ACME instead of `--cert`/`--key`, when set.
    pub acme: Option<AcmeSettings>,
}

/// How the user brings the authorization code back from Yandex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Yandex redirects the browser to `/get_token?code=…` (apps "For user
    /// authorization", whose Callback URL is ours).
    Callback,
    /// Yandex shows the code on its `verification_code` page and the user
    /// pastes it into our form (apps "For API access or debugging").
    Paste,
}

/// How an ACME challenge is answered (RFC 8737, RFC 8555 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A self-signed certificate on port 443, chosen by the `acme-tls/1` ALPN.
    TlsAlpn01,
    /// `/.well-known/acme-challenge/TOKEN` on the plain-HTTP listener.
    Http01,
}

impl AcmeChallenge {
    /// The name used on the command line and by RFC 8555.
    pub fn name(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// What `--acme-domain` says in a build without the `acme` feature.
pub const NO_ACME_SUPPORT: &str =
    "--acme-domain: this build has no ACME support (cargo feature \"acme\"); use --cert and --key";

/// The `--acme-*` options: which names, which CA, which challenge.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names on the certificate, lowercased, in the order given.
    pub domains: Vec<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// The directory URL.
    pub directory: String,
    /// Extra trust anchors for the directory.
    pub ca_file: Option<PathBuf>,
    /// How the CA checks we hold the names.
    pub challenge: AcmeChallenge,
    /// The first wait after a failure.
    pub retry: Duration,
}

/// What `--metrics` says now that `/metrics` has its own listener.
const METRICS_MOVED: &str = "--metrics: /metrics is no longer served on the public port; \
     serve it on its own plain-HTTP address with --metrics-listen ADDR (YANDEX_TOKEN_METRICS_LISTEN), \
     for example --metrics-listen 127.0.0.1:9464";

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The outcome of parsing the command line.
#[derive(Debug)]
pub enum Invocation {
    /// `--help`: print [`help_text`].
    Help,
    /// `--version`.
    Version,
    /// Run a command with this configuration.
    Run(Box<Config>),
}

/// A command line or environment value that cannot be used, with a message
/// naming the flag or variable and the bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `args` (without the program name) and the environment seen through
/// `env` into an [`Invocation`]. Flags win over environment variables; an
/// empty environment variable counts as unset.
pub fn parse<I>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut command = None;
    let mut flags: Vec<Option<String>> = vec![None; OPTIONS.len()];
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
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
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let raw = |flag: &str| -> Option<(String, String)> {
        let index = OPTIONS.iter().position(|spec| spec.flag == flag).expect("flag is in OPTIONS");
        let spec = &OPTIONS[index];
        match &flags[index] {
            Some(value) => Some((format!("--{}", spec.flag), value.clone())),
            None => env(spec.env).map(|value| (spec.env.to_owned(), value)),
        }
    };
    build(command, raw, env).map(|config| Invocation::Run(Box::new(config)))
}

/// Turns raw strings (each with the flag or variable it came from) into a
/// [`Config`], checking every value that can be checked without touching files.
fn build(
    command: Command,
    raw: impl Fn(&str) -> Option<(String, String)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let default_listen = match command {
        Command::Demo => "127.0.0.1:8443",
        _ => "[::]:443",
    };
    let listen = match raw("listen") {
        Some((source, value)) => parse_addr(&source, &value)?,
        None => default_listen.parse().expect("default address parses"),
    };
    let redirect_listen =
        raw("redirect-listen").map(|(source, value)| parse_addr(&source, &value)).transpose()?;
    let path = |flag: &str, default: &str| {
        raw(flag).map_or_else(|| PathBuf::from(default), |(_, value)| PathBuf::from(value))
    };
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
    let direct_check = match raw("direct-check") {
        None => true,
        some => switch(some)?,
    };
    let direct_url = match (raw("direct-url"), switch(raw("direct-sandbox"))?) {
        (Some((source, _)), true) => {
            return Err(ConfigError(format!("{source} and --direct-sandbox: give one of them")));
        }
        (Some((source, value)), false) => parse_base_url(&source, &value)?,
        (None, true) => parse_base_url("--direct-sandbox", crate::direct::SANDBOX)?,
        (None, false) => parse_base_url("--direct-url", crate::direct::PRODUCTION)?,
    };
    let direct_url = direct_check.then_some(direct_url);
    if allow_any_login && !allow_logins.is_empty() {
        return Err(ConfigError(
            "--allow-login and --allow-any-login contradict each other: give one of them".to_owned(),
        ));
    }
    if env("YANDEX_TOKEN_METRICS").is_some() {
        return Err(ConfigError(METRICS_MOVED.replace("--metrics", "YANDEX_TOKEN_METRICS")));
    }
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
    let public_host = raw("public-host")
        .map(|(source, value)| match crate::server::host_without_port(&value) {
            Some(host) if host == value => Ok(value),
            _ => Err(ConfigError(format!("{source}: {value:?} is not a host name"))),
        })
        .transpose()?;
    let token_dir = match raw("token-dir") {
        Some((_, value)) => Some(PathBuf::from(value)),
        None if command == Command::Demo => None,
        // systemd may list several state directories separated by ':'.
        None => Some(
            env("STATE_DIRECTORY")
                .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("tokens")),
        ),
    };
    Ok(Config {
        command,
        listen,
        redirect_listen,
        cert: path("cert", "certs/fullchain.pem"),
        key: path("key", "certs/privkey.pem"),
        client_id,
        client_secret_file,
        oauth_url,
        token_endpoint,
        flow,
        redirect_uri,
        ca_file: raw("ca-file").map(|(_, value)| PathBuf::from(value)),
        token_dir,
        limits: parse_limits(&raw)?,
        login_url,
        allow_logins,
        login,
        all: switch(raw("all"))?,
        if_expires_within,
        json: switch(raw("json"))?,
        direct_url,
        env: switch(raw("env"))?,
        login_hint,
        force_confirm: switch(raw("force-confirm"))?,
        device_id,
        device_name,
        metrics_listen: raw("metrics-listen")
            .map(|(source, value)| parse_addr(&source, &value))
            .transpose()?,
        allow_any_login,
        public_host,
        activation: Activation::from_env(&env).map_err(ConfigError)?,
        notify_socket: env("NOTIFY_SOCKET"),
        journal: env("JOURNAL_STREAM").is_some(),
        acme: parse_acme(&raw)?,
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

/// The text of `--help`, generated from [`OPTIONS`].
pub fn help_text() -> String {
    let mut out = String::from(concat!(
        "yandex-token ",
        env!("CARGO_PKG_VERSION"),
        "\nGet a Yandex OAuth token for the Direct API: one HTTPS server, no nginx, no Flask.\n\n",
        "Usage: yandex-token [COMMAND] [OPTIONS]\n\n",
        "Commands:\n",
        "  serve     run the HTTPS server (the default)\n",
        "  refresh   trade the stored refresh_token for a new token\n",
        "  show      print the stored access_token alone; exit 1 when there is none\n",
        "  check     validate the configuration and exit 0 or 1\n",
        "  demo      run the whole flow on https://localhost:8443 against a built-in stand-in for Yandex\n",
        "  list      one line per stored account: login, client login, expires, days left, Direct status\n",
        "  status    ask the Direct API about each stored token now; exit 1 if any is unusable\n",
        "  login     the pasted-code flow in a terminal: print the authorize URL, read the code Yandex shows\n",
        "            from stdin; no domain, certificate or open port needed\n",
        "  device    the device flow: show a code to enter at Yandex's device page, wait for Allow.\n",
        "            With --device-id the token is a device token: a user holds at most 30 per app,\n",
        "            and a new one revokes the oldest\n\n",
        "Options (each also read from its environment variable):\n",
    ));
    for spec in OPTIONS {
        let flag = format!("--{} {}", spec.flag, spec.value).trim_end().to_owned();
        out.push_str(&format!("  {flag:<28} {}\n", spec.help));
        out.push_str(&format!("  {:<28} env {}; default: {}\n", "", spec.env, spec.default));
    }
    out.push_str("  -h, --help                   print this help\n");
    out.push_str("  -V, --version                print the version\n");
    out
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
        let help = help_text();
        for spec in OPTIONS {
            assert!(help.contains(&format!("--{}", spec.flag)), "{}", spec.flag);
            assert!(help.contains(spec.env), "{}", spec.env);
        }
    }
}
