//! The settings table: one row per (user, setting type), written conditionally on the
//! version like the DynamoDB item.

use super::SqliteStore;
use super::audit::insert_events;
use crate::store::{AuditEvent, SettingsRecord, SettingsStore, StoreError};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

const SETTING_TYPE: &str = "llm_preferences";

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError> {
        let user_id = user_id.to_owned();
        let body: Option<String> = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT body FROM settings WHERE user_id = ?1 AND setting_type = ?2",
                    params![user_id, SETTING_TYPE],
                    |row| row.get(0),
                )
                .optional()?)
            })
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let audit = audit.to_vec();
        let body = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let user_id = user_id.to_owned();
        let version = to_i64(record.version)?;
        let expected = to_i64(expected_version)?;
        self.call(move |c| {
            let tx = c.transaction()?;
            let changed = if expected == 0 {
                tx.execute(
                    "INSERT INTO settings (user_id, setting_type, version, body)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![user_id, SETTING_TYPE, version, body],
                )?
            } else {
                tx.execute(
                    "UPDATE settings SET version = ?3, body = ?4
                     WHERE user_id = ?1 AND setting_type = ?2 AND version = ?5",
                    params![user_id, SETTING_TYPE, version, body, expected],
                )?
            };
            if changed != 1 {
                return Err(StoreError::Conflict);
            }
            insert_events(&tx, &audit)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("version out of range".into()))
}
