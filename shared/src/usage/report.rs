//! What the dashboard routes compute. Summaries read one rollup item per whole day of the
//! range and raw entries only for the partial days at its edges, so their cost grows
//! with the number of days, never with the number of requests.

use super::range::{Range, day_key, day_start};
use super::{DailyRollup, Totals, UsageEntry, rollup_keys};
use crate::money::NanoUsd;
use crate::store::{StoreError, UsageStore};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How much was read to answer: the benchmark reports it, a test bounds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    pub rollup_days: usize,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupView {
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: NanoUsd,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub total_requests: u64,
    pub total_tokens: u64,
    pub total_cost_usd: NanoUsd,
    pub avg_cost_per_request: NanoUsd,
    pub success_rate: f64,
    pub cache_hit_rate: f64,
    pub avg_latency_ms: f64,
    /// Requests whose model had no known price: their cost is not in the totals.
    pub unpriced_requests: u64,
    pub by_provider: BTreeMap<String, GroupView>,
    pub by_operation: BTreeMap<String, GroupView>,
    pub by_model: BTreeMap<String, GroupView>,
}

/// Reads every entry of `[start, end)`, newest first, skipping expired ones.
pub async fn scan_entries(
    usage: &dyn UsageStore,
    user_id: &str,
    start: &str,
    end: &str,
    now_unix: i64,
    mut visit: impl FnMut(&UsageEntry),
) -> Result<usize, StoreError> {
    let mut before: Option<String> = None;
    let mut read = 0;
    loop {
        let (page, next) = usage
            .entries(user_id, start, end, 1000, before.as_deref())
            .await?;
        read += page.len();
        for e in page.iter().filter(|e| e.ttl > now_unix) {
            visit(e);
        }
        match next {
            Some(n) => before = Some(n),
            None => return Ok(read),
        }
    }
}

/// Group totals over a range: rollups for whole days, entries for partial ones.
pub async fn group_totals(
    usage: &dyn UsageStore,
    user_id: &str,
    range: &Range,
    now_unix: i64,
) -> Result<(BTreeMap<String, Totals>, ReadStats), StoreError> {
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut stats = ReadStats::default();
    let add_entry = |groups: &mut BTreeMap<String, Totals>, e: &UsageEntry| {
        let t = Totals::of(e);
        for key in rollup_keys(e) {
            groups.entry(key).or_default().add(&t);
        }
    };
    // Whole days: [first_full, last_full_end). Nothing is recorded after now, so a
    // range reaching past now counts today's rollup as a whole day.
    let first_full = if day_start(range.start) == range.start {
        range.start
    } else {
        day_start(range.start) + Duration::days(1)
    };
    let now = Utc.timestamp_opt(now_unix, 0).single().unwrap_or(range.end);
    let last_full_end = if range.end >= now {
        day_start(now) + Duration::days(1)
    } else {
        day_start(range.end)
    };
    let mut partial: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    if first_full < last_full_end {
        let days = usage
            .rollups(
                user_id,
                &day_key(first_full),
                &day_key(last_full_end - Duration::days(1)),
            )
            .await?;
        stats.rollup_days = days.len();
        for day in days {
            for (k, t) in day.groups {
                groups.entry(k).or_default().add(&t);
            }
        }
        if range.start < first_full {
            partial.push((range.start, first_full));
        }
        if last_full_end < range.end {
            partial.push((last_full_end, range.end));
        }
    } else {
        partial.push((range.start, range.end));
    }
    for (from, to) in partial {
        let from_key = super::timestamp(from);
        let to_key = super::timestamp(to);
        stats.entries += scan_entries(usage, user_id, &from_key, &to_key, now_unix, |e| {
            add_entry(&mut groups, e)
        })
        .await?;
    }
    Ok((groups, stats))
}

