//! Usage entries, their daily rollups and the provider health buckets. An entry, its
//! rollup increments (its user's and, for a member, its tenant's), its health increments and its settlement are one SQLite
//! transaction (the DynamoDB backend writes health after its transaction instead: one
//! process owns this file, so there is no cross-request contention to avoid here).

use super::budgets::apply_settlement;
use super::{SqliteStore, corrupt};
use crate::provider::Provider;
use crate::store::health::{Granularity, HealthCounters, entry_unix, health_groups};
use crate::store::tenant_rollup::rollup_targets;
use crate::store::{
    DailyRollup, Settlement, StoreError, Totals, UsageEntry, UsageStore, add_to_groups,
};
use async_trait::async_trait;
use rusqlite::params;
use std::collections::BTreeMap;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inserts one entry with its rollup increments and settlement, unless already there;
/// a new entry's health increments go to `health`, written before the commit.
fn write_entry(
    tx: &rusqlite::Transaction<'_>,
    entry: &UsageEntry,
    body: &str,
    settlement: Option<&Settlement>,
    health: &mut HealthBatch,
) -> Result<(), StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO usage (user_id, sk, timestamp, provider, operation_type, ttl, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            entry.user_id,
            entry.sort_key(),
            entry.timestamp,
            entry.provider.as_str(),
            entry.operation_type,
            entry.ttl,
            body
        ])?;
    if inserted == 0 {
        // Already recorded: its rollup, health and settlement were applied with it.
        return Ok(());
    }
    let t = Totals::of(entry);
    let mut rollup = tx.prepare_cached(
        "INSERT INTO rollups (user_id, day, grp, requests, tokens, cost_nanos, errors, cached, latency_us, unpriced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (user_id, day, grp) DO UPDATE SET
           requests = requests + ?4, tokens = tokens + ?5, cost_nanos = cost_nanos + ?6,
           errors = errors + ?7, cached = cached + ?8, latency_us = latency_us + ?9,
           unpriced = unpriced + ?10",
    )?;
    // The user's rollup and, for a tenant member, the tenant's: in this transaction,
    // so a repeat (whose insert did nothing above) adds to neither.
    for (owner, groups) in rollup_targets(entry) {
        for group in groups {
            rollup.execute(params![
                owner,
                entry.day(),
                group,
                to_i64(t.requests),
                to_i64(t.tokens),
                t.cost_nanos,
                to_i64(t.errors),
                to_i64(t.cached),
                to_i64(t.latency_us),
                to_i64(t.unpriced)
            ])?;
        }
    }
    health.add(entry);
    if let Some(s) = settlement {
        apply_settlement(tx, &entry.user_id, s, false)?;
    }
    Ok(())
}

/// The health increments of a transaction's new entries, summed per bucket and group
/// before they are written: the entries of a batch mostly share their buckets and
/// groups, so a batch of 32 writes about as many rows as one entry.
#[derive(Default)]
struct HealthBatch(BTreeMap<(Granularity, i64, String), HealthCounters>);

impl HealthBatch {
    fn add(&mut self, entry: &UsageEntry) {
        let Some(at) = entry_unix(entry) else {
            return;
        };
        let counters = HealthCounters::of(entry);
        for g in Granularity::ALL {
            for group in health_groups(entry) {
                self.0
                    .entry((g, g.bucket_start(at), group))
                    .or_default()
                    .add(&counters);
            }
        }
    }

