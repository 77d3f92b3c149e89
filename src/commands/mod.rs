//! One function per command: `serve`, `demo`, `check`, `show`, `refresh`.
//! Each turns its outcome into an exit status; messages go to stderr, and
//! only `show` writes to stdout (the token, for `$(yandex-token show)`).
//!
//! What lives here: the dispatch and the server commands in this file,
//! `status` ([`status`]) and `login`/`device` ([`terminal`]). Commands may
//! import every floor below.

pub mod status;
pub mod terminal;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{Command, Config, Flow, Invocation, help_text};
use crate::http::app::{self, App};
use crate::http::demo;
use crate::http::server::{self, Listeners};
use crate::oauth::{OAuthClient, OAuthError};
use crate::ops::{signals, systemd};
use crate::store::TokenStore;
use crate::tls::{self, CertResolver};
use crate::util::endpoint::Endpoint;
use crate::util::error::StartupError;
use crate::util::secret::Secret;
use crate::util::time::{date, now_unix};

/// Bad command line: do not restart, fix the unit.
pub const EXIT_USAGE: u8 = 2;
/// Unusable configuration (sysexits' EX_CONFIG): a unit can exclude it from
/// restarts with `RestartPreventExitStatus=78`.
pub const EXIT_CONFIG: u8 = 78;

/// A failure and the exit status it maps to.
struct Failure {
    code: u8,
    error: StartupError,
}

impl Failure {
    fn config(error: StartupError) -> Failure {
        Failure { code: EXIT_CONFIG, error }
    }

    fn runtime(error: StartupError) -> Failure {
        Failure { code: 1, error }
    }
}

