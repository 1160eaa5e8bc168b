//! The response cache; expired rows are misses, and `purge_expired` gives their space back.

use super::SqliteStore;
use crate::store::{ResponseCache, StoreError};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

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
