//! The model registry: one row per entry, its name unique, writes conditional on the
//! version, a whole change (and its audit events) one transaction.

use super::audit::insert_events;
use super::{SqliteStore, corrupt};
use crate::store::{AuditEvent, LlmEntry, RegistryStore, RegistryWrite, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

const SEEDED: &str = "llms_seeded";

fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("version out of range".into()))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// One write on `c`; [`StoreError::Conflict`] when its condition fails.
fn apply(c: &Connection, write: &RegistryWrite) -> Result<(), StoreError> {
    let changed = match write {
        RegistryWrite::Put { entry, previous } => {
            let body = serde_json::to_string(entry).map_err(corrupt)?;
            let result = match previous {
                None => c.execute(
                    "INSERT INTO llms (id, name, version, body) VALUES (?1, ?2, ?3, ?4)",
                    params![entry.id, entry.name, version(entry.version)?, body],
                ),
                Some(p) => c.execute(
                    "UPDATE llms SET name = ?2, version = ?3, body = ?4 WHERE id = ?1 AND version = ?5",
                    params![
                        entry.id,
                        entry.name,
                        version(entry.version)?,
                        body,
                        version(p.version)?
                    ],
                ),
            };
            match result {
                Ok(n) => n,
                // The id or the name is held by another entry.
                Err(e) if is_unique_violation(&e) => 0,
                Err(e) => return Err(e.into()),
            }
        }
        RegistryWrite::Delete { previous } => c.execute(
            "DELETE FROM llms WHERE id = ?1 AND version = ?2",
            params![previous.id, version(previous.version)?],
        )?,
    };
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

fn decode(body: &str) -> Result<LlmEntry, StoreError> {
    serde_json::from_str(body).map_err(corrupt)
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn list_llms(&self) -> Result<Vec<LlmEntry>, StoreError> {
        let bodies: Vec<String> = self
            .call(|c| {
                let mut stmt = c.prepare_cached("SELECT body FROM llms")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .await?;
        bodies.iter().map(|b| decode(b)).collect()
    }

    async fn get_llm(&self, id: &str) -> Result<Option<LlmEntry>, StoreError> {
        let id = id.to_owned();
        let body: Option<String> = self
            .call(move |c| {
                Ok(
                    c.query_row("SELECT body FROM llms WHERE id = ?1", params![id], |r| {
                        r.get(0)
                    })
                    .optional()?,
                )
            })
            .await?;
        body.as_deref().map(decode).transpose()
    }

    async fn write_llms(
        &self,
        writes: &[RegistryWrite],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (writes, audit) = (writes.to_vec(), audit.to_vec());
        self.call(move |c| {
            let tx = c.transaction()?;
            // Deletes first, then puts: a write that frees a name and one that takes it
            // may come in either order within one change.
            for w in writes
                .iter()
                .filter(|w| matches!(w, RegistryWrite::Delete { .. }))
            {
                apply(&tx, w)?;
            }
            for w in writes
                .iter()
                .filter(|w| matches!(w, RegistryWrite::Put { .. }))
            {
                apply(&tx, w)?;
            }
            insert_events(&tx, &audit)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn seed_llms(&self, entries: &[LlmEntry]) -> Result<bool, StoreError> {
        let entries = entries.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let marked = tx.execute(
                "INSERT INTO markers (name, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![SEEDED, crate::store::timestamp(chrono::Utc::now())],
            )?;
            if marked == 0 {
                return Ok(false);
            }
            for entry in &entries {
                let body = serde_json::to_string(entry).map_err(corrupt)?;
                tx.execute(
                    "INSERT INTO llms (id, name, version, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![entry.id, entry.name, version(entry.version)?, body],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
