//! Per-user limits, one row per user, written conditionally on the version together
//! with the change's audit event.

use super::audit::insert_events;
use super::{SqliteStore, corrupt};
use crate::store::{AuditEvent, LimitsStore, StoreError, UserLimits};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("version out of range".into()))
}

#[async_trait]
impl LimitsStore for SqliteStore {
    async fn get_limits(&self, user_id: &str) -> Result<Option<UserLimits>, StoreError> {
        let user_id = user_id.to_owned();
        let body: Option<String> = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT body FROM user_limits WHERE user_id = ?1",
                    params![user_id],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt))
            .transpose()
    }

    async fn put_limits(
        &self,
        user_id: &str,
        limits: &UserLimits,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(limits).map_err(corrupt)?;
        let (user_id, audit) = (user_id.to_owned(), audit.clone());
        let (new, expected) = (version(limits.version)?, version(expected_version)?);
        self.call(move |c| {
            let tx = c.transaction()?;
            let changed = if expected == 0 {
                tx.execute(
                    "INSERT INTO user_limits (user_id, version, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    params![user_id, new, body],
                )?
            } else {
                tx.execute(
                    "UPDATE user_limits SET version = ?2, body = ?3 WHERE user_id = ?1 AND version = ?4",
                    params![user_id, new, body, expected],
                )?
            };
            if changed != 1 {
                return Err(StoreError::Conflict);
            }
            insert_events(&tx, std::slice::from_ref(&audit))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
