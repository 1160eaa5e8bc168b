//! The response cache table: pk `key`, the value and its expiry (`expires_at`, also the
//! table's TTL attribute).

use super::{DynamoUsageStore, backend, n, number, s, string};
use crate::store::{ResponseCache, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

/// DynamoDB items are at most 400 KB; a larger response is simply not cached.
const MAX_CACHED_VALUE_BYTES: usize = 380 * 1024;

/// The cache table.
#[derive(Clone)]
pub struct DynamoCacheStore {
    client: Client,
    table: String,
}

impl DynamoCacheStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoCacheStore {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ResponseCache for DynamoCacheStore {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        // TTL deletes lazily (up to days later): an expired item is a miss.
        let expires: i64 = number(&item, "expires_at")?.unwrap_or(0);
        if expires <= now_unix {
            return Ok(None);
        }
        Ok(Some(string(&item, "value")?.to_owned()))
    }

    async fn put_cached(
        &self,
        key: &str,
        value: &str,
        expires_unix: i64,
    ) -> Result<(), StoreError> {
        if value.len() > MAX_CACHED_VALUE_BYTES {
            return Ok(());
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("value", s(value))
            .item("expires_at", n(expires_unix))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The usage store also answers for its cache table, as it always has.
#[async_trait]
impl ResponseCache for DynamoUsageStore {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError> {
        self.cache.get_cached(key, now_unix).await
    }

    async fn put_cached(
        &self,
        key: &str,
        value: &str,
        expires_unix: i64,
    ) -> Result<(), StoreError> {
        self.cache.put_cached(key, value, expires_unix).await
    }
}