/// Runs what the command line asked for.
pub fn run(invocation: Invocation) -> ExitCode {
    let config = match invocation {
        Invocation::Help => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Invocation::Version => {
            println!("yandex-token {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Invocation::Run(config) => config,
    };
    crate::util::log::init(config.journal);
    // Without an allow-list, anyone who reaches /get_token could replace
    // token.json with their own account's token: only on purpose.
    if matches!(config.command, Command::Serve | Command::Check)
        && config.allow_logins.is_empty()
        && !config.allow_any_login
    {
        crate::error!(
            "no --allow-login: anyone who can open /get_token could store a token of their own Yandex account \
             here. Name the accounts whose tokens to keep with --allow-login LOGIN (YANDEX_TOKEN_ALLOW_LOGINS), \
             or pass --allow-any-login (YANDEX_TOKEN_ALLOW_ANY_LOGIN=1) to keep any account's token on purpose"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let outcome = match config.command {
        Command::Serve => serve(&config),
        Command::Demo => run_demo(&config),
        Command::Refresh => refresh(&config),
        Command::Check => return check(&config),
        Command::Show => return show(&config),
        Command::List => return list(&config),
        Command::Status => return crate::commands::status::run(&config),
        Command::Login => return crate::commands::terminal::login(&config),
        Command::Device => return crate::commands::terminal::device(&config),
    };
    crate::util::log::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            crate::error!("{}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::runtime(StartupError::with("cannot start the async runtime", err)))
}

/// Binds `addr` with a deep accept queue (the kernel caps it at
/// `net.core.somaxconn`): under a connection flood, a user's SYN must wait
/// in the queue, not be dropped and retried a second later.
fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, Failure> {
    const BACKLOG: u32 = 4096;
    let listen = || -> std::io::Result<TcpListener> {
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)?.into_std()
    };
    listen().map_err(|err| {
        Failure::runtime(StartupError::with(format!("cannot listen for {what} on {addr}"), err))
    })
}

/// `serve`: load everything, take systemd's sockets or bind our own, serve
/// until SIGTERM/SIGINT.
fn serve(config: &Config) -> Result<(), Failure> {
    crate::util::log_bridge::install();
    // Before any thread exists: this clears the LISTEN_* variables.
    let activated = systemd::take_listeners(config.activation.as_ref()).map_err(Failure::config)?;
    match systemd::raise_open_files_limit() {
        Ok(limit) if (limit as usize) < config.limits.max_connections + 64 => crate::warn!(
            "the open-files limit ({limit}) is below --max-connections ({}): raise LimitNOFILE",
            config.limits.max_connections
        ),
        Ok(_) => {}
        Err(err) => crate::warn!("cannot raise the open-files limit: {err}"),
    }
    let app = Arc::new(App::from_config(config).map_err(Failure::config)?);
    #[cfg(feature = "acme")]
    let acme = config
        .acme
        .clone()
        .map(|settings| {
            crate::ops::acme::Manager::new(settings, app.store.dir(), app.certs.clone(), &config.limits)
        })
        .transpose()
        .map_err(Failure::config)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut listeners = match activated {
            Some(listeners) => listeners,
            None => Listeners {
                https: vec![bind(config.listen, "HTTPS")?],
                http: config.redirect_listen.map(|addr| bind(addr, "the HTTP redirect")).transpose()?,
                metrics: None,
            },
        };
        // Under socket activation too, unless systemd passed a `metrics` fd.
        if listeners.metrics.is_none() {
            listeners.metrics = config.metrics_listen.map(|addr| bind(addr, "/metrics")).transpose()?;
        }
        if listeners.http.is_none()
            && config.acme.as_ref().is_some_and(|acme| acme.challenge == crate::config::AcmeChallenge::Http01)
        {
            return Err(Failure::config(StartupError::msg(
                "--acme-challenge http-01 is answered on the plain-HTTP listener: pass --redirect-listen [::]:80 \
                 (or enable yandex-token-http.socket)",
            )));
        }
        #[cfg(feature = "acme")]
        if let Some(acme) = acme {
            tokio::spawn(acme.run(app.clone()));
        }
        serve_on(listeners, app).await
    })
}

/// Installs the signal handlers, announces the listeners and serves.
async fn serve_on(listeners: Listeners, app: Arc<App>) -> Result<(), Failure> {
    let signal_error = |err| Failure::runtime(StartupError::with("cannot install signal handlers", err));
    let shutdown = signals::shutdown().map_err(signal_error)?;
    tokio::spawn(signals::reload_on_hangup(app.clone()).map_err(signal_error)?);
    let mut addresses = Vec::new();
    for listener in &listeners.https {
        if let Ok(addr) = listener.local_addr() {
            crate::info!("listening on https://{addr}");
            addresses.push(format!("https://{addr}"));
        }
    }
    if let Some(Ok(addr)) = listeners.http.as_ref().map(TcpListener::local_addr) {
        crate::info!("redirecting http://{addr} to https");
        addresses.push(format!("http://{addr}"));
    }
    if let Some(Ok(addr)) = listeners.metrics.as_ref().map(TcpListener::local_addr) {
        crate::info!("metrics on http://{addr}/metrics");
        addresses.push(format!("http://{addr}/metrics"));
    }
    if app.certs.pending() {
        // READY=1 comes from the ACME task, with the certificate.
        crate::info!("waiting for the ACME certificate; requests get 503 certificate_pending until then");
        app.notify.waiting(
            &format!("listening on {}; waiting for the ACME certificate", addresses.join(" ")),
            std::time::Duration::from_secs(600),
        );
    } else {
        app.notify.ready(&format!("serving {}", addresses.join(" ")));
    }
    let notify_app = app.clone();
    let shutdown = async move {
        shutdown.await;
        notify_app.notify.stopping();
    };
    server::run(listeners, app, shutdown)
        .await
        .map_err(|err| Failure::runtime(StartupError::with("server failed", err)))?;
    crate::info!("stopped");
    Ok(())
}

/// `demo`: a self-signed certificate made now, the stand-in provider on the
/// same server, tokens in a fresh temporary directory.
fn run_demo(config: &Config) -> Result<(), Failure> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|err| Failure::runtime(StartupError::with("cannot make the demo certificate", err)))?;
        let cert_der = made.cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let dir = match &config.token_dir {
            Some(dir) => dir.clone(),
            None => make_temp_dir().map_err(Failure::runtime)?,
        };
        let cert_file = dir.join("demo-cert.pem");
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&cert_file, tls::certs_to_pem(std::slice::from_ref(&cert_der))))
            .map_err(|err| Failure::runtime(StartupError::with(format!("cannot write {}", cert_file.display()), err)))?;

        let https = bind(config.listen, "HTTPS")?;
        let port = https.local_addr().map_err(|err| Failure::runtime(StartupError::with("listener", err)))?.port();
        let metrics = config.metrics_listen.map(|addr| bind(addr, "/metrics")).transpose()?;
        let mut listeners = Listeners { https: vec![https], http: None, metrics };
        if config.listen.ip().is_loopback() && config.listen.is_ipv4() {
            // Browsers may try ::1 first for "localhost"; serve it too when we can.
            if let Ok(v6) = bind(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)), "HTTPS") {
                listeners.https.push(v6);
            }
        }

        let oauth_url = format!("https://localhost:{port}{}", demo::PREFIX);
        let endpoint = Endpoint::parse(&format!("{oauth_url}token")).expect("the demo URL is valid");
        // The stand-in accepts the app's credentials when given (so a second
        // instance can play Yandex for a real `serve`), made-up ones otherwise.
        let secret: Secret<Arc<str>> = match &config.client_secret_file {
            Some(path) => app::read_secret(path).map_err(Failure::config)?,
            None => Secret::new(Arc::from(crate::util::encoding::random_urlsafe(24))),
        };
        let client_id = config.client_id.clone().unwrap_or_else(|| "demo-app".to_owned());
        // For the `login` and `device` lines below: the secret in a file of
        // the demo's own private directory.
        let secret_file = dir.join("client_secret");
        crate::store::save_atomic(&dir, "client_secret", format!("{}\n", secret.expose()).as_bytes())
            .map_err(|err| Failure::runtime(StartupError::with(format!("cannot write {}", secret_file.display()), err)))?;
        // The paste flow's redirect is the stand-in's verification_code page
        // unless --redirect-uri names another.
        let redirect_uri = match &config.redirect_uri {
            Some(uri) if config.flow == Flow::Paste && uri.starts_with(&config.oauth_url) => {
                Some(format!("{oauth_url}verification_code"))
            }
            other => other.clone(),
        };
        let client_tls = tls::client_config(false, None, std::slice::from_ref(&cert_der)).map_err(Failure::runtime)?;
        let oauth = OAuthClient::new(
            client_id.clone(),
            secret.clone(),
            &oauth_url,
            endpoint,
            redirect_uri,
            tls::ClientTls::ready(client_tls.clone()),
            app::client_limits(&config.limits),
        )
        .with_login_url(Endpoint::parse(&format!("{oauth_url}info")).expect("the demo URL is valid"));
        // The stand-in plays the Direct API too, unless checks are off.
        let direct_base = Endpoint::parse(&format!("{oauth_url}direct/json/v5/")).expect("the demo URL is valid");
        let direct = config.direct_url.as_ref().map(|_| {
            crate::oauth::direct::DirectClient::new(&direct_base, tls::ClientTls::ready(client_tls.clone()), app::client_limits(&config.limits))
        });
        let pair = tls::certified_key(vec![cert_der], key_der)
            .map_err(|why| Failure::runtime(StartupError::msg(format!("demo certificate: {why}"))))?;
        let app = App::assemble(
            config,
            oauth,
            Arc::new(CertResolver::new(pair, None)),
            TokenStore::new(dir.clone()),
            Some(demo::Provider::new(client_id.clone(), secret, oauth_url.clone())),
            None,
            direct,
        )
        .map_err(Failure::runtime)?;

        let jar = dir.join("cookies.txt");
        let curl = match config.flow {
            Flow::Callback => format!(
                "curl -sL -c {jar} -b {jar} --cacert {cert} https://localhost:{port}/get_token",
                jar = jar.display(),
                cert = cert_file.display()
            ),
            Flow::Paste => format!(
                "curl -s -c {jar} -b {jar} --cacert {cert} -H 'Accept: application/json' https://localhost:{port}/get_token  \
                 (then open authorize_url, and POST code=…&state=… to the same URL with the same jar)",
                jar = jar.display(),
                cert = cert_file.display()
            ),
        };
        // The terminal flows against this stand-in: every flag they need.
        let against_demo = format!(
            "--client-id {client_id} --client-secret-file {secret} --oauth-url {oauth_url} --login-url {oauth_url}info \
             --direct-url {oauth_url}direct/json/v5/ --ca-file {cert} --token-dir {dir}",
            secret = secret_file.display(),
            cert = cert_file.display(),
            dir = dir.display(),
        );
        let exe = std::env::current_exe().map_or_else(|_| "yandex-token".to_owned(), |path| path.display().to_string());
        crate::info!(
            "DEMO MODE: a built-in stand-in for Yandex OAuth answers on this server; no real token is issued.\n\
             \x20 open   https://localhost:{port}/get_token  (accept the self-signed certificate warning)\n\
             \x20 curl   {curl}\n\
             \x20 login  {exe} login {against_demo}\n\
             \x20 device {exe} device {against_demo}\n\
             \x20 token  {token}  (after you click Allow; also: yandex-token show --token-dir {dir})",
            token = dir.join(crate::store::TOKEN_FILE).display(),
            dir = dir.display(),
        );
        serve_on(listeners, Arc::new(app)).await
    })
}

