//! The exact-match response cache.

use super::StoreError;
use async_trait::async_trait;

/// Exact-match response cache. Values are opaque JSON text; expired entries are misses.
#[async_trait]
pub trait ResponseCache: Send + Sync {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError>;
    async fn put_cached(&self, key: &str, value: &str, expires_unix: i64)
    -> Result<(), StoreError>;
}
