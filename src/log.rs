//! A tiny stderr logger: one line per event, written with a single `write`
//! so lines from different threads never interleave. Under journald
//! (`JOURNAL_STREAM` set at start) each line starts with a `<N>` syslog
//! priority so `journalctl -p` works. Callers pass only what is safe to log:
//! never a secret, a code, a state or a token.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JOURNAL_PREFIX: AtomicBool = AtomicBool::new(false);

/// How serious a line is; maps to syslog priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed and needs an operator.
    Error,
    /// Something odd that the server survived.
    Warn,
    /// Normal operation, including the access log.
    Info,
}

impl Level {
    fn priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
        }
    }
}

/// Chooses the line format once, at start: journald priority prefixes when
/// stderr is connected to the journal.
pub fn init(journal: bool) {
    JOURNAL_PREFIX.store(journal, Ordering::Relaxed);
}

/// Writes one line at `level`. Errors writing to stderr are ignored: there is
/// nowhere else to report them.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut line = String::with_capacity(96);
    if JOURNAL_PREFIX.load(Ordering::Relaxed) {
        line.push_str(&format!("<{}>", level.priority()));
    }
    line.push_str(level.label());
    fmt::write(&mut line, args).ok();
    line.push('\n');
    std::io::stderr().lock().write_all(line.as_bytes()).ok();
}

/// Logs at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// Logs at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) };
}
