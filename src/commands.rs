//! One function per command: `serve`, `demo`, `check`, `show`, `refresh`.
//! Each turns its outcome into an exit status; messages go to stderr, and
//! only `show` writes to stdout (the token, for `$(yandex-token show)`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::app::{self, App};
use crate::config::{Command, Config, Invocation, help_text};
use crate::error::StartupError;
use crate::oauth::{Endpoint, OAuthClient, OAuthError};
use crate::secret::Secret;
use crate::server::{self, Listeners};
use crate::tls::{self, CertResolver};
use crate::token_store::TokenStore;
use crate::{demo, signals, systemd};

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
    crate::log::init(config.journal);
    let outcome = match config.command {
        Command::Serve => serve(&config),
        Command::Demo => run_demo(&config),
        Command::Refresh => refresh(&config),
        Command::Check => return check(&config),
        Command::Show => return show(&config),
    };
    crate::log::flush();
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
    let runtime = runtime()?;
    runtime.block_on(async {
        let listeners = match activated {
            Some(listeners) => listeners,
            None => Listeners {
                https: vec![bind(config.listen, "HTTPS")?],
                http: config.redirect_listen.map(|addr| bind(addr, "the HTTP redirect")).transpose()?,
            },
        };
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
    app.notify.ready(&format!("serving {}", addresses.join(" ")));
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
        let mut listeners = Listeners { https: vec![https], http: None };
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
            None => Secret::new(Arc::from(crate::encoding::random_urlsafe(24))),
        };
        let client_id = config.client_id.clone().unwrap_or_else(|| "demo-app".to_owned());
        let client_tls = tls::client_config(false, None, std::slice::from_ref(&cert_der)).map_err(Failure::runtime)?;
        let oauth = OAuthClient::new(
            client_id.clone(),
            secret.clone(),
            &oauth_url,
            endpoint,
            config.redirect_uri.clone(),
            client_tls,
            app::client_limits(&config.limits),
        );
        let pair = tls::certified_key(vec![cert_der], key_der)
            .map_err(|why| Failure::runtime(StartupError::msg(format!("demo certificate: {why}"))))?;
        let app = App::assemble(
            config,
            oauth,
            Arc::new(CertResolver::new(pair, None)),
            TokenStore::new(dir.clone()),
            Some(demo::Provider::new(client_id, secret)),
            None,
        )
        .map_err(Failure::runtime)?;

        let jar = dir.join("cookies.txt");
        crate::info!(
            "DEMO MODE: a built-in stand-in for Yandex OAuth answers on this server; no real token is issued.\n\
             \x20 open  https://localhost:{port}/get_token  (accept the self-signed certificate warning)\n\
             \x20 curl  curl -sL -c {jar} -b {jar} --cacert {cert} https://localhost:{port}/get_token\n\
             \x20 token {token}  (after you click Allow; also: yandex-token show --token-dir {dir})",
            jar = jar.display(),
            cert = cert_file.display(),
            token = dir.join(crate::token_store::TOKEN_FILE).display(),
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
        crate::encoding::random_urlsafe(4)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|err| StartupError::with(format!("cannot create {}", dir.display()), err))?;
    Ok(dir)
}

fn token_store(config: &Config) -> TokenStore {
    TokenStore::new(config.token_dir.clone().unwrap_or_else(|| PathBuf::from("tokens")))
}

/// `show`: the stored access token alone on stdout; exit 1 when there is none.
fn show(config: &Config) -> ExitCode {
    let store = token_store(config);
    match store.load() {
        Ok(Some(doc)) => match doc.get("access_token").and_then(|t| t.as_str()) {
            Some(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            None => {
                crate::error!("{} has no access_token", store.path().display());
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            crate::error!(
                "no token stored yet ({} does not exist): open https://YOUR-DOMAIN/get_token and click Allow",
                store.path().display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            crate::error!("{err}");
            ExitCode::FAILURE
        }
    }
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
    match tls::load_pair(&config.cert, &config.key) {
        Ok(_) => fine.push(format!(
            "certificate {} and key {} load and match",
            config.cert.display(),
            config.key.display()
        )),
        Err(err) => problems.push(err.to_string()),
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

/// `refresh`: trade the stored refresh token for a new token and store it;
/// the old file stays until the new one is safely written.
fn refresh(config: &Config) -> Result<(), Failure> {
    let store = token_store(config);
    let doc = store.load().map_err(|err| Failure::runtime(StartupError::msg(err.to_string())))?.ok_or_else(
        || {
            Failure::runtime(StartupError::msg(format!(
                "no token stored yet ({} does not exist): run the browser flow at /get_token first",
                store.path().display()
            )))
        },
    )?;
    let refresh_token = doc.get("refresh_token").and_then(|t| t.as_str()).ok_or_else(|| {
        Failure::runtime(StartupError::msg(format!("{} has no refresh_token", store.path().display())))
    })?;
    let secret_file = config.client_secret_file.as_deref().ok_or_else(|| {
        Failure::config(StartupError::msg(
            "no client secret: pass --client-secret-file (or YANDEX_TOKEN_CLIENT_SECRET_FILE)",
        ))
    })?;
    let oauth = app::oauth_client(config, app::read_secret(secret_file).map_err(Failure::config)?)
        .map_err(Failure::config)?;
    let token = runtime()?.block_on(oauth.refresh(refresh_token)).map_err(|err| {
        let hint = match &err {
            OAuthError::Rejected { error, .. } if error == "invalid_grant" => {
                ": the refresh token is revoked or expired; run the browser flow at /get_token again"
            }
            _ => "",
        };
        Failure::runtime(StartupError::msg(format!("refresh failed: {err}{hint}")))
    })?;
    let mut new_doc = TokenStore::document(token);
    // Providers may omit a new refresh token; keep using the old one then.
    if let Some(map) = new_doc.as_object_mut() {
        if !map.contains_key("refresh_token") {
            map.insert("refresh_token".into(), refresh_token.into());
        }
    }
    store.save(&new_doc).map_err(|err| {
        Failure::runtime(StartupError::with(format!("cannot write {}", store.path().display()), err))
    })?;
    crate::info!("refreshed: new token stored in {}", store.path().display());
    Ok(())
}
