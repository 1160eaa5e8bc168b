//! The audit log, keyed by (timestamp, id).

use super::{SqliteStore, corrupt};
use crate::store::{AuditEvent, AuditStore, StoreError};
use async_trait::async_trait;
use rusqlite::params;

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
