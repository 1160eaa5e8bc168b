//! Local bearer tokens (the embedded shape's identity); on AWS, Cognito issues tokens and
//! this store is not used.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A bearer token of the local shape. Only the SHA-256 of the token is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token_hash: String,
    pub user_id: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    /// The tenant the caller belongs to, if any.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Admin of that tenant (reads and writes its settings).
    #[serde(default)]
    pub is_tenant_admin: bool,
    /// After this the token authenticates nobody.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// How `token list` names a token and `token revoke` takes it: the first 12 hex
    /// digits of its hash (the token itself is never stored).
    pub fn id(&self) -> &str {
        self.token_hash.get(..12).unwrap_or(&self.token_hash)
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates the token; [`StoreError::Conflict`] if that hash exists already.
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Deletes a token; `false` when there was none with that hash.
    async fn delete_token(&self, token_hash: &str) -> Result<bool, StoreError>;
}
