//! The local bearer tokens, by the SHA-256 of the token.

use super::SqliteStore;
use crate::store::{StoreError, TokenRecord, TokenStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

const COLUMNS: &str =
    "token_hash, user_id, is_admin, created_at, tenant_id, is_tenant_admin, expires_at";

type Raw = (
    String,
    String,
    bool,
    String,
    Option<String>,
    bool,
    Option<String>,
);

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn time(t: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(DateTime::parse_from_rfc3339(t)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .with_timezone(&Utc))
}

fn record(r: Raw) -> Result<TokenRecord, StoreError> {
    let (token_hash, user_id, is_admin, created_at, tenant_id, is_tenant_admin, expires_at) = r;
    Ok(TokenRecord {
        token_hash,
        user_id,
        is_admin,
        created_at: time(&created_at)?,
        tenant_id,
        is_tenant_admin,
        expires_at: expires_at.as_deref().map(time).transpose()?,
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let t = token.clone();
        self.call(move |c| {
            let changed = c.execute(
                "INSERT INTO tokens (token_hash, user_id, is_admin, created_at, tenant_id, is_tenant_admin, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    t.token_hash,
                    t.user_id,
                    t.is_admin,
                    t.created_at.to_rfc3339(),
                    t.tenant_id,
                    t.is_tenant_admin,
                    t.expires_at.map(|e| e.to_rfc3339()),
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
        let row: Option<Raw> = self
            .call(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {COLUMNS} FROM tokens WHERE token_hash = ?1"),
                    params![hash],
                    raw,
                )
                .optional()?)
            })
            .await?;
        row.map(record).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<Raw> = self
            .call(|c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM tokens ORDER BY created_at, token_hash"
                ))?;
                let rows = stmt.query_map([], raw)?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(record).collect()
    }

    async fn delete_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        let hash = token_hash.to_owned();
        self.call(move |c| {
            Ok(c.execute("DELETE FROM tokens WHERE token_hash = ?1", params![hash])? == 1)
        })
        .await
    }
}
