//! `serve`: load everything, take systemd's sockets or bind our own, serve
//! until SIGTERM/SIGINT.

use std::net::TcpListener;
use std::sync::Arc;

use super::{Failure, bind, runtime};
use crate::config::Config;
use crate::http::app::App;
use crate::http::server::{self, Listeners};
use crate::ops::{signals, systemd};
use crate::util::error::StartupError;

/// `serve`: load everything, take systemd's sockets or bind our own, serve
/// until SIGTERM/SIGINT.
pub(crate) fn serve(config: &Config) -> Result<(), Failure> {
    crate::util::log_bridge::install();
    // Before any thread exists: this clears the LISTEN_* variables.
    let activated = systemd::take_listeners(config.activation.as_ref()).map_err(Failure::config)?;
    // From here on a stalled journal cannot block the runtime's thread.
    crate::util::log::detach();
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
            crate::ops::acme::Manager::new(
                settings,
                app.keeper.store.dir(),
                app.certs.clone(),
                &config.limits,
            )
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
pub(crate) async fn serve_on(listeners: Listeners, app: Arc<App>) -> Result<(), Failure> {
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
        // Now, and every few minutes for what other processes (refresh,
        // status) changed; logins here recount as they store.
        let keeper = app.keeper.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
            loop {
                every.tick().await;
                keeper.recount().await;
            }
        });
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
