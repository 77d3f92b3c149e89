//! h2's warnings and errors into our log, at warning priority: h2 reports
//! through `tracing`, and without a subscriber they were lost. A subscriber
//! of forty lines instead of a logging framework: it takes events at WARN
//! and above, keeps only their message (capped; h2's messages name frames
//! and streams, never request data), and lets at most
//! [`LINES_PER_MINUTE`] through, so a misbehaving peer cannot flood the
//! journal. Everything below WARN is switched off at its call site.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, Metadata, Subscriber};

/// Lines let through per minute; the rest are counted and reported.
const LINES_PER_MINUTE: u64 = 10;

/// The subscriber; installed once by [`install`].
struct Bridge {
    /// The minute (since start) of the current window, and lines in it.
    window: AtomicU64,
    lines: AtomicU64,
    suppressed: AtomicU64,
    started: std::time::Instant,
}

/// Makes h2's warnings reach [`crate::util::log`]; later calls do nothing.
pub fn install() {
    let bridge = Bridge {
        window: AtomicU64::new(0),
        lines: AtomicU64::new(0),
        suppressed: AtomicU64::new(0),
        started: std::time::Instant::now(),
    };
    tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(bridge)).ok();
}

impl Bridge {
    /// Whether one more line fits in this minute's budget.
    fn admit(&self) -> bool {
        let minute = self.started.elapsed().as_secs() / 60;
        if self.window.swap(minute, Ordering::Relaxed) != minute {
            let dropped = self.suppressed.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                crate::warn!("h2: {dropped} more warnings in the last minute were not logged");
            }
            self.lines.store(0, Ordering::Relaxed);
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) < LINES_PER_MINUTE {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The event's `message` field, at most 200 characters.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            write!(self.0, "{value:?}").ok();
            if let Some((end, _)) = self.0.char_indices().nth(200) {
                self.0.truncate(end);
            }
        }
    }
}

impl Subscriber for Bridge {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) { Interest::always() } else { Interest::never() }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<tracing_core::LevelFilter> {
        Some(tracing_core::LevelFilter::WARN)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if !self.admit() {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let target = event.metadata().target();
        match *event.metadata().level() {
            Level::ERROR => crate::error!("{target}: {}", message.0),
            _ => crate::warn!("{target}: {}", message.0),
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
