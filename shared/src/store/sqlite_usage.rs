//! The embedded backend of the usage, budget, cache and audit stores. Each multi-row
//! write is one SQLite transaction, the counterpart of a DynamoDB TransactWriteItems.

use super::sqlite::SqliteStore;
use super::{AuditEvent, AuditStore, BudgetStore, ResponseCache, StoreError, UsageStore};
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::usage::{
    DailyRollup, MonthCounters, Reservation, Settlement, Totals, UsageEntry, add_to_groups,
    rollup_keys,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn sort_key(entry: &UsageEntry) -> String {
    format!("{}#{}", entry.timestamp, entry.request_id)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ensure_month(c: &Connection, user: &str, month: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO budgets (user_id, month) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![user, month])?;
    Ok(())
}

/// Adds `spent` and `released` (reservation given back) to the month's counters.
fn move_counters(
    c: &Connection,
    user: &str,
    month: &str,
    spent: i64,
    released: i64,
) -> Result<(), StoreError> {
    ensure_month(c, user, month)?;
    c.prepare_cached(
        "UPDATE budgets SET spent = spent + ?3, reserved = reserved - ?4,
                committed = committed + ?3 - ?4
         WHERE user_id = ?1 AND month = ?2",
    )?
    .execute(params![user, month, spent, released])?;
    Ok(())
}

/// Settles by reservation id, once: a held reservation (even one whose lease ended but
/// was not swept yet) gives back its amount and adds the actual cost; one already
/// released by its lease only adds the cost; a settled one changes nothing. Without a
/// reservation row the cost is added and, when `mark` or when something was reserved, a
/// settled row is left so that a repeat changes nothing (a usage entry is its own
/// marker, but only for a repeat of itself: a reservation held in memory, which has no
/// row here, needs the marker against a later `settle` of it, as on DynamoDB).
fn apply_settlement(
    c: &Connection,
    user: &str,
    s: &Settlement,
    mark: bool,
) -> Result<(), StoreError> {
    // Cached statements: this runs for every usage entry with a settlement, and parsing
    // the SQL again each time was a tenth of a request's CPU.
    let row: Option<(i64, String)> = c
        .prepare_cached("SELECT amount, state FROM reservations WHERE user_id = ?1 AND id = ?2")?
        .query_row(params![user, s.reservation_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let released = match row.as_ref().map(|(a, st)| (*a, st.as_str())) {
        Some((_, "settled")) => return Ok(()),
        Some((amount, "held")) => amount,
        Some(_) => 0,
        None => {
            if mark || s.reserved.0 > 0 {
                c.prepare_cached(
                    "INSERT INTO reservations (user_id, id, month, amount, expires_at, state)
                     VALUES (?1, ?2, ?3, 0, ?4, 'settled')",
                )?
                .execute(params![
                    user,
                    s.reservation_id,
                    s.month,
                    chrono::Utc::now().timestamp()
                ])?;
            }
            move_counters(c, user, &s.month, s.actual.0, 0)?;
            return Ok(());
        }
    };
    c.prepare_cached("UPDATE reservations SET state = 'settled' WHERE user_id = ?1 AND id = ?2")?
        .execute(params![user, s.reservation_id])?;
    move_counters(c, user, &s.month, s.actual.0, released)
}

/// Releases the user's held reservations of `month` whose lease ended by `now`.
fn release_expired_in(
    c: &Connection,
    user: &str,
    month: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let (count, total): (i64, i64) = c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM reservations
         WHERE user_id = ?1 AND month = ?2 AND state = 'held' AND expires_at <= ?3",
        params![user, month, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if count == 0 {
        return Ok(0);
    }
    c.execute(
        "UPDATE reservations SET state = 'released'
         WHERE user_id = ?1 AND month = ?2 AND state = 'held' AND expires_at <= ?3",
        params![user, month, now],
    )?;
    move_counters(c, user, month, 0, total)?;
    tracing::info!(user_id = %user, month = %month, count, released_nanos = total, "expired reservations released");
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The conditional add of a reservation: creates the month's row with it, or adds it to
/// the existing row only while it fits under the limit.
fn try_reserve(
    c: &Connection,
    user: &str,
    r: &Reservation,
    limit: Option<NanoUsd>,
) -> Result<bool, StoreError> {
    let fits_alone = limit.is_none_or(|l| r.amount.0 <= l.0);
    let changed = c.execute(
        "INSERT INTO budgets (user_id, month, spent, reserved, committed)
         SELECT ?1, ?2, 0, ?3, ?3 WHERE ?5
         ON CONFLICT (user_id, month) DO UPDATE
           SET reserved = reserved + ?3, committed = committed + ?3
           WHERE ?4 IS NULL OR committed + ?3 <= ?4",
        params![user, r.month, r.amount.0, limit.map(|l| l.0), fits_alone],
    )?;
    Ok(changed == 1)
}

/// Inserts one entry with its rollup increments and settlement, unless already there.
fn write_entry(
    tx: &rusqlite::Transaction<'_>,
    entry: &UsageEntry,
    body: &str,
    settlement: Option<&Settlement>,
) -> Result<(), StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO usage (user_id, sk, timestamp, provider, operation_type, ttl, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            entry.user_id,
            sort_key(entry),
            entry.timestamp,
            entry.provider.as_str(),
            entry.operation_type,
            entry.ttl,
            body
        ])?;
    if inserted == 0 {
        // Already recorded: the rollup and settlement were applied with it.
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
    for group in rollup_keys(entry) {
        rollup.execute(params![
            entry.user_id,
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
    if let Some(s) = settlement {
        apply_settlement(tx, &entry.user_id, s, false)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Records many entries in one transaction (bulk loads: benchmarks, imports), with
    /// exactly the effect of recording each.
    pub async fn record_many(&self, entries: Vec<UsageEntry>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for e in &entries {
                let body = serde_json::to_string(e).map_err(corrupt)?;
                write_entry(&tx, e, &body, None)?;
            }
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
            write_entry(&tx, &entry, &body, settlement.as_ref())?;
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
            for (entry, body, settlement) in &rows {
                write_entry(&tx, entry, body, settlement.as_ref())?;
            }
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

    async fn purge_expired(&self, now_unix: i64, rollups_before: &str) -> Result<u64, StoreError> {
        let before = rollups_before.to_owned();
        self.call(move |c| {
            let entries = c.execute("DELETE FROM usage WHERE ttl <= ?1", params![now_unix])?;
            let rollups = c.execute("DELETE FROM rollups WHERE day < ?1", params![before])?;
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

impl SqliteStore {
    /// Releases every user's reservations whose lease ended by `now` (at start-up: what
    /// a process that died left held), and forgets settled markers a day after their
    /// lease. Returns how many were released.
    pub async fn release_all_expired(&self, now_unix: i64) -> Result<u64, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let groups: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT DISTINCT user_id, month FROM reservations
                     WHERE state = 'held' AND expires_at <= ?1",
                )?;
                stmt.query_map(params![now_unix], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            let mut released = 0;
            for (user, month) in &groups {
                released += release_expired_in(&tx, user, month, now_unix)?;
            }
            tx.execute(
                "DELETE FROM reservations WHERE state != 'held' AND expires_at < ?1",
                params![now_unix - 86_400],
            )?;
            tx.commit()?;
            Ok(released)
        })
        .await
    }
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn reserve(
        &self,
        user_id: &str,
        r: &Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        let (user, r) = (user_id.to_owned(), r.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            let new = tx.execute(
                "INSERT INTO reservations (user_id, id, month, amount, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'held') ON CONFLICT DO NOTHING",
                params![user, r.id, r.month, r.amount.0, r.expires_unix],
            )?;
            if new == 0 {
                // Stored already: it was granted before (a retried call).
                return Ok(true);
            }
            let mut granted = try_reserve(&tx, &user, &r, limit)?;
            if !granted && release_expired_in(&tx, &user, &r.month, now_unix)? > 0 {
                granted = try_reserve(&tx, &user, &r, limit)?;
            }
            if !granted {
                tx.execute(
                    "DELETE FROM reservations WHERE user_id = ?1 AND id = ?2",
                    params![user, r.id],
                )?;
            }
            tx.commit()?;
            Ok(granted)
        })
        .await
    }

    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        let (user, s) = (user_id.to_owned(), settlement.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            apply_settlement(&tx, &user, &s, true)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<MonthCounters, StoreError> {
        let (user, month) = (user_id.to_owned(), month.to_owned());
        self.call(move |c| {
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT spent, reserved FROM budgets WHERE user_id = ?1 AND month = ?2",
                    params![user, month],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (spent, reserved) = row.unwrap_or((0, 0));
            // Leases that ended but were not swept yet no longer count.
            let lapsed: i64 = c.query_row(
                "SELECT COALESCE(SUM(amount), 0) FROM reservations
                 WHERE user_id = ?1 AND month = ?2 AND state = 'held' AND expires_at <= ?3",
                params![user, month, now_unix],
                |r| r.get(0),
            )?;
            Ok(MonthCounters {
                spent: NanoUsd(spent),
                reserved: NanoUsd(reserved - lapsed),
            })
        })
        .await
    }

    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError> {
        let (user, month) = (user_id.to_owned(), month.to_owned());
        self.call(move |c| {
            let tx = c.transaction()?;
            let n = release_expired_in(&tx, &user, &month, now_unix)?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn mark_alerted(
        &self,
        user_id: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        let (user, month) = (user_id.to_owned(), month.to_owned());
        self.call(move |c| {
            Ok(c.execute(
                "INSERT INTO budget_alerts (user_id, month, threshold) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![user, month, threshold],
            )? == 1)
        })
        .await
    }

    async fn alerted(&self, user_id: &str, month: &str) -> Result<Vec<u32>, StoreError> {
        let (user, month) = (user_id.to_owned(), month.to_owned());
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT threshold FROM budget_alerts WHERE user_id = ?1 AND month = ?2 ORDER BY threshold",
            )?;
            let rows = stmt.query_map(params![user, month], |r| r.get(0))?.collect::<Result<Vec<u32>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

#[async_trait]
impl ResponseCache for SqliteStore {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT value FROM response_cache WHERE key = ?1 AND expires_at > ?2",
                params![key, now_unix],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn put_cached(
        &self,
        key: &str,
        value: &str,
        expires_unix: i64,
    ) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.call(move |c| {
            c.execute(
                "INSERT INTO response_cache (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, expires_at = ?3",
                params![key, value, expires_unix],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(corrupt)?;
        let (ts, id) = (event.timestamp.clone(), event.id.clone());
        self.call(move |c| {
            c.execute(
                "INSERT INTO audit (timestamp, id, body) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![ts, id, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let (start, end) = (start.to_owned(), end.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let bodies: Vec<String> = self
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT body FROM audit WHERE timestamp >= ?1 AND timestamp < ?2 ORDER BY timestamp, id LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![start, end, limit], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .await?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(corrupt))
            .collect()
    }
}
