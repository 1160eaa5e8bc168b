//! Provider health counters: what `GET /api/admin/providers/health` reads. Written with
//! each usage entry, across all users, into time buckets of two granularities, per
//! provider and per `provider/model`. Every counter is additive, so a window is the sum
//! of its buckets and the report never reads an entry.
//!
//! Counters have names shared by both backends (a SQLite row per counter, a DynamoDB
//! attribute per counter): `successes`, `errors`, `cached`, `error:<class>` and one
//! latency bin per bound, `le_<ms>` and `le_inf`. Requests are not stored: every entry
//! is exactly one of success, error or cached.

use super::usage::{UsageEntry, UsageStatus};
use std::collections::BTreeMap;

/// Inclusive upper bounds (ms) of the latency bins, log-spaced; one more, open bin
/// holds anything slower. Changing them changes counter names: old buckets keep
/// their own bins, which are ignored when they no longer exist (they age out in a day).
pub const LATENCY_BOUNDS_MS: [u32; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
pub const LATENCY_BINS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The class counted for an error entry that carries no `error_type`.
pub const UNKNOWN_ERROR: &str = "unknown";

/// How long a bucket is. Minute buckets serve the 15-minute window, hour buckets the
/// 24-hour one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    Minute,
    Hour,
}

impl Granularity {
    pub const ALL: [Granularity; 2] = [Granularity::Minute, Granularity::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
        }
    }

    /// The start (Unix seconds) of the bucket holding the second `unix`. Buckets are
    /// aligned to the epoch, so to whole UTC minutes and hours.
    pub fn bucket_start(self, unix: i64) -> i64 {
        unix.div_euclid(self.seconds()) * self.seconds()
    }

    /// How long after its start a bucket is kept (SQLite purge, DynamoDB TTL): well past
    /// the window it serves, and no longer, since nothing else reads it.
    pub fn retention_secs(self) -> i64 {
        match self {
            Granularity::Minute => 3600,
            Granularity::Hour => 2 * 86_400,
        }
    }
}

/// The groups an entry counts in: its provider and its `provider/model` (a model id
/// alone is ambiguous: the same one is served by several providers).
pub fn health_groups(entry: &UsageEntry) -> [String; 2] {
    [
        format!("provider:{}", entry.provider),
        format!("model:{}/{}", entry.provider, entry.model),
    ]
}

/// The second an entry's buckets are chosen by: its timestamp (when the request
/// started). `None` for a timestamp that does not parse, which no writer produces.
pub fn entry_unix(entry: &UsageEntry) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&entry.timestamp)
        .ok()
        .map(|t| t.timestamp())
}

/// The bin of a latency: the first bound it does not exceed, else the open bin.
pub fn latency_bin(ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| ms <= f64::from(*b))
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

fn bin_name(i: usize) -> String {
    match LATENCY_BOUNDS_MS.get(i) {
        Some(b) => format!("le_{b}"),
        None => "le_inf".to_owned(),
    }
}

/// One group's counters, for one bucket or summed over many.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthCounters {
    pub successes: u64,
    pub errors: u64,
    pub cached: u64,
    /// Error entries by `error_type` ([`UNKNOWN_ERROR`] when it has none).
    pub errors_by_class: BTreeMap<String, u64>,
    /// Latency of the answers that went to a provider (successes and errors). Cache
    /// hits never reach one, so their latency says nothing about its health.
    pub latency: [u64; LATENCY_BINS],
}

impl HealthCounters {
    pub fn of(entry: &UsageEntry) -> Self {
        let mut c = HealthCounters::default();
        match entry.status {
            UsageStatus::Success => c.successes = 1,
            UsageStatus::Cached => c.cached = 1,
            UsageStatus::Error => {
                c.errors = 1;
                let class = entry.error_type.as_deref().unwrap_or(UNKNOWN_ERROR);
                c.errors_by_class.insert(class.to_owned(), 1);
            }
        }
        if entry.status != UsageStatus::Cached {
            c.latency[latency_bin(entry.latency_ms)] = 1;
        }
        c
    }

    /// Every entry is one request, counted under exactly one status.
    pub fn requests(&self) -> u64 {
        self.successes + self.errors + self.cached
    }

    pub fn add(&mut self, o: &HealthCounters) {
        self.successes += o.successes;
        self.errors += o.errors;
        self.cached += o.cached;
        for (class, n) in &o.errors_by_class {
            *self.errors_by_class.entry(class.clone()).or_default() += n;
        }
        for (mine, theirs) in self.latency.iter_mut().zip(o.latency) {
            *mine += theirs;
        }
    }

