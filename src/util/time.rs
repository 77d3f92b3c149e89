//! The wall clock in the two forms the token store and its readers use:
//! Unix seconds, and `YYYY-MM-DD` (by the `time` crate).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the clock of `obtained_at` and expiries.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn date(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|unix| time::OffsetDateTime::from_unix_timestamp(unix).ok())
        .map_or_else(|| "9999-12-31".to_owned(), |moment| moment.date().to_string())
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_553_595), "2026-11-24");
    }
}
