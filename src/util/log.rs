//! A tiny stderr logger: one line per event, written with a single `write`
//! so lines from different threads never interleave. Under journald
//! (`JOURNAL_STREAM` set at start) each line starts with a `<N>` syslog
//! priority so `journalctl -p` works. Callers pass only what is safe to log:
//! never a secret, a code, a state or a token.
//!
//! The terminal commands write each line at once. The server calls
//! [`detach`]: from then on a line is only copied into a bounded buffer
//! (a short lock, no I/O), and a thread of its own writes it out, so a
//! journal that stalls never blocks the runtime's thread and the accept
//! loop on it. Access-log lines are batched there (one `write` per 50 ms or
//! 16 KiB); other lines wake the writer at once. Past 1 MiB of lines not
//! yet written, new ones are dropped and counted, and the count is logged
//! when the writer catches up.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

static JOURNAL_PREFIX: AtomicBool = AtomicBool::new(false);

/// The process's logger.
static LOGGER: Logger = Logger::new(1 << 20);

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

/// Lines not yet written.
#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    /// Lines dropped since the last write, for want of room.
    dropped: u64,
    /// A line that should not wait for the batch.
    urgent: bool,
    /// The writer holds a batch it has not finished writing.
    in_flight: bool,
}

/// The buffer, the writer's wake-up, and whether a writer thread runs.
#[derive(Debug)]
struct Logger {
    pending: Mutex<Pending>,
    wake: Condvar,
    detached: AtomicBool,
    cap: usize,
}

impl Logger {
    const fn new(cap: usize) -> Logger {
        Logger {
            pending: Mutex::new(Pending { lines: Vec::new(), dropped: 0, urgent: false, in_flight: false }),
            wake: Condvar::new(),
            detached: AtomicBool::new(false),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds a line; `urgent` wakes the writer now. Without a writer
    /// thread, writes everything to `sink` at once.
    fn add(&self, level: Level, urgent: bool, text: impl FnOnce(&mut Vec<u8>), sink: impl FnOnce(&[u8])) {
        let mut pending = self.lock();
        let start = pending.lines.len();
        push_line(&mut pending.lines, level, text);
        if pending.lines.len() > self.cap {
            pending.lines.truncate(start);
            pending.dropped += 1;
            return;
        }
        if !self.detached.load(Ordering::Acquire) {
            sink(&pending.lines);
            pending.lines.clear();
            return;
        }
        if urgent || pending.lines.len() >= BATCH_BYTES {
            pending.urgent = true;
        }
        if start == 0 || pending.urgent {
            self.wake.notify_all();
        }
    }

    /// The writer thread's loop: waits for lines, lets a batch gather for
    /// up to [`BATCH_DELAY`] unless one is urgent, then writes it out of
    /// the lock.
    fn write_forever(&self, sink: &mut dyn Write) {
        loop {
            let mut pending = self.lock();
            while pending.lines.is_empty() && pending.dropped == 0 {
                pending = self.wake.wait(pending).unwrap_or_else(|poison| poison.into_inner());
            }
            if !pending.urgent {
                pending = self
                    .wake
                    .wait_timeout_while(pending, BATCH_DELAY, |pending| !pending.urgent)
                    .unwrap_or_else(|poison| poison.into_inner())
                    .0;
            }
            let lines = std::mem::take(&mut pending.lines);
            let dropped = std::mem::take(&mut pending.dropped);
            pending.urgent = false;
            pending.in_flight = true;
            drop(pending);
            sink.write_all(&lines).ok();
            if dropped > 0 {
                let mut notice = Vec::new();
                push_line(&mut notice, Level::Warn, |out| {
                    write!(out, "{dropped} log lines were dropped: stderr did not keep up").ok();
                });
                sink.write_all(&notice).ok();
            }
            self.lock().in_flight = false;
            self.wake.notify_all();
        }
    }

    /// Writes out whatever waits, in the calling thread, after the
    /// writer's batch in flight (for at most a second: an exit must not
    /// hang on a stalled stderr).
    fn flush(&self, sink: impl FnOnce(&[u8])) {
        let pending = self.lock();
        let (mut pending, _) = self
            .wake
            .wait_timeout_while(pending, Duration::from_secs(1), |pending| pending.in_flight)
            .unwrap_or_else(|poison| poison.into_inner());
        if !pending.lines.is_empty() {
            sink(&pending.lines);
            pending.lines.clear();
        }
    }
}

/// Chooses the line format once, at start: journald priority prefixes when
/// stderr is connected to the journal.
pub fn init(journal: bool) {
    JOURNAL_PREFIX.store(journal, Ordering::Relaxed);
}

/// Hands the writing to a thread of its own (the server, once at start):
/// logging never blocks the caller on stderr again.
pub fn detach() {
    static WRITER: OnceLock<()> = OnceLock::new();
    WRITER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| LOGGER.write_forever(&mut std::io::stderr()));
        if spawned.is_ok() {
            LOGGER.detached.store(true, Ordering::Release);
        }
    });
}

/// Writes one line at `level` (after any batched access lines, to keep
/// the order). Errors writing to stderr are ignored: there is nowhere else
/// to report them.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    LOGGER.add(
        level,
        true,
        |out| {
            out.write_fmt(args).ok();
        },
        to_stderr,
    );
}

/// Adds an access-log line at `level` to the batch (see the module doc):
/// `text` appends it, without the newline. The per-request line is built from its
/// pieces; through `fmt` it cost three times as many instructions.
pub fn access(level: Level, text: impl FnOnce(&mut Vec<u8>)) {
    LOGGER.add(level, false, text, to_stderr);
}

/// Writes out batched lines in the calling thread; called at exit.
pub fn flush() {
    LOGGER.flush(to_stderr);
}

fn to_stderr(lines: &[u8]) {
    std::io::stderr().lock().write_all(lines).ok();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Instant;

    /// A stderr that hangs until told to go on, as a stalled journal does.
    struct Stalled {
        go: mpsc::Receiver<()>,
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.go.recv().ok();
            self.seen.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_never_blocks_a_caller_and_drops_are_counted() {
        let logger: &'static Logger = Box::leak(Box::new(Logger::new(4096)));
        logger.detached.store(true, Ordering::Release);
        let (go, wait) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut sink = Stalled { go: wait, seen: seen.clone() };
        std::thread::spawn(move || logger.write_forever(&mut sink));
        let started = Instant::now();
        for n in 0..2000 {
            logger.add(Level::Info, n % 100 == 0, |out| write!(out, "line {n}").unwrap(), |_| unreachable!());
        }
        // 2000 lines while nothing is written: each only took the lock.
        assert!(started.elapsed() < Duration::from_secs(5), "logging blocked: {:?}", started.elapsed());
        assert!(logger.lock().dropped > 0, "the buffer is bounded");
        for _ in 0..1000 {
            go.send(()).ok();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("log lines were dropped") {
            assert!(Instant::now() < deadline, "the drop count never came out");
            go.send(()).ok();
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert!(text.lines().all(|line| line.starts_with("line ") || line.contains("dropped")), "{text}");
    }
}
