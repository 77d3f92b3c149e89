//! `GET /metrics` (with `--metrics`): counters in the Prometheus text
//! format, written by hand. Flows started, tokens stored, errors by kind,
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
        out
    }
}

/// The stored tokens by Direct status (`ok`, `error_58`, `unreachable`,
/// `unchecked`), read from the accounts' files: never a login.
pub fn direct_tokens(store: &crate::token_store::TokenStore) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (_, doc) in store.accounts().unwrap_or_default() {
        let label = doc
            .get("direct")
            .and_then(crate::direct::DirectCheck::from_json)
            .map_or_else(|| "unchecked".to_owned(), |check| check.label());
        *counts.entry(label).or_default() += 1;
    }
    let mut out = String::from(
        "# HELP yandex_token_direct_tokens Stored tokens by what the Direct API last said of them.\n\
         # TYPE yandex_token_direct_tokens gauge\n",
    );
    for (status, count) in counts {
        writeln!(out, "yandex_token_direct_tokens{{status=\"{status}\"}} {count}").ok();
    }
    out
}

/// The `notAfter` of a DER X.509 certificate, as a Unix time.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    validity(cert).map(|(_, not_after)| not_after)
}

/// The `notBefore` and `notAfter` of a DER X.509 certificate, as Unix
/// times. A small DER walk (Certificate -> TBSCertificate -> Validity)
/// rather than an X.509 crate: these are the only fields we read.
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (_, certificate, _) = der_element(cert)?;
    let (_, mut tbs, _) = der_element(certificate)?;
    // version [0] is optional; then serial, signature, issuer, validity.
    let (tag, _, rest) = der_element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..3 {
        tbs = der_element(tbs)?.2;
    }
    let (_, validity, _) = der_element(tbs)?;
    let (tag, time, after_not_before) = der_element(validity)?;
    let not_before = parse_time(tag, std::str::from_utf8(time).ok()?)?;
    let (tag, time, _) = der_element(after_not_before)?;
    Some((not_before, parse_time(tag, std::str::from_utf8(time).ok()?)?))
}

/// Splits one DER element off `input`: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..bytes {
            length = (length << 8) | usize::from(*input.get(2 + i)?);
        }
        (length, 2 + bytes)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) to a Unix time.
fn parse_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, time::Month::try_from(month).ok()?, day)
        .ok()?;
    let moment = date.with_hms(hour, minute, second).ok()?;
    Some(moment.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_read_from_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 2, 29);
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-15T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_941_840_000));
        assert_eq!(validity(cert.der()), Some((951_782_400, 1_941_840_000)));
    }

    #[test]
    fn both_time_formats_parse() {
        assert_eq!(parse_time(0x17, "700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, "20000229120000Z"), Some(951_825_600));
        assert_eq!(parse_time(0x17, "garbage"), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

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