pub(super) fn view(t: &Totals) -> GroupView {
    GroupView {
        requests: t.requests,
        tokens: t.tokens,
        cost_usd: NanoUsd(t.cost_nanos),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Integer division rounded half up, for money.
fn div_round(total: i64, n: u64) -> NanoUsd {
    if n == 0 {
        return NanoUsd::ZERO;
    }
    let n = i128::from(n);
    let t = i128::from(total);
    NanoUsd(i64::try_from((2 * t + n) / (2 * n)).unwrap_or(i64::MAX))
}

pub fn summary_from(groups: &BTreeMap<String, Totals>) -> Summary {
    let all = groups.get("all").copied().unwrap_or_default();
    let pick = |prefix: &str| -> BTreeMap<String, GroupView> {
        groups
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix(prefix)
                    .map(|name| (name.to_owned(), view(t)))
            })
            .collect()
    };
    Summary {
        total_requests: all.requests,
        total_tokens: all.tokens,
        total_cost_usd: NanoUsd(all.cost_nanos),
        avg_cost_per_request: div_round(all.cost_nanos, all.requests),
        success_rate: ratio(all.requests - all.errors, all.requests),
        cache_hit_rate: ratio(all.cached, all.requests),
        avg_latency_ms: if all.requests == 0 {
            0.0
        } else {
            all.latency_us as f64 / all.requests as f64 / 1000.0
        },
        unpriced_requests: all.unpriced,
        by_provider: pick("provider:"),
        by_operation: pick("operation:"),
        by_model: pick("model:"),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayRow {
    pub date: String,
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: NanoUsd,
    pub errors: u64,
}

/// One row per day for the `days` days ending today, zero days included.
pub fn daily_rows(rollups: &[DailyRollup], today: DateTime<Utc>, days: i64) -> Vec<DayRow> {
    let by_day: BTreeMap<&str, &Totals> = rollups
        .iter()
        .filter_map(|d| d.groups.get("all").map(|t| (d.day.as_str(), t)))
        .collect();
    (0..days)
        .rev()
        .map(|back| {
            let date = day_key(today - Duration::days(back));
            let t = by_day
                .get(date.as_str())
                .copied()
                .copied()
                .unwrap_or_default();
            DayRow {
                date,
                requests: t.requests,
                tokens: t.tokens,
                cost_usd: NanoUsd(t.cost_nanos),
                errors: t.errors,
            }
        })
        .collect()
}

/// The first instant of `now`'s month and of the next.
pub fn month_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (first, next)
}

/// Month-end spend if the rest of the month goes as it has so far: spent scaled from
/// the elapsed part of the month to all of it, in exact integer arithmetic.
pub fn projected(spent: NanoUsd, now: DateTime<Utc>) -> NanoUsd {
    let (first, next) = month_bounds(now);
    let elapsed = (now - first).num_seconds().max(1);
    let whole = (next - first).num_seconds();
    let p = i128::from(spent.0) * i128::from(whole) / i128::from(elapsed);
    NanoUsd(i64::try_from(p).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn projection_scales_by_the_elapsed_part_of_months_of_every_length() {
        // Halfway through November (30 days): double.
        assert_eq!(
            projected(NanoUsd(10), at("2026-11-16T00:00:00Z")),
            NanoUsd(20)
        );
        // February 2028 has 29 days: day 14.5 is half.
        assert_eq!(
            projected(NanoUsd(1_000), at("2028-02-15T12:00:00Z")),
            NanoUsd(2_000)
        );
        // February 2027 has 28 days.
        assert_eq!(
            projected(NanoUsd(1_000), at("2027-02-15T00:00:00Z")),
            NanoUsd(2_000)
        );
        // December rolls into the next year.
        assert_eq!(
            month_bounds(at("2026-12-31T23:00:00Z")).1,
            at("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn averages_round_half_up() {
        assert_eq!(div_round(10, 4), NanoUsd(3));
        assert_eq!(div_round(9, 4), NanoUsd(2));
        assert_eq!(div_round(0, 0), NanoUsd(0));
    }

    #[test]
    fn daily_rows_fill_missing_days_with_zeros() {
        let mut groups = BTreeMap::new();
        groups.insert(
            "all".to_string(),
            Totals {
                requests: 2,
                tokens: 10,
                cost_nanos: 5,
                errors: 1,
                ..Default::default()
            },
        );
        let rollups = vec![DailyRollup {
            day: "2028-02-28".into(),
            groups,
        }];
        let rows = daily_rows(&rollups, at("2028-03-01T10:00:00Z"), 3);
        assert_eq!(
            rows.iter().map(|r| r.date.as_str()).collect::<Vec<_>>(),
            ["2028-02-28", "2028-02-29", "2028-03-01"]
        );
        assert_eq!(rows[0].requests, 2);
        assert_eq!(rows[1].requests, 0);
    }
}