    fn write(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let mut add = tx.prepare_cached(
            "INSERT INTO health (granularity, bucket, grp, counter, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (granularity, bucket, grp, counter) DO UPDATE SET value = value + ?5",
        )?;
        for ((g, bucket, group), counters) in &self.0 {
            for (counter, value) in counters.named() {
                add.execute(params![g.as_str(), bucket, group, counter, to_i64(value)])?;
            }
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Records many entries in one transaction (bulk loads: benchmarks, imports), with
    /// exactly the effect of recording each.
    pub async fn record_many(&self, entries: Vec<UsageEntry>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut health = HealthBatch::default();
            for e in &entries {
                let body = serde_json::to_string(e).map_err(corrupt)?;
                write_entry(&tx, e, &body, None, &mut health)?;
            }
            health.write(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn record(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(entry).map_err(corrupt)?;
        let entry = entry.clone();
        let settlement = settlement.cloned();
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut health = HealthBatch::default();
            write_entry(&tx, &entry, &body, settlement.as_ref(), &mut health)?;
            health.write(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn entries(
        &self,
        user_id: &str,
        start: &str,
        end: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<UsageEntry>, Option<String>), StoreError> {
        let (user, start, end) = (user_id.to_owned(), start.to_owned(), end.to_owned());
        // Sort keys are `timestamp#request_id`; `end` bounds the timestamp part.
        let upper = match before {
            Some(b) if b < end.as_str() => b.to_owned(),
            _ => end.clone(),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, String)> = self
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT sk, body FROM usage WHERE user_id = ?1 AND sk >= ?2 AND sk < ?3
                     ORDER BY sk DESC LIMIT ?4",
                )?;
                let rows = stmt
                    .query_map(params![user, start, upper, limit + 1], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let more = rows.len() as i64 > limit;
        let mut entries = Vec::with_capacity(rows.len());
        let mut last_key = None;
        for (sk, body) in rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            entries.push(serde_json::from_str(&body).map_err(corrupt)?);
            last_key = Some(sk);
        }
        Ok((entries, if more { last_key } else { None }))
    }

    async fn rollups(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyRollup>, StoreError> {
        let (user, from, to) = (user_id.to_owned(), from.to_owned(), to.to_owned());
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT day, grp, requests, tokens, cost_nanos, errors, cached, latency_us, unpriced
                 FROM rollups WHERE user_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day",
            )?;
            let mut days: Vec<DailyRollup> = Vec::new();
            let mut rows = stmt.query(params![user, from, to])?;
            while let Some(r) = rows.next()? {
                let day: String = r.get(0)?;
                let n = |i: usize| -> Result<u64, rusqlite::Error> {
                    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
                };
                let totals = Totals {
                    requests: n(2)?,
                    tokens: n(3)?,
                    cost_nanos: r.get(4)?,
                    errors: n(5)?,
                    cached: n(6)?,
                    latency_us: n(7)?,
                    unpriced: n(8)?,
                };
                if days.last().is_none_or(|d| d.day != day) {
                    days.push(DailyRollup {
                        day: day.clone(),
                        groups: Default::default(),
                    });
                }
                if let Some(d) = days.last_mut() {
                    d.groups.insert(r.get(1)?, totals);
                }
            }
            Ok(days)
        })
        .await
    }

    async fn record_batch(
        &self,
        batch: &[(UsageEntry, Option<Settlement>)],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(batch.len());
        for (entry, settlement) in batch {
            rows.push((
                entry.clone(),
                serde_json::to_string(entry).map_err(corrupt)?,
                settlement.clone(),
            ));
        }
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut health = HealthBatch::default();
            for (entry, body, settlement) in &rows {
                write_entry(&tx, entry, body, settlement.as_ref(), &mut health)?;
            }
            health.write(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn provider_totals(
        &self,
        provider: Provider,
        start: &str,
        end: &str,
        now_unix: i64,
    ) -> Result<(BTreeMap<String, Totals>, usize), StoreError> {
        let (start, end) = (start.to_owned(), end.to_owned());
        let bodies: Vec<String> = self
            .call(move |c| {
                // The usage_by_provider index is the counterpart of ProviderIndex.
                let mut stmt = c.prepare_cached(
                    "SELECT body FROM usage WHERE provider = ?1 AND timestamp >= ?2 AND timestamp < ?3 AND ttl > ?4",
                )?;
                let rows = stmt
                    .query_map(params![provider.as_str(), start, end, now_unix], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut groups = BTreeMap::new();
        for body in &bodies {
            let e: UsageEntry = serde_json::from_str(body).map_err(corrupt)?;
            add_to_groups(&mut groups, &e, true);
        }
        Ok((groups, bodies.len()))
    }

    async fn health(
        &self,
        granularity: Granularity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, HealthCounters>, StoreError> {
        let (first, last) = (granularity.bucket_start(from), granularity.bucket_start(to));
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT grp, counter, SUM(value) FROM health
                 WHERE granularity = ?1 AND bucket >= ?2 AND bucket <= ?3 GROUP BY grp, counter",
            )?;
            let mut groups: BTreeMap<String, HealthCounters> = BTreeMap::new();
            let mut rows = stmt.query(params![granularity.as_str(), first, last])?;
            while let Some(r) = rows.next()? {
                let value = u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0);
                let counter: String = r.get(1)?;
                groups
                    .entry(r.get(0)?)
                    .or_default()
                    .add_named(&counter, value);
            }
            Ok(groups)
        })
        .await
    }

    async fn purge_expired(&self, now_unix: i64, rollups_before: &str) -> Result<u64, StoreError> {
        let before = rollups_before.to_owned();
        self.call(move |c| {
            let entries = c.execute("DELETE FROM usage WHERE ttl <= ?1", params![now_unix])?;
            let rollups = c.execute("DELETE FROM rollups WHERE day < ?1", params![before])?;
            // Health buckets age out every few minutes under traffic: routine, so not
            // in the count (which llm-local logs when it is not zero).
            for g in Granularity::ALL {
                c.execute(
                    "DELETE FROM health WHERE granularity = ?1 AND bucket < ?2",
                    params![g.as_str(), now_unix - g.retention_secs()],
                )?;
            }
            // Expired cache entries are misses already; this gives their space back.
            let cached = c.execute(
                "DELETE FROM response_cache WHERE expires_at <= ?1",
                params![now_unix],
            )?;
            Ok(u64::try_from(entries + rollups + cached).unwrap_or(0))
        })
        .await
    }
}
