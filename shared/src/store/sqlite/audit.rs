//! The audit log, keyed by (timestamp, id). Mutating stores call [`insert_events`] inside
//! their own transaction, so a change and its audit event commit together.

use super::{SqliteStore, corrupt};
use crate::store::{AuditEvent, AuditQuery, AuditStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, params};

/// Inserts events on `c` (a transaction of the caller's). Idempotent on (timestamp, id).
pub(super) fn insert_events(c: &Connection, events: &[AuditEvent]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO audit (timestamp, id, body) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for event in events {
        let body = serde_json::to_string(event).map_err(corrupt)?;
        stmt.execute(params![event.timestamp, event.id, body])?;
    }
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.call(move |c| insert_events(c, std::slice::from_ref(&event)))
            .await
    }

    async fn query(&self, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<String>), StoreError> {
        let q = q.clone();
        self.call(move |c| {
            // Filters are exact matches on the stored JSON: the log is read by admins,
            // never on a request's path, so an index per filter is not worth its writes.
            let mut stmt = c.prepare_cached(
                "SELECT body FROM audit
                 WHERE timestamp >= ?1 AND timestamp < ?2
                   AND (?3 IS NULL OR (timestamp || '#' || id) < ?3)
                   AND (?4 IS NULL OR json_extract(body, '$.actor') = ?4)
                   AND (?5 IS NULL OR json_extract(body, '$.target') = ?5)
                   AND (?6 IS NULL OR json_extract(body, '$.action') = ?6)
                 ORDER BY timestamp DESC, id DESC LIMIT ?7",
            )?;
            let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let bodies = stmt
                .query_map(
                    params![q.start, q.end, q.before, q.actor, q.target, q.action, limit],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<Result<Vec<String>, _>>()?;
            let mut events = bodies
                .iter()
                .map(|b| serde_json::from_str::<AuditEvent>(b).map_err(corrupt))
                .collect::<Result<Vec<_>, _>>()?;
            let more = events.len() > q.limit;
            events.truncate(q.limit);
            let next = more
                .then(|| events.last().map(AuditEvent::sort_key))
                .flatten();
            Ok((events, next))
        })
        .await
    }

    async fn purge_audit(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.call(move |c| {
            let n = c.execute("DELETE FROM audit WHERE timestamp < ?1", params![before])?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
