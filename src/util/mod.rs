//! The ground floor: small pieces every other floor uses, importing nothing
//! of the crate above them. Encodings (base64 and percent-encoding through
//! their crates, the strict query/form decoder by hand), secret values and
//! the OS's random bytes, the clock, the logger (by hand: one line per
//! event, journald priorities) and its bridge for h2's warnings, errors at
//! start, `https://` endpoints, `sd_notify` (by hand), and the counters
//! behind `/metrics` (the Prometheus text by hand).

pub mod encoding;
pub mod endpoint;
pub mod error;
pub mod log;
pub mod log_bridge;
pub mod metrics;
pub mod notify;
pub mod secret;
pub mod time;
