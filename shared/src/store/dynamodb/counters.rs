//! Fixed-window rate counters shared by every Lambda instance, in the usage table.
//!
//! A window is one item: pk `/rate/<key>`, sk `rate#<window start>`, a counter `n` and a
//! `ttl` a few windows ahead (DynamoDB expires it). User ids never contain `/`
//! (`identity::valid_user_id`), so no user's partition, and hence no per-user query of
//! the table, can reach these items; and they carry none of the GSI key attributes
//! (`provider`, `operation_type`, `timestamp`), so no index holds them either.

use super::{Item, backend, n, names, s, values};
use crate::store::{RateCounters, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use std::collections::HashMap;

/// The partition key prefix of counters: a character no user id holds.
pub const RATE_PARTITION_PREFIX: &str = "/rate/";

/// How many windows a counter outlives its own (TTL deletion is lazy, and a window's
/// item is only ever read while it is current).
const TTL_WINDOWS: i64 = 3;

#[derive(Clone)]
pub struct DynamoRateCounters {
    client: Client,
    usage_table: String,
}

impl DynamoRateCounters {
    pub fn new(client: Client, usage_table: impl Into<String>) -> Self {
        DynamoRateCounters {
            client,
            usage_table: usage_table.into(),
        }
    }
}

/// The key of `key`'s window starting at `window_start`.
pub fn counter_key(key: &str, window_start: i64) -> Item {
    HashMap::from([
        (
            "user_id".to_owned(),
            s(format!("{RATE_PARTITION_PREFIX}{key}")),
        ),
        ("sk".to_owned(), s(format!("rate#{window_start}"))),
    ])
}

#[async_trait]
impl RateCounters for DynamoRateCounters {
    async fn hit(
        &self,
        key: &str,
        window_start: i64,
        window_secs: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            // The condition below would let a first hit through.
            return Ok(false);
        }
        let expires =
            window_start.saturating_add(window_secs.max(1).saturating_mul(TTL_WINDOWS + 1));
        // One conditional add: concurrent hits are serialized by DynamoDB, and a full
        // window refuses without counting.
        let result = self
            .client
            .update_item()
            .table_name(&self.usage_table)
            .set_key(Some(counter_key(key, window_start)))
            .update_expression("ADD #n :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .set_expression_attribute_names(Some(names(&[("#n", "n"), ("#ttl", "ttl")])))
            .set_expression_attribute_values(Some(values(vec![
                (":one", n(1)),
                (":limit", n(limit)),
                (":ttl", n(expires)),
            ])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn counters_live_outside_every_user_partition() {
        let key = counter_key("alice", 1_900_000_020);
        let pk = key["user_id"].as_s().unwrap();
        assert_eq!(pk, "/rate/alice");
        assert!(!crate::identity::valid_user_id(pk));
        assert_eq!(key["sk"].as_s().unwrap(), "rate#1900000020");
    }
}
