//! `yandex-token exec [--login L] -- COMMAND [ARGS…]`: runs a program with
//! the token in its environment (`YANDEX_DIRECT_TOKEN`, and the client
//! login as `YANDEX_DIRECT_LOGIN`), in place of this process: same PID, so
//! signals and the exit status pass straight through. The token is in no
//! file of the program's and on no command line (as aws-vault's `exec` and
//! 1Password's `run`). It reads the store; it never writes it.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use crate::commands::tokens::{Target, client_login, named_target};
use crate::config::Config;
use crate::keeper::token_store;
use crate::util::time::{date, now_unix};

/// Exit status when the program cannot be found (as shells say it).
const EXIT_NOT_FOUND: u8 = 127;
/// Exit status when the program was found but cannot be run.
const EXIT_NOT_RUN: u8 = 126;

/// Runs `exec`. Returns only when the program could not be started, or
/// there is no usable token (exit 1, the program never runs).
pub fn run(config: &Config) -> ExitCode {
    let Target { label: whose, doc, .. } = match named_target(&token_store(config), config.login.as_deref()) {
        Ok(target) => target,
        Err(why) => {
            crate::error!("{why}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(at) = doc.expires_at().filter(|at| *at <= now_unix()) {
        crate::error!("the token of {whose} expired on {}: log in again, then run this again", date(at));
        return ExitCode::FAILURE;
    }
    let Some(client_login) = client_login(&doc) else {
        crate::error!(
            "the client login of {whose} is not known yet: run yandex-token status to ask the Direct API"
        );
        return ExitCode::FAILURE;
    };
    let (program, args) = config.program.split_first().expect("the parser requires a program");
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env("YANDEX_DIRECT_TOKEN", &doc.access_token)
        .env("YANDEX_DIRECT_LOGIN", &client_login);
    crate::util::log::flush();
    // Returns only on failure: otherwise this process is the program now.
    let err = command.exec();
    crate::error!("cannot run {}: {err}", program.to_string_lossy());
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_NOT_RUN })
}
