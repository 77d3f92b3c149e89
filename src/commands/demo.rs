//! `demo`: the whole flow on `https://localhost:8443` with a certificate
//! made on the spot and the built-in stand-in for Yandex (and the Direct
//! API) on the same server; tokens go to a fresh temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::serve::serve_on;
use super::{Failure, bind, runtime};
use crate::config::{Config, Flow};
use crate::http::app::App;
use crate::http::demo;
use crate::http::server::Listeners;
use crate::keeper::{Keeper, client_limits, read_secret};
use crate::oauth::OAuthClient;
use crate::store::TokenStore;
use crate::tls::{self, CertResolver};
use crate::util::endpoint::Endpoint;
use crate::util::error::StartupError;
use crate::util::secret::Secret;

/// `demo`: a self-signed certificate made now, the stand-in provider on the
/// same server, tokens in a fresh temporary directory.
pub(crate) fn run_demo(config: &Config) -> Result<(), Failure> {
    crate::util::log::detach();
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
            Some(path) => read_secret(path).map_err(Failure::config)?,
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
            client_limits(&config.limits),
        )
        .with_login_url(Endpoint::parse(&format!("{oauth_url}info")).expect("the demo URL is valid"));
        // The stand-in plays the Direct API too, unless checks are off.
        let direct_base = Endpoint::parse(&format!("{oauth_url}direct/json/v5/")).expect("the demo URL is valid");
        let direct = config.direct_url.as_ref().map(|_| {
            crate::oauth::direct::DirectClient::new(&direct_base, tls::ClientTls::ready(client_tls.clone()), client_limits(&config.limits))
        });
        let pair = tls::certified_key(vec![cert_der], key_der)
            .map_err(|why| Failure::runtime(StartupError::msg(format!("demo certificate: {why}"))))?;
        let keeper = Keeper::new(config, oauth, direct, TokenStore::new(dir.clone()));
        let app = App::assemble(
            config,
            keeper,
            Arc::new(CertResolver::new(pair, None)),
            Some(demo::Provider::new(client_id.clone(), secret, oauth_url.clone())),
            None,
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
