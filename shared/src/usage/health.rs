//! Provider health for admins (`GET /api/admin/providers/health`): per provider and per
//! `provider/model`, over the last 15 minutes and the last 24 hours, read from the health
//! buckets ([`crate::store::health`]) and never from entries, so its cost is a fixed
//! number of small reads whatever the traffic.
//!
//! Windows are bucket-aligned: "15m" is the last 15 minute buckets, the current
//! (partial) one included, so it covers between 14 and 15 minutes of the past; "24h" is
//! the last 24 hour buckets, likewise between 23 and 24 hours. Each window reports the
//! exact span it covers.

use super::UsageError;
use crate::store::UsageStore;
use crate::store::health::{Granularity, HealthCounters};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A reported window: this many buckets of this granularity, ending with the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub name: &'static str,
    pub granularity: Granularity,
    pub buckets: i64,
}

pub const WINDOWS: [Window; 2] = [
    Window {
        name: "15m",
        granularity: Granularity::Minute,
        buckets: 15,
    },
    Window {
        name: "24h",
        granularity: Granularity::Hour,
        buckets: 24,
    },
];

impl Window {
    /// The window's span `[start, end)` in Unix seconds: from the start of its first
    /// bucket to the end of the current one.
    pub fn span(&self, now_unix: i64) -> (i64, i64) {
        let len = self.granularity.seconds();
        let current = self.granularity.bucket_start(now_unix);
        (current - (self.buckets - 1) * len, current + len)
    }
}

/// One group's health over a window. Rates are in 0..1 and `null` without requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    pub requests: u64,
    /// Successes and cache hits over requests: a cached answer is a request answered.
    pub success_rate: Option<f64>,
    pub cache_hit_rate: Option<f64>,
    /// The upper bound of the latency bin holding the percentile (see
    /// [`HealthCounters::latency_percentile_ms`]); cache hits are not measured.
    pub latency_p50_ms: Option<u32>,
    pub latency_p95_ms: Option<u32>,
    /// Error entries by class (`error_type`, `unknown` without one).
    pub errors: BTreeMap<String, u64>,
}

impl HealthView {
    pub fn of(c: &HealthCounters) -> Self {
        let requests = c.requests();
        let rate = |n: u64| (requests > 0).then(|| n as f64 / requests as f64);
        HealthView {
            requests,
            success_rate: rate(c.successes + c.cached),
            cache_hit_rate: rate(c.cached),
            latency_p50_ms: c.latency_percentile_ms(50),
            latency_p95_ms: c.latency_percentile_ms(95),
            errors: c.errors_by_class.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    /// The span the window covers, `[start, end)`, RFC 3339.
    pub start: String,
    pub end: String,
    /// By provider (`openai`) and by provider and model (`openai/gpt-4o`).
    pub providers: BTreeMap<String, HealthView>,
    pub models: BTreeMap<String, HealthView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub generated_at: String,
    pub windows: BTreeMap<&'static str, WindowView>,
}

fn rfc3339(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map(super::timestamp)
        .unwrap_or_default()
}

/// Splits summed group counters into the provider and model views.
fn window_view(groups: &BTreeMap<String, HealthCounters>, span: (i64, i64)) -> WindowView {
    let mut view = WindowView {
        start: rfc3339(span.0),
        end: rfc3339(span.1),
        providers: BTreeMap::new(),
        models: BTreeMap::new(),
    };
    for (group, counters) in groups {
        if let Some(p) = group.strip_prefix("provider:") {
            view.providers
                .insert(p.to_owned(), HealthView::of(counters));
        } else if let Some(m) = group.strip_prefix("model:") {
            view.models.insert(m.to_owned(), HealthView::of(counters));
        }
    }
    view
}

/// The report at `now`: one store read per window.
pub async fn report(
    usage: &dyn UsageStore,
    now: DateTime<Utc>,
) -> Result<HealthReport, UsageError> {
    let mut windows = BTreeMap::new();
    for w in WINDOWS {
        let (start, end) = w.span(now.timestamp());
        let groups = usage.health(w.granularity, start, end - 1).await?;
        windows.insert(w.name, window_view(&groups, (start, end)));
    }
    Ok(HealthReport {
        generated_at: super::timestamp(now),
        windows,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_last_buckets_including_the_current_one() {
        // 2026-11-18T11:06:40Z
        let now = 1_795_000_000;
        let (start, end) = WINDOWS[0].span(now);
        assert_eq!(rfc3339(start), "2026-11-18T10:52:00.000Z");
        assert_eq!(rfc3339(end), "2026-11-18T11:07:00.000Z");
        assert_eq!((end - start) / 60, 15);
        let (start, end) = WINDOWS[1].span(now);
        assert_eq!(rfc3339(start), "2026-11-17T12:00:00.000Z");
        assert_eq!(rfc3339(end), "2026-11-18T12:00:00.000Z");
        // On a bucket's first second, the new bucket is already the current one.
        let (start, _) = WINDOWS[0].span(1_794_999_960);
        assert_eq!(rfc3339(start), "2026-11-18T10:52:00.000Z");
        let (start, _) = WINDOWS[0].span(1_794_999_959);
        assert_eq!(rfc3339(start), "2026-11-18T10:51:00.000Z");
    }

    #[test]
    fn rates_count_cache_hits_as_answered_and_are_null_without_requests() {
        let mut c = HealthCounters {
            successes: 6,
            errors: 3,
            cached: 1,
            ..Default::default()
        };
        c.errors_by_class.insert("server_error".into(), 2);
        c.errors_by_class.insert("rate_limited".into(), 1);
        c.latency[0] = 9;
        let v = HealthView::of(&c);
        assert_eq!(v.requests, 10);
        assert_eq!(v.success_rate, Some(0.7));
        assert_eq!(v.cache_hit_rate, Some(0.1));
        assert_eq!((v.latency_p50_ms, v.latency_p95_ms), (Some(5), Some(5)));
        assert_eq!(v.errors["server_error"], 2);
        let empty = HealthView::of(&HealthCounters::default());
        assert_eq!(empty.requests, 0);
        assert_eq!((empty.success_rate, empty.latency_p50_ms), (None, None));
        let json = serde_json::to_value(&empty).unwrap();
        assert!(json["success_rate"].is_null() && json["cache_hit_rate"].is_null());
    }
}