/// A new private directory under the system's temporary directory.
fn make_temp_dir() -> Result<PathBuf, StartupError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "yandex-token-demo-{}-{}",
        std::process::id(),
        crate::util::encoding::random_urlsafe(4)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|err| StartupError::with(format!("cannot create {}", dir.display()), err))?;
    Ok(dir)
}

pub(crate) fn token_store(config: &Config) -> TokenStore {
    TokenStore::new(config.token_dir.clone().unwrap_or_else(|| PathBuf::from("tokens")))
}

/// `show [--login L]`: the stored access token alone on stdout; exit 1
/// when there is none.
fn show(config: &Config) -> ExitCode {
    let store = token_store(config);
    let path = match &config.login {
        Some(login) => store.account_path(login),
        None => store.path(),
    };
    match crate::store::load_file(&path) {
        Ok(Some(doc)) => match doc.get("access_token").and_then(|t| t.as_str()) {
            Some(token) if config.env => show_env(&doc, token),
            Some(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            None => {
                crate::error!("{} has no access_token", path.display());
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            crate::error!(
                "no token stored yet ({} does not exist): open https://YOUR-DOMAIN/get_token and click Allow",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            crate::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// `show --env`: the token and client login under the names Direct tools
/// read, for `eval`, `EnvironmentFile=` or a CI secret.
fn show_env(doc: &serde_json::Map<String, serde_json::Value>, token: &str) -> ExitCode {
    let checked = doc.get("direct").and_then(crate::oauth::direct::DirectCheck::from_json);
    // Direct's own login; Yandex ID's is only good when it is not an e-mail.
    let client_login =
        checked.as_ref().and_then(|check| check.client_login().map(str::to_owned)).or_else(|| {
            doc.get("login").and_then(|l| l.as_str()).filter(|l| !l.contains('@')).map(str::to_owned)
        });
    let Some(client_login) = client_login else {
        crate::error!("the client login is not known yet: run yandex-token status to ask the Direct API");
        return ExitCode::FAILURE;
    };
    println!("YANDEX_DIRECT_TOKEN={}", shell_word(token));
    println!("YANDEX_DIRECT_LOGIN={}", shell_word(&client_login));
    ExitCode::SUCCESS
}

/// `value` as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:@/+=".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// When a stored token expires (`obtained_at + expires_in`), if it says.
pub(crate) fn expires_at(doc: &serde_json::Map<String, serde_json::Value>) -> Option<u64> {
    let obtained = doc.get("obtained_at")?.as_u64()?;
    let lifetime = doc.get("expires_in")?.as_u64()?;
    obtained.checked_add(lifetime)
}

/// The accounts `list` and `refresh --all` act on: every `accounts/*.json`,
/// or `token.json` alone when no account has a file (its login unknown).
pub(crate) fn stored_tokens(store: &TokenStore) -> Result<Vec<(String, PathBuf)>, StartupError> {
    let accounts = store.accounts().map_err(|err| StartupError::msg(err.to_string()))?;
    if accounts.is_empty() && store.path().exists() {
        return Ok(vec![("(token.json)".to_owned(), store.path())]);
    }
    Ok(accounts.into_iter().map(|(login, _)| (login.clone(), store.account_path(&login))).collect())
}

/// `list [--json]`: one line per stored account.
fn list(config: &Config) -> ExitCode {
    let store = token_store(config);
    let targets = match stored_tokens(&store) {
        Ok(targets) => targets,
        Err(err) => {
            crate::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let now = now_unix();
    let mut rows = Vec::new();
    for (login, path) in targets {
        let doc = match crate::store::load_file(&path) {
            Ok(Some(doc)) => doc,
            Ok(None) => continue,
            Err(err) => {
                crate::error!("{err}");
                return ExitCode::FAILURE;
            }
        };
        let obtained = doc.get("obtained_at").and_then(|v| v.as_u64());
        let expires = expires_at(&doc);
        let days_left = expires.map(|at| (at as i64 - now as i64).div_euclid(86_400));
        let direct = doc.get("direct").and_then(crate::oauth::direct::DirectCheck::from_json);
        rows.push((login, obtained, expires, days_left, direct));
    }
    if config.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(login, obtained, expires, days, direct)| {
                serde_json::json!({
                    "login": login,
                    "client_login": direct.as_ref().and_then(|check| check.client_login()),
                    "obtained_at": obtained,
                    "expires_at": expires,
                    "days_left": days,
                    "direct": direct.as_ref().map_or_else(|| "unchecked".to_owned(), |check| check.status()),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(json));
    } else {
        if rows.is_empty() {
            crate::info!("no tokens stored in {} yet", store.dir().display());
        }
        for (login, obtained, expires, days, direct) in rows {
            let show = |t: Option<u64>| t.map_or_else(|| "unknown".to_owned(), date);
            let days = days.map_or_else(|| "unknown".to_owned(), |d| d.to_string());
            let client = direct.as_ref().and_then(|check| check.client_login()).unwrap_or("-");
            let status = direct.as_ref().map_or_else(|| "unchecked".to_owned(), |check| check.status());
            println!(
                "{login}\tclient {client}\tobtained {}\texpires {}\t{days} days left\tdirect {status}",
                show(obtained),
                show(expires)
            );
        }
    }
    ExitCode::SUCCESS
}

/// `check`: every file and value the server needs, each reported; exit 1
/// if any is wrong.
fn check(config: &Config) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let mut fine: Vec<String> = Vec::new();
    match &config.client_id {
        Some(id) => fine.push(format!("client id {id}")),
        None => problems.push("no client id: pass --client-id or set YANDEX_TOKEN_CLIENT_ID".into()),
    }
    match &config.client_secret_file {
        Some(path) => match app::read_secret(path) {
            Ok(_) => fine.push(format!("client secret readable from {}", path.display())),
            Err(err) => problems.push(err.to_string()),
        },
        None => problems.push(
            "no client secret: pass --client-secret-file, set YANDEX_TOKEN_CLIENT_SECRET_FILE, \
             or provide the systemd credential client_secret"
                .into(),
        ),
    }
    match &config.acme {
        Some(acme) if cfg!(feature = "acme") => {
            fine.push(format!("ACME for {} from {}", acme.domains.join(", "), acme.directory));
            if let Err(err) = tls::client_config(true, acme.ca_file.as_deref(), &[]) {
                problems.push(err.to_string());
            }
        }
        Some(_) => problems.push(crate::config::NO_ACME_SUPPORT.into()),
        None => match tls::load_pair(&config.cert, &config.key) {
            Ok(_) => fine.push(format!(
                "certificate {} and key {} load and match",
                config.cert.display(),
                config.key.display()
            )),
            Err(err) => problems.push(err.to_string()),
        },
    }
    match tls::client_config(true, config.ca_file.as_deref(), &[]) {
        Ok(_) => fine.push(format!("trust anchors for {:?} loaded", config.token_endpoint)),
        Err(err) => problems.push(err.to_string()),
    }
    let store = token_store(config);
    match store.check_writable() {
        Ok(()) => fine.push(format!("token directory {} is writable", store.dir().display())),
        Err(err) => {
            problems.push(format!("token directory {} is not writable: {err}", store.dir().display()))
        }
    }
    for line in &fine {
        crate::info!("ok: {line}");
    }
    for line in &problems {
        crate::error!("{line}");
    }
    if problems.is_empty() {
        crate::info!("configuration OK");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `refresh [--login L | --all] [--if-expires-within DAYS]`: trades each
/// stored refresh token for a new token. A file is replaced only once the
/// new token is safely written; token.json follows the account it holds.
fn refresh(config: &Config) -> Result<(), Failure> {
    let store = token_store(config);
    let targets = if config.all {
        stored_tokens(&store).map_err(Failure::runtime)?
    } else if let Some(login) = &config.login {
        vec![(login.clone(), store.account_path(login))]
    } else {
        vec![("(token.json)".to_owned(), store.path())]
    };
    if targets.is_empty() {
        return Err(Failure::runtime(StartupError::msg(format!(
            "no tokens stored in {} yet: run the browser flow at /get_token first",
            store.dir().display()
        ))));
    }
    let secret_file = config.client_secret_file.as_deref().ok_or_else(|| {
        Failure::config(StartupError::msg(
            "no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE)",
        ))
    })?;
    let oauth = app::oauth_client(config, app::read_secret(secret_file).map_err(Failure::config)?)
        .map_err(Failure::config)?;
    let tls = tls::ClientTls::deferred(config.ca_file.as_deref()).map_err(Failure::config)?;
    let direct = app::direct_client(config, tls);
    let runtime = runtime()?;
    let mut failed = 0;
    for (label, path) in targets {
        match refresh_one(&store, &oauth, direct.as_ref(), &runtime, config, &path) {
            Ok(Some(days)) => crate::info!("{label}: refreshed, expires in {days} days"),
            Ok(None) => crate::info!("{label}: not due (expires later than --if-expires-within)"),
            Err(err) => {
                failed += 1;
                crate::error!("{label}: {err}");
            }
        }
    }
    if failed > 0 {
        return Err(Failure::runtime(StartupError::msg(format!("{failed} token(s) could not be refreshed"))));
    }
    Ok(())
}

/// Refreshes the token in `path`; `Ok(None)` when the expiry filter skips it.
fn refresh_one(
    store: &TokenStore,
    oauth: &OAuthClient,
    direct: Option<&crate::oauth::direct::DirectClient>,
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    path: &std::path::Path,
) -> Result<Option<i64>, String> {
    let doc = crate::store::load_file(path)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("{} does not exist", path.display()))?;
    if let (Some(window), Some(expires)) = (config.if_expires_within, expires_at(&doc)) {
        if expires > now_unix() + window {
            return Ok(None);
        }
    }
    let refresh_token = doc
        .get("refresh_token")
        .and_then(|t| t.as_str())
        .ok_or_else(|| format!("{} has no refresh_token", path.display()))?;
    let token = runtime.block_on(oauth.refresh(refresh_token)).map_err(|err| {
        let hint = match &err {
            OAuthError::Rejected { error, .. } if error == "invalid_grant" => {
                ": the refresh token is revoked or expired; run the browser flow at /get_token again"
            }
            _ => "",
        };
        format!("refresh failed: {err}{hint}")
    })?;
    let mut new_doc = TokenStore::document(token);
    if let Some(map) = new_doc.as_object_mut() {
        // Providers may omit a new refresh token; keep using the old one then.
        if !map.contains_key("refresh_token") {
            map.insert("refresh_token".into(), refresh_token.into());
        }
        for field in ["login", "id"] {
            if let Some(value) = doc.get(field) {
                map.insert(field.into(), value.clone());
            }
        }
    }
    // Whether Direct still accepts it (never a reason not to store it).
    if let Some(direct) = direct {
        let access_token = new_doc["access_token"].as_str().unwrap_or("").to_owned();
        let check = runtime.block_on(direct.check(&access_token, now_unix()));
        if !check.usable() {
            crate::warn!(
                "{}: {}",
                doc.get("login").and_then(|l| l.as_str()).unwrap_or("token.json"),
                check.advice()
            );
        }
        new_doc["direct"] = check.to_json();
    }
    let login = doc.get("login").and_then(|l| l.as_str()).filter(|l| crate::config::valid_login(l));
    let write_error =
        |err: std::io::Error| format!("the new token could not be written ({err}); the old file is intact");
    match login {
        Some(login) if path != store.path() => {
            store.save_account(login, &new_doc).map_err(write_error)?;
            // token.json is the most recent token: update it if it is this account's.
            let current = store.load().ok().flatten();
            if current.as_ref().and_then(|c| c.get("login")).and_then(|l| l.as_str()) == Some(login) {
                store.save(&new_doc).map_err(write_error)?;
            }
        }
        Some(login) => {
            store.save_account(login, &new_doc).map_err(write_error)?;
            store.save(&new_doc).map_err(write_error)?;
        }
        None => store.save(&new_doc).map_err(write_error)?,
    }
    Ok(Some(
        expires_at(new_doc.as_object().expect("a document is an object"))
            .map_or(0, |at| (at as i64 - now_unix() as i64).div_euclid(86_400)),
    ))
}
