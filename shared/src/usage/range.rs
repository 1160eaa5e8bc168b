//! Time ranges of the usage routes: `start` inclusive, `end` exclusive, RFC 3339 or a
//! bare date (midnight UTC), compared as the text timestamps are stored.

use super::UsageError;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The longest range a query may span: the 13 months rollups are kept.
pub const MAX_RANGE_DAYS: i64 = 400;

pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Utc.from_utc_datetime(&t));
    }
    Err(UsageError::invalid(
        field,
        "must be an RFC 3339 time or a YYYY-MM-DD date",
    ))
}

impl Range {
    /// From optional `start` / `end`; by default the last `default_days` up to now.
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        default_days: i64,
        now: DateTime<Utc>,
    ) -> Result<Range, UsageError> {
        let end = match end {
            Some(e) => parse_time("end", e)?,
            None => now,
        };
        let start = match start {
            Some(s) => parse_time("start", s)?,
            None => end - Duration::days(default_days),
        };
        if start >= end {
            return Err(UsageError::invalid("start", "must be before end"));
        }
        if end - start > Duration::days(MAX_RANGE_DAYS) {
            return Err(UsageError::invalid(
                "start",
                format!("the range may span at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Range { start, end })
    }

    /// The default dashboard range: the last `days` whole days, today included, so that
    /// it is answered from rollups alone.
    pub fn last_days(days: i64, now: DateTime<Utc>) -> Range {
        Range {
            start: day_start(now) - Duration::days(days - 1),
            end: now,
        }
    }

    pub fn start_key(&self) -> String {
        super::timestamp(self.start)
    }

    pub fn end_key(&self) -> String {
        super::timestamp(self.end)
    }
}

/// Midnight UTC of a time's day.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let d = t.date_naive();
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

pub fn day_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_ranges() {
        let now = parse_time("x", "2026-11-22T10:30:00Z").unwrap();
        let r = Range::parse(None, None, 30, now).unwrap();
        assert_eq!(r.start_key(), "2026-10-23T10:30:00.000Z");
        let r = Range::parse(
            Some("2026-11-01"),
            Some("2026-11-02T06:00:00+02:00"),
            30,
            now,
        )
        .unwrap();
        assert_eq!(r.end_key(), "2026-11-02T04:00:00.000Z");
        assert!(Range::parse(Some("2026-11-05"), Some("2026-11-01"), 30, now).is_err());
        assert!(Range::parse(Some("yesterday"), None, 30, now).is_err());
        assert!(Range::parse(Some("2024-01-01"), Some("2026-01-01"), 30, now).is_err());
    }
}
