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
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates the token; [`StoreError::Conflict`] if that hash exists already.
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;
}
