//! The commands: [`run`] dispatches, and each command turns its outcome
//! into an exit status. Messages go to stderr; stdout carries only what
//! scripts read (`show`, `list`, `status`, the URL of `login`).
//!
//! What lives here: `serve` ([`serve`]), `demo` ([`demo`]), `check`
//! ([`check`]), `show`, `list` and `refresh` ([`tokens`]), `status`
//! ([`status`]), `login` and `device` ([`terminal`]), `revoke`
//! ([`revoke`]), `exec` ([`exec`]), and the row `list` and `status`
//! print (`rows`). Commands
//! are wired by `keeper::Keeper`; only `serve` and `demo` import `http`.

pub mod check;
pub mod demo;
pub mod exec;
pub mod revoke;
mod rows;
pub mod serve;
pub mod status;
pub mod terminal;
pub mod tokens;

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use crate::config::{Command, Invocation, help_text};
use crate::util::error::StartupError;

/// Bad command line: do not restart, fix the unit.
pub const EXIT_USAGE: u8 = 2;
/// Unusable configuration (sysexits' EX_CONFIG): a unit can exclude it from
/// restarts with `RestartPreventExitStatus=78`.
pub const EXIT_CONFIG: u8 = 78;

/// A failure and the exit status it maps to.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: StartupError,
}

impl Failure {
    pub(crate) fn config(error: StartupError) -> Failure {
        Failure { code: EXIT_CONFIG, error }
    }

    pub(crate) fn runtime(error: StartupError) -> Failure {
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
        Command::Serve => serve::serve(&config),
        Command::Demo => demo::run_demo(&config),
        Command::Refresh => tokens::refresh(&config),
        Command::Check => return check::check(&config),
        Command::Show => return tokens::show(&config),
        Command::List => return tokens::list(&config),
        Command::Status => return status::run(&config),
        Command::Login => return terminal::login(&config),
        Command::Device => return terminal::device(&config),
        Command::Revoke => return revoke::run(&config),
        Command::Exec => return exec::run(&config),
    };
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            crate::error!("{}", failure.error);
            ExitCode::from(failure.code)
        }
    };
    // Last: the server's log lines go out through a thread of its own.
    crate::util::log::flush();
    code
}

/// The single-threaded runtime every command runs its I/O on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::runtime(StartupError::with("cannot start the async runtime", err)))
}

/// Binds `addr` with a deep accept queue (the kernel caps it at
/// `net.core.somaxconn`): under a connection flood, a user's SYN must wait
/// in the queue, not be dropped and retried a second later.
pub(crate) fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, Failure> {
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
