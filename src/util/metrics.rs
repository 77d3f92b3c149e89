//! The server's counters and their Prometheus text (written by hand: the
//! format is a few lines, smaller and clearer than a crate). Flows started, tokens stored, errors by kind,
//! token-endpoint latency, open connections and the certificate's expiry:
//! never a login, a token or anything else from a request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 9] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The server's counters. Cheap to update: atomics, one short lock for
/// errors.
#[derive(Debug, Default)]
pub struct Metrics {
    flows_started: AtomicU64,
    tokens_stored: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    connections_open: AtomicI64,
    certificate_not_after: AtomicI64,
    /// Stored tokens by Direct status, as last counted: a scrape never
    /// reads the token files.
    direct_tokens: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// A redirect to the provider was sent.
    pub fn flow_started(&self) {
        self.flows_started.fetch_add(1, Ordering::Relaxed);
    }

    /// A token reached the store.
    pub fn token_stored(&self) {
        self.tokens_stored.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended in an error of this kind (see `AppError::kind`).
    pub fn error(&self, kind: &'static str) {
        *self.errors.lock().unwrap_or_else(|poison| poison.into_inner()).entry(kind).or_default() += 1;
    }

    /// One call to the token or login endpoint took `elapsed`.
    pub fn upstream_latency(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.connections_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// The served certificate expires at this Unix time.
    pub fn certificate_expires(&self, not_after: i64) {
        self.certificate_not_after.store(not_after, Ordering::Relaxed);
    }

    /// The stored tokens by Direct status, counted by whoever last looked
    /// at the store (a login, the periodic recount).
    pub fn set_direct_tokens(&self, counts: BTreeMap<String, u64>) {
        *self.direct_tokens.lock().unwrap_or_else(|poison| poison.into_inner()) = counts;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}").ok();
        };
        counter(
            &mut out,
            "yandex_token_flows_started_total",
            "Redirects to the authorize page.",
            self.flows_started.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "yandex_token_tokens_stored_total",
            "Tokens written to the token store.",
            self.tokens_stored.load(Ordering::Relaxed),
        );
        out.push_str("# HELP yandex_token_errors_total Requests answered with an error, by kind.\n");
        out.push_str("# TYPE yandex_token_errors_total counter\n");
        for (kind, count) in self.errors.lock().unwrap_or_else(|poison| poison.into_inner()).iter() {
            writeln!(out, "yandex_token_errors_total{{kind=\"{kind}\"}} {count}").ok();
        }
        out.push_str(
            "# HELP yandex_token_upstream_seconds Time of calls to the token and login endpoints.\n",
        );
        out.push_str("# TYPE yandex_token_upstream_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            writeln!(
                out,
                "yandex_token_upstream_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            )
            .ok();
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        writeln!(out, "yandex_token_upstream_seconds_bucket{{le=\"+Inf\"}} {count}").ok();
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        writeln!(out, "yandex_token_upstream_seconds_sum {sum}\nyandex_token_upstream_seconds_count {count}")
            .ok();
        writeln!(
            out,
            "# HELP yandex_token_connections_open Connections open now.\n# TYPE yandex_token_connections_open gauge\nyandex_token_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        )
        .ok();
        writeln!(
            out,
            "# HELP yandex_token_certificate_expiry_seconds When the served certificate expires (Unix time).\n# TYPE yandex_token_certificate_expiry_seconds gauge\nyandex_token_certificate_expiry_seconds {}",
            self.certificate_not_after.load(Ordering::Relaxed)
        )
        .ok();
        out.push_str(&direct_tokens(&self.direct_tokens.lock().unwrap_or_else(|poison| poison.into_inner())));
        out
    }
}

/// The stored tokens by Direct status (`ok`, `error_58`, `unreachable`,
/// `unchecked`), as the store counted them: never a login.
fn direct_tokens(counts: &BTreeMap<String, u64>) -> String {
    let mut out = String::from(
        "# HELP yandex_token_direct_tokens Stored tokens by what the Direct API last said of them.\n\
         # TYPE yandex_token_direct_tokens gauge\n",
    );
    for (status, count) in counts {
        writeln!(out, "yandex_token_direct_tokens{{status=\"{status}\"}} {count}").ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_every_series() {
        let metrics = Metrics::default();
        metrics.flow_started();
        metrics.token_stored();
        metrics.error("bad_state");
        metrics.upstream_latency(Duration::from_millis(30));
        metrics.connections(1);
        let text = metrics.render();
        for line in [
            "yandex_token_flows_started_total 1",
            "yandex_token_tokens_stored_total 1",
            "yandex_token_errors_total{kind=\"bad_state\"} 1",
            "yandex_token_upstream_seconds_bucket{le=\"0.025\"} 0",
            "yandex_token_upstream_seconds_bucket{le=\"0.05\"} 1",
            "yandex_token_upstream_seconds_count 1",
            "yandex_token_connections_open 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
