//! The `yandex-token` binary: parse the command line once, run one command,
//! turn the outcome into an exit status. All logic lives in the library.

use std::process::ExitCode;

use yandex_token::{commands, config};

fn main() -> ExitCode {
    let invocation = match config::parse(std::env::args_os().skip(1), |name| std::env::var(name).ok()) {
        Ok(invocation) => invocation,
        Err(err) => {
            eprintln!("yandex-token: {err}");
            eprintln!("Try 'yandex-token --help'.");
            return ExitCode::from(commands::EXIT_USAGE);
        }
    };
    commands::run(invocation)
}
