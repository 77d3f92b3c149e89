//! Process signals: SIGTERM or SIGINT end the server gracefully; SIGHUP
//! reloads the certificate, key and client secret without dropping a
//! connection. Handlers are installed before the server starts, so an early
//! signal is never lost to the default action.

use std::io;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::http::app::App;

/// Installs the SIGTERM/SIGINT handlers and returns a future that resolves
/// on the first of them.
pub fn shutdown() -> io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        crate::info!("{name} received: stopping");
    })
}

/// Installs the SIGHUP handler and returns the loop that reloads `app` on
/// each SIGHUP, logging what was reloaded and what was kept and why.
pub fn reload_on_hangup(app: Arc<App>) -> io::Result<impl Future<Output = ()>> {
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hup.recv().await.is_some() {
            app.notify.reloading();
            let errors = app.reload();
            if app.certs.pending() {
                // Not ready before (waiting for ACME): stay that way.
                app.notify.status("SIGHUP: client secret reloaded; still waiting for the certificate");
                errors.iter().for_each(|err| crate::error!("SIGHUP: reload failed: {err}"));
            } else if errors.is_empty() {
                crate::info!("SIGHUP: certificate, key and client secret reloaded");
                app.notify.ready("serving; configuration reloaded");
            } else {
                for err in &errors {
                    crate::error!("SIGHUP: reload failed, still serving the previous one: {err}");
                }
                // Still serving, with the old pair: ready again, and say so.
                app.notify.ready("serving; the last reload failed, see the journal");
            }
        }
    })
}
