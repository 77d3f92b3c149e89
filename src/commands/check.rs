//! `check`: every file and value the server needs, each reported as fine
//! or as the problem; exit 0 or 1.

use std::process::ExitCode;

use crate::config::Config;
use crate::keeper::read_secret;
use crate::keeper::token_store;
use crate::tls;

/// `check`: every file and value the server needs, each reported; exit 1
/// if any is wrong.
pub fn check(config: &Config) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let mut fine: Vec<String> = Vec::new();
    match &config.client_id {
        Some(id) => fine.push(format!("client id {id}")),
        None => problems.push("no client id: pass --client-id or set YANDEX_TOKEN_CLIENT_ID".into()),
    }
    match &config.client_secret_file {
        Some(path) => match read_secret(path) {
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
