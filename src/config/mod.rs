//! The configuration: plain data, parsed and validated once at start from
//! the command line and the environment into a [`Config`]; nothing reads
//! the environment after that.
//!
//! What lives here: the option table ([`options`]: one row per flag, its
//! variable, default and help, driving both parsing and `--help`), the
//! parser and validators ([`parse`]), the help text ([`help`]) and the
//! socket-activation variables ([`activation`]). It imports only `util`.

mod activation;
mod help;
mod options;
mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use activation::Activation;
pub use help::help_text;
pub use options::{OPTIONS, OptionSpec};
pub use parse::{parse, parse_duration, parse_size, valid_domain, valid_login};

use crate::util::endpoint::Endpoint;

/// Direct's production API, the default `--direct-url`.
pub const DIRECT_PRODUCTION: &str = "https://api.direct.yandex.com/json/v5/";
/// Direct's sandbox, `--direct-sandbox`.
pub const DIRECT_SANDBOX: &str = "https://api-sandbox.direct.yandex.com/json/v5/";

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
    /// Revoke an account's token where Yandex allows it, and remove its files.
    Revoke,
    /// Run a program with the token in its environment.
    Exec,
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
            "revoke" => Command::Revoke,
            "exec" => Command::Exec,
            _ => return None,
        })
    }
}

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
    /// Token exchanges (and refusals, which spend a state too) per minute
    /// from one client address.
    pub exchanges_per_client_minute: usize,
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
            exchanges_per_client_minute: 10,
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
    /// `exec -- COMMAND [ARGS…]`: the program and its arguments, as given.
    pub program: Vec<std::ffi::OsString>,
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
pub(crate) const METRICS_MOVED: &str = "--metrics: /metrics is no longer served on the public port; \
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
