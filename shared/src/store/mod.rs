//! Storage traits. Each is narrow and shaped after what DynamoDB does well (key lookups,
//! conditional writes; range queries and atomic counters arrive with the usage stores),
//! so that no embedded backend can offer something the DynamoDB one cannot.
//! Every backend runs the same [`conformance`] suite.

pub mod sqlite;

#[cfg(feature = "aws")]
pub mod dynamodb;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use crate::settings::SettingsRecord;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed (or appeared) since it was read.
    #[error("conditional write failed")]
    Conflict,
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("stored item is unreadable: {0}")]
    Corrupt(String),
}

/// Settings, keyed like the DynamoDB table: pk `user_id`, one item per user.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError>;

    /// Writes `record` only if the stored version is still `expected_version` (0 meaning
    /// "no item yet"); otherwise [`StoreError::Conflict`].
    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
    ) -> Result<(), StoreError>;
}

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