    /// The non-zero counters by name: what a write adds.
    pub fn named(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("successes".to_owned(), self.successes),
            ("errors".to_owned(), self.errors),
            ("cached".to_owned(), self.cached),
        ];
        out.extend(
            self.errors_by_class
                .iter()
                .map(|(class, n)| (format!("error:{class}"), *n)),
        );
        out.extend(
            self.latency
                .iter()
                .enumerate()
                .map(|(i, n)| (bin_name(i), *n)),
        );
        out.retain(|(_, n)| *n > 0);
        out
    }

    /// Adds a counter read back by name. A name this version does not know (a bin or
    /// counter of another version) is ignored rather than fatal.
    pub fn add_named(&mut self, name: &str, value: u64) {
        match name {
            "successes" => self.successes += value,
            "errors" => self.errors += value,
            "cached" => self.cached += value,
            _ => {
                if let Some(class) = name.strip_prefix("error:") {
                    *self.errors_by_class.entry(class.to_owned()).or_default() += value;
                } else if let Some(i) = (0..LATENCY_BINS).find(|i| bin_name(*i) == name) {
                    self.latency[i] += value;
                }
            }
        }
    }

    /// The latency percentile `p` (1..=100) by nearest rank, reported as the upper
    /// bound of the bin holding it: "at most this many ms". The open bin reports the
    /// last finite bound (30000: 30 s or more). `None` without a measured answer.
    pub fn latency_percentile_ms(&self, p: u64) -> Option<u32> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        // The 1-based rank of the percentile among `total` sorted latencies,
        // ceil(p * total / 100) in integers (no float edge at exact ranks).
        let rank = (p.saturating_mul(total).div_ceil(100)).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS_MS
                    .get(i)
                    .or(LATENCY_BOUNDS_MS.last())
                    .copied();
            }
        }
        LATENCY_BOUNDS_MS.last().copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use crate::store::conformance::usage_entry;

    fn with_latencies(ms: &[f64]) -> HealthCounters {
        let mut c = HealthCounters::default();
        for m in ms {
            c.latency[latency_bin(*m)] += 1;
        }
        c
    }

    #[test]
    fn latencies_fall_in_the_first_bin_they_do_not_exceed() {
        assert_eq!(latency_bin(0.0), 0);
        assert_eq!(latency_bin(5.0), 0, "bounds are inclusive");
        assert_eq!(latency_bin(5.01), 1);
        assert_eq!(latency_bin(999.9), 7);
        assert_eq!(latency_bin(30_000.0), 11);
        assert_eq!(latency_bin(30_000.5), 12, "the open bin");
        assert_eq!(latency_bin(f64::NAN), 12, "an unmeasurable latency is slow");
    }

    #[test]
    fn percentiles_are_the_upper_bound_of_the_bin_holding_the_nearest_rank() {
        assert_eq!(HealthCounters::default().latency_percentile_ms(50), None);
        let one = with_latencies(&[42.0]);
        assert_eq!(one.latency_percentile_ms(50), Some(50));
        assert_eq!(one.latency_percentile_ms(95), Some(50));
        // 10 answers: ranks 5 (p50) and 10 (p95 = ceil(9.5)).
        let ten = with_latencies(&[1., 2., 3., 4., 20., 30., 40., 60., 70., 400.]);
        assert_eq!(ten.latency_percentile_ms(50), Some(25));
        assert_eq!(ten.latency_percentile_ms(95), Some(500));
        // Rank 4 is the last of the first bin; rank 5 the first of the next.
        let edge = with_latencies(&[1., 1., 1., 1., 9., 9., 9., 9.]);
        assert_eq!(edge.latency_percentile_ms(50), Some(5));
        assert_eq!(edge.latency_percentile_ms(51), Some(10));
        // 20 answers, one slow outlier: p95 (rank 19) is not it, p100 is.
        let mut lat = vec![3.0; 19];
        lat.push(45_000.0);
        let tail = with_latencies(&lat);
        assert_eq!(tail.latency_percentile_ms(95), Some(5));
        assert_eq!(
            tail.latency_percentile_ms(100),
            Some(30_000),
            "the open bin"
        );
    }

    #[test]
    fn an_entry_counts_once_under_its_status() {
        let at = "2026-11-20T10:00:00.000Z";
        let ok = usage_entry("u", at, Provider::OpenAi, Some(1), UsageStatus::Success);
        let c = HealthCounters::of(&ok);
        assert_eq!((c.requests(), c.successes, c.latency[2]), (1, 1, 1));
        let mut err = usage_entry("u", at, Provider::OpenAi, Some(0), UsageStatus::Error);
        err.error_type = None;
        let c = HealthCounters::of(&err);
        assert_eq!((c.requests(), c.errors), (1, 1));
        assert_eq!(c.errors_by_class[UNKNOWN_ERROR], 1);
        let hit = usage_entry("u", at, Provider::OpenAi, Some(0), UsageStatus::Cached);
        let c = HealthCounters::of(&hit);
        assert_eq!((c.requests(), c.cached), (1, 1));
        assert_eq!(
            c.latency.iter().sum::<u64>(),
            0,
            "a cache hit is not provider latency"
        );
        assert_eq!(
            health_groups(&ok),
            [
                "provider:openai".to_owned(),
                "model:openai/gpt-4o".to_owned()
            ]
        );
    }

    #[test]
    fn named_counters_round_trip_and_unknown_names_are_ignored() {
        let at = "2026-11-20T10:00:00.000Z";
        let mut all = HealthCounters::default();
        for status in [
            UsageStatus::Success,
            UsageStatus::Error,
            UsageStatus::Cached,
        ] {
            let mut e = usage_entry("u", at, Provider::Anthropic, Some(0), status);
            e.latency_ms = 40_000.0;
            all.add(&HealthCounters::of(&e));
        }
        let names = all.named();
        assert!(names.contains(&("error:rate_limited".to_owned(), 1)));
        assert!(names.contains(&("le_inf".to_owned(), 2)));
        assert!(names.iter().all(|(_, n)| *n > 0));
        let mut back = HealthCounters::default();
        for (name, n) in &names {
            back.add_named(name, *n);
        }
        back.add_named("le_7", 3);
        back.add_named("p99_sketch", 1);
        assert_eq!(back, all);
    }

    #[test]
    fn buckets_align_to_utc_minutes_and_hours() {
        let t = 1_795_000_000; // 2026-11-18T11:06:40Z
        assert_eq!(Granularity::Minute.bucket_start(t), 1_794_999_960); // 11:06:00
        assert_eq!(Granularity::Hour.bucket_start(t), 1_794_999_600); // 11:00:00
        assert_eq!(
            Granularity::Minute.bucket_start(1_794_999_960),
            1_794_999_960
        );
        assert_eq!(Granularity::Minute.bucket_start(-1), -60);
    }
}
