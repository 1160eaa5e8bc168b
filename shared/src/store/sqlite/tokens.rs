//! The local bearer tokens, by the SHA-256 of the token.

use super::SqliteStore;
use crate::store::{StoreError, TokenRecord, TokenStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let t = token.clone();
        self.call(move |c| {
            let changed = c.execute(
                "INSERT INTO tokens (token_hash, user_id, is_admin, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![
                    t.token_hash,
                    t.user_id,
                    t.is_admin,
                    t.created_at.to_rfc3339()
                ],
            )?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = token_hash.to_owned();
        let row: Option<(String, String, bool, String)> = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT token_hash, user_id, is_admin, created_at FROM tokens WHERE token_hash = ?1",
                    params![hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?)
            })
            .await?;
        row.map(|(token_hash, user_id, is_admin, created_at)| {
            let created_at = chrono::DateTime::parse_from_rfc3339(&created_at)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .with_timezone(&chrono::Utc);
            Ok(TokenRecord {
                token_hash,
                user_id,
                is_admin,
                created_at,
            })
        })
        .transpose()
    }
}
