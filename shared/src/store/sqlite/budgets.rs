//! Monthly budget counters and leased reservations. Each reservation and settlement is
//! one transaction of the counter update with the reservation's row, whose state says
//! what was applied already (the counterpart of the DynamoDB transactions).

use super::SqliteStore;
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::store::{BudgetStore, MonthCounters, Reservation, Settlement, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

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
///
/// A settlement with a `tenant` settles the tenant principal's reservation of the same
/// id too, in the caller's transaction.
pub(super) fn apply_settlement(
    c: &Connection,
    user: &str,
    s: &Settlement,
    mark: bool,
) -> Result<(), StoreError> {
    settle_holder(c, user, s, mark)?;
    if let Some(tenant) = &s.tenant {
        settle_holder(c, &tenant_owner(tenant), s, mark)?;
    }
    Ok(())
}

fn settle_holder(c: &Connection, user: &str, s: &Settlement, mark: bool) -> Result<(), StoreError> {
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

/// Reserves `r` for one holder inside the caller's transaction: `true` when granted now
/// or before (its id is stored), `false` when it does not fit (the caller rolls back).
fn reserve_in(
    c: &Connection,
    user: &str,
    r: &Reservation,
    limit: Option<NanoUsd>,
) -> Result<bool, StoreError> {
    let new = c.execute(
        "INSERT INTO reservations (user_id, id, month, amount, expires_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, 'held') ON CONFLICT DO NOTHING",
        params![user, r.id, r.month, r.amount.0, r.expires_unix],
    )?;
    if new == 0 {
        return Ok(true);
    }
    try_reserve(c, user, r, limit)
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

    /// One transaction: every holder's reservation inside a savepoint that is rolled
    /// back as soon as one refuses, so a refused joint reservation leaves nothing behind;
    /// refused once, the holders' lapsed leases are released and it is tried again.
    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        let holders: Vec<(String, Option<NanoUsd>)> =
            holders.iter().map(|(h, l)| ((*h).to_owned(), *l)).collect();
        let r = r.clone();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let mut retried = false;
            loop {
                let sp = tx.savepoint()?;
                let mut granted = true;
                for (holder, limit) in &holders {
                    if !reserve_in(&sp, holder, &r, *limit)? {
                        granted = false;
                        break;
                    }
                }
                if granted {
                    sp.commit()?;
                    tx.commit()?;
                    return Ok(true);
                }
                drop(sp);
                if retried {
                    break;
                }
                retried = true;
                let mut released = 0;
                for (holder, _) in &holders {
                    released += release_expired_in(&tx, holder, &r.month, now_unix)?;
                }
                if released == 0 {
                    break;
                }
            }
            // Only lapsed leases were released: they had stopped counting already.
            tx.commit()?;
            Ok(false)
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
