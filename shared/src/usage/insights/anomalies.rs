//! Days that cost far more than the days before them.

use crate::money::NanoUsd;
use crate::usage::report::DayRow;
use serde::Serialize;

/// A day's cost must be at least this many times its trailing mean to be flagged.
pub const FACTOR: i128 = 3;
/// The days before a day whose mean it is compared with.
pub const TRAILING_DAYS: usize = 7;
/// Fewer prior days than this in the period and a day is not judged at all.
pub const MIN_TRAILING_DAYS: usize = 3;
/// Costs under $0.01 are never flagged: cents of noise on a new account are not news.
pub const MIN_COST: NanoUsd = NanoUsd(10_000_000);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub date: String,
    pub cost_usd: NanoUsd,
    /// The mean of the (up to 7) prior days, rounded half up to the nano-dollar; the
    /// comparison itself is exact (`cost × n ≥ 3 × sum`), not against this rounding.
    pub trailing_mean_usd: NanoUsd,
}

/// The anomalous days of `rows` (oldest first, zero days included, as `/daily` gives
/// them), newest first.
pub fn anomalies(rows: &[DayRow]) -> Vec<Anomaly> {
    let mut out: Vec<Anomaly> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let prior = rows.get(i.saturating_sub(TRAILING_DAYS)..i)?;
            if prior.len() < MIN_TRAILING_DAYS || row.cost_usd < MIN_COST {
                return None;
            }
            let n = i128::try_from(prior.len()).ok()?;
            let sum: i128 = prior.iter().map(|r| i128::from(r.cost_usd.0)).sum();
            if i128::from(row.cost_usd.0) * n < FACTOR * sum {
                return None;
            }
            Some(Anomaly {
                date: row.date.clone(),
                cost_usd: row.cost_usd,
                // Half up; below the day's own cost, so within i64.
                trailing_mean_usd: NanoUsd(i64::try_from((2 * sum + n) / (2 * n)).ok()?),
            })
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(costs: &[i64]) -> Vec<DayRow> {
        costs
            .iter()
            .enumerate()
            .map(|(i, c)| DayRow {
                date: format!("2026-11-{:02}", i + 1),
                requests: 1,
                tokens: 1,
                cost_usd: NanoUsd(*c),
                errors: 0,
            })
            .collect()
    }

    const CENT: i64 = 10_000_000;

    #[test]
    fn three_times_the_trailing_mean_flags_and_just_under_does_not() {
        // Seven days of 1¢ and 2¢ alternating: sum 10¢, mean 10/7¢.
        let base = [CENT, 2 * CENT, CENT, 2 * CENT, CENT, 2 * CENT, CENT];
        let sum: i64 = base.iter().sum();
        // 3 × mean = 30/7¢ = 42_857_142.857… nanos: 42_857_143 is over, 42_857_142 under.
        let mut at = base.to_vec();
        at.push(42_857_143);
        let found = anomalies(&rows(&at));
        assert_eq!(
            found,
            [Anomaly {
                date: "2026-11-08".into(),
                cost_usd: NanoUsd(42_857_143),
                trailing_mean_usd: NanoUsd(14_285_714),
            }]
        );
        let mut under = base.to_vec();
        under.push(42_857_142);
        assert!(anomalies(&rows(&under)).is_empty());
        // Exactly 3×: a mean of 2¢ over seven days and a 6¢ day.
        let exact = [
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            6 * CENT,
        ];
        assert_eq!(anomalies(&rows(&exact)).len(), 1);
        let just_under = [
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            2 * CENT,
            6 * CENT - 1,
        ];
        assert!(anomalies(&rows(&just_under)).is_empty());
        assert_eq!(sum, 10 * CENT, "the trailing mean above is 10¢ / 7");
    }

    #[test]
    fn only_the_seven_prior_days_count_and_at_least_three_are_needed() {
        // An expensive first day drops out of the window by day 9.
        let costs = [100 * CENT, 0, 0, 0, 0, 0, 0, 0, 3 * CENT];
        let found = anomalies(&rows(&costs));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].date, "2026-11-09");
        assert_eq!(found[0].trailing_mean_usd, NanoUsd::ZERO);
        // Day 3 has two prior days only: not judged; day 4 has three.
        let costs = [CENT, CENT, 50 * CENT, 52 * CENT];
        let found = anomalies(&rows(&costs));
        assert_eq!(
            found.iter().map(|a| a.date.as_str()).collect::<Vec<_>>(),
            ["2026-11-04"]
        );
        // Mean of 1¢, 1¢, 50¢ = 52/3¢: 52¢ is exactly 3× (flagged above), 51¢ is not.
        let costs = [CENT, CENT, 50 * CENT, 51 * CENT];
        assert!(anomalies(&rows(&costs)).is_empty());
    }

    #[test]
    fn under_a_cent_is_never_flagged_and_the_newest_comes_first() {
        let costs = [
            0,
            0,
            0,
            CENT - 1,
            0,
            0,
            0,
            CENT,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            5 * CENT,
        ];
        let found = anomalies(&rows(&costs));
        assert_eq!(
            found.iter().map(|a| a.date.as_str()).collect::<Vec<_>>(),
            ["2026-11-16", "2026-11-08"]
        );
    }
}
