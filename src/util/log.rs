//! A tiny stderr logger: one line per event, written with a single `write`
//! so lines from different threads never interleave. Access-log lines are
//! batched: they collect in a buffer that is written when it fills, 50 ms
//! after its first line, before any other line, and at exit, so a busy
//! server makes one `write` per batch instead of one per request. Under journald
//! (`JOURNAL_STREAM` set at start) each line starts with a `<N>` syslog
//! priority so `journalctl -p` works. Callers pass only what is safe to log:
//! never a secret, a code, a state or a token.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static JOURNAL_PREFIX: AtomicBool = AtomicBool::new(false);

/// Access-log lines not yet written.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Written at once past this many bytes.
const BATCH_BYTES: usize = 16 * 1024;
/// The longest an access-log line waits.
const BATCH_DELAY: Duration = Duration::from_millis(50);

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

/// Writes one line at `level` now (after any batched access lines, to keep
/// the order). Errors writing to stderr are ignored: there is nowhere else
/// to report them.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut pending = lock_pending();
    push_line(&mut pending, level, |out| {
        out.write_fmt(args).ok();
    });
    write_out(&mut pending);
}

/// Adds an access-log line at `level` to the batch (see the module doc):
/// `text` appends it, without the newline. The per-request line is built from its
/// pieces; through `fmt` it cost three times as many instructions.
pub fn access(level: Level, text: impl FnOnce(&mut Vec<u8>)) {
    let mut pending = lock_pending();
    let first = pending.is_empty();
    push_line(&mut pending, level, text);
    if pending.len() >= BATCH_BYTES {
        write_out(&mut pending);
    } else if first {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async {
                    tokio::time::sleep(BATCH_DELAY).await;
                    flush();
                });
            }
            Err(_) => write_out(&mut pending),
        }
    }
}

/// Writes out batched access lines; called at exit.
pub fn flush() {
    write_out(&mut lock_pending());
}

/// Appends one line to `out`, the batch itself: `text` writes it, and no
/// line is built on its own first.
fn push_line(out: &mut Vec<u8>, level: Level, text: impl FnOnce(&mut Vec<u8>)) {
    if JOURNAL_PREFIX.load(Ordering::Relaxed) {
        write!(out, "<{}>", level.priority()).ok();
    }
    out.extend_from_slice(level.label().as_bytes());
    text(out);
    out.push(b'\n');
}

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<u8>> {
    PENDING.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        std::io::stderr().lock().write_all(pending).ok();
        pending.clear();
        if pending.capacity() > 4 * BATCH_BYTES {
            pending.shrink_to(BATCH_BYTES);
        }
    }
}

/// Logs at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::util::log::write($crate::util::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::util::log::write($crate::util::log::Level::Warn, format_args!($($arg)*)) };
}

/// Logs at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::util::log::write($crate::util::log::Level::Error, format_args!($($arg)*)) };
}
