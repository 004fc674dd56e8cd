//! Wall-clock helpers: one timestamp format everywhere (`2026-01-23T12:00:00.000Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_unix_ms() -> u64 {
    unix_ms(SystemTime::now())
}

pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The last millisecond of the year 9999: the latest time RFC 3339 can write. Later times
/// (only a corrupt value could hold one) are written as this one, never a panic.
pub const LATEST_UNIX_MS: u64 = 253_402_300_799_999;

pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(LATEST_UNIX_MS))
}

/// RFC 3339 in UTC with milliseconds, as in the tick line.
pub fn format_ts(time: SystemTime) -> String {
    // Truncate to whole milliseconds so that the text and the stored value agree exactly.
    let time = from_unix_ms(unix_ms(time));
    humantime::format_rfc3339_millis(time).to_string()
}

/// Parses what [`format_ts`] writes (and other RFC 3339 UTC forms).
pub fn parse_ts(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let t = from_unix_ms(1_769_169_600_123);
        let text = format_ts(t);
        assert_eq!(text, "2026-01-23T12:00:00.123Z");
        assert_eq!(parse_ts(&text), Some(t));
    }

    #[test]
    fn times_past_the_year_9999_are_written_as_its_end_not_a_panic() {
        let far = SystemTime::now() + Duration::from_secs(400_000 * 365 * 86_400);
        assert_eq!(format_ts(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_ts(from_unix_ms(u64::MAX)),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
