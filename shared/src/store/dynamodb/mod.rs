//! DynamoDB backends. Items are (de)serialized with `serde_dynamo`; every write that
//! must not clobber is a conditional write; reads of one user's item are consistent
//! reads. Throttling is retried by the SDK's standard retry strategy, configured once
//! in [`crate::sdk::sdk_config`].
//!
//! The usage table (pk `user_id`, sk `sk`) holds five kinds of items per user:
//! - entries, sk `<timestamp>#<request_id>`, with the top-level `provider`,
//!   `operation_type`, `timestamp` (the GSIs' keys) and `ttl`;
//! - daily rollups, sk `rollup#<YYYY-MM-DD>`, one flat number attribute per group and
//!   counter (`all|requests`, `provider:anthropic|cost_nanos`, ...); under a tenant's
//!   owner id (`tenant/<id>`) also one item per hour, sk `rollup#<YYYY-MM-DD>#<HH>`, with
//!   its hourly groups (read back as part of the day);
//! - monthly budget counters, sk `budget#<YYYY-MM>`: `spent`, `reserved`, `committed`;
//! - budget reservations, sk `resv#<YYYY-MM>#<reservation id>`: `amount`, `expires_at`
//!   (the end of the lease) and `state` (`held`, `released`, `settled`);
//! - budget alert markers, sk `alert#<YYYY-MM>#<threshold>`.
//!
//! Beside the users' partitions, provider health counters across all users live under
//! pks `health/<minute|hour>/<shard>` that no user id can equal ([`health`]).
//!
//! Entry sort keys start with a digit and every other kind with a letter, so a range
//! query on timestamps never returns anything but entries. Only entries carry the GSI
//! key attributes, so the indexes stay sparse. Beside the users' partitions, the rate
//! counters of [`counters`] live in partitions `/rate/<key>`, and the providers' rate-limit
//! states of [`ratelimits`] in `ratelimit/<owner>`, which no user id can name.
//!
//! An entry, its rollup and its settlement are written in one `TransactWriteItems`
//! whose Put is conditional on the entry not existing: recording twice changes nothing.
//!
//! Budget writes are retried (by the SDK after a timeout, by the writer after an error)
//! and a write that landed may be sent again, so none is a bare counter add: every
//! reservation and settlement is a transaction of the counter update with a conditional
//! write of the reservation's item, whose state says what was applied already. The
//! counter's `reserved` is always the sum of the month's `held` reservation amounts.
//!
//! One file per store: [`settings`] and [`limits`] (the settings table), [`usage`],
//! [`budgets`] (with the item builders of [`reservations`]), [`counters`], [`cache`],
//! [`audit`], [`registry`] (with [`registry_seed`]); [`txn`] runs transactions;
//! [`tables`] defines the tables, as `infra/dynamodb.tf` does (a test holds the two
//! together). The helpers below build and read items.

mod audit;
mod budgets;
mod cache;
mod counters;
mod health;
mod limits;
mod ratelimits;
mod registry;
mod registry_seed;
mod reservations;
mod settings;
pub mod tables;
mod txn;
mod usage;

pub use audit::DynamoAuditStore;
pub use cache::DynamoCacheStore;
pub use counters::{DynamoRateCounters, RATE_PARTITION_PREFIX};
pub use limits::{DynamoLimitsStore, LIMITS_TYPE};
pub use ratelimits::{DynamoRateLimits, RATE_LIMIT_PARTITION_PREFIX};
pub use registry::DynamoRegistryStore;
pub use settings::{DynamoSettingsStore, SETTING_TYPE};

use crate::store::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// How long rollups, budget counters and alert markers outlive their day or month
/// (about 13 months), so that they expire like the entries do.
const AGGREGATE_RETENTION_DAYS: i64 = 400;

/// The usage table (entries, rollups, budgets, alerts), with the response cache table
/// (pk `key`) and the audit table (pk `month`, sk `<timestamp>#<id>`) beside it.
#[derive(Clone)]
pub struct DynamoUsageStore {
    client: Client,
    usage_table: String,
    cache: DynamoCacheStore,
    audit: DynamoAuditStore,
}

impl DynamoUsageStore {
    pub fn new(
        client: Client,
        usage_table: impl Into<String>,
        cache_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        DynamoUsageStore {
            cache: DynamoCacheStore::new(client.clone(), cache_table),
            audit: DynamoAuditStore::new(client.clone(), audit_table),
            client,
            usage_table: usage_table.into(),
        }
    }

    pub fn usage_table(&self) -> &str {
        &self.usage_table
    }
}

/// A failed call: [`StoreError::Unavailable`] when it is worth trying again shortly
/// (throttled, a 5xx, unreachable; the SDK's own retries are spent by now).
fn backend<E: std::error::Error + ProvideErrorMetadata + 'static>(e: SdkError<E>) -> StoreError {
    if crate::sdk::is_transient(&e) {
        StoreError::Unavailable(DisplayErrorContext(e).to_string())
    } else {
        StoreError::Backend(DisplayErrorContext(e).to_string())
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Unix seconds [`AGGREGATE_RETENTION_DAYS`] after `day` (`YYYY-MM-DD`, or `YYYY-MM`
/// for the first of the month); from now when the day cannot be read.
fn aggregate_ttl(day: &str) -> i64 {
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{day}-01"), "%Y-%m-%d"));
    let base = match date {
        Ok(d) => d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or_else(|| chrono::Utc::now().timestamp()),
        Err(_) => chrono::Utc::now().timestamp(),
    };
    base + AGGREGATE_RETENTION_DAYS * 86_400
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{name} is not an integer: {v}"))),
        Some(_) => Err(StoreError::Corrupt(format!("{name} is not a number"))),
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!("{name} is missing"))),
    }
}

fn user_key(user_id: &str, sk: String) -> Item {
    HashMap::from([("user_id".to_owned(), s(user_id)), ("sk".to_owned(), s(sk))])
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn values(pairs: Vec<(&str, AttributeValue)>) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Queries one partition of `table` with `key_condition`, following pages until
/// `want` items were read or the partition range is exhausted.
async fn query_all(
    client: &Client,
    table: &str,
    key_condition: &str,
    names: &HashMap<String, String>,
    values: &Item,
    forward: bool,
    want: Option<usize>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start_key: Option<Item> = None;
    loop {
        let mut q = client
            .query()
            .table_name(table)
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(Some(names.clone()))
            .set_expression_attribute_values(Some(values.clone()))
            .scan_index_forward(forward)
            .consistent_read(true)
            .set_exclusive_start_key(start_key.take());
        if let Some(want) = want {
            let remaining = want.saturating_sub(items.len()).max(1);
            q = q.limit(i32::try_from(remaining).unwrap_or(i32::MAX));
        }
        let out = q.send().await.map_err(backend)?;
        items.extend(out.items.unwrap_or_default());
        let done = want.is_some_and(|w| items.len() >= w);
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() && !done => start_key = Some(k),
            _ => return Ok(items),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_expire_about_thirteen_months_later() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(aggregate_ttl("2026-11-20"), day + 400 * 86_400);
        let month = day - 19 * 86_400;
        assert_eq!(aggregate_ttl("2026-11"), month + 400 * 86_400);
    }
}
