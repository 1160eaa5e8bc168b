//! Provider health buckets in the usage table (see [`crate::store::health`]).
//!
//! Every request of the deployment adds to the same few buckets, so they are not part of
//! the usage transaction: a transaction touching a hot item conflicts with every other
//! one touching it, and usage (money) must not fail or retry for monitoring. Instead,
//! once the entry's transaction has committed (and only then, so a repeat adds nothing),
//! one `UpdateItem ADD` per granularity goes to one of [`SHARDS`] counter items, chosen
//! by the request id. That write is best effort and sent once (no SDK retry: an `ADD`
//! is not idempotent): a failure is logged at warn and the request goes on, so health
//! may undercount a bucket, never overcount it. An entry whose transaction landed but
//! whose answer was lost is recorded again by the writer, finds the entry there, and
//! adds nothing (and so is not counted either).
//!
//! Items: pk `health/<minute|hour>/<shard>` (a `/` is never in a user id, see
//! `identity::valid_user_id`, so no user's partition, and so no per-user query, ever
//! holds one), sk the bucket start `YYYY-MM-DDTHH:MMZ`, one number attribute per group
//! and counter (`provider:openai|successes`, `model:openai/gpt-4o|le_250`, ...) and `ttl`.
//! They carry none of the GSI key attributes, so no index ever sees them.

use super::{DynamoUsageStore, Item, backend, n, names, query_all, s, user_key, values};
use crate::store::StoreError;
use crate::store::health::{Granularity, HealthCounters, entry_unix, health_groups};
use crate::store::usage::UsageEntry;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

/// Counter items per bucket: writes to one bucket spread over this many items (one item
/// takes at most 1,000 write units a second, and a bucket item holding many models costs
/// a unit per started KB); a read queries each.
pub const SHARDS: u64 = 8;

fn partition(g: Granularity, shard: u64) -> String {
    format!("health/{}/{shard}", g.as_str())
}

/// The sort key of the bucket starting at `start`: fixed width, so it sorts by time.
fn bucket_key(start: i64) -> String {
    chrono::DateTime::from_timestamp(start, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

/// FNV-1a of the request id: any stable spread will do, the reader sums every shard.
fn shard_of(request_id: &str) -> u64 {
    let hash = request_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % SHARDS
}

/// The group counters of one bucket item, from its `<group>|<counter>` attributes.
fn counters_of(item: &Item, into: &mut BTreeMap<String, HealthCounters>) -> Result<(), StoreError> {
    for (name, value) in item {
        let Some((group, counter)) = name.rsplit_once('|') else {
            continue;
        };
        let value = match value {
            AttributeValue::N(v) => v
                .parse::<u64>()
                .map_err(|_| StoreError::Corrupt(format!("{name} is not a count: {v}")))?,
            _ => return Err(StoreError::Corrupt(format!("{name} is not a number"))),
        };
        into.entry(group.to_owned())
            .or_default()
            .add_named(counter, value);
    }
    Ok(())
}

impl DynamoUsageStore {
    /// Adds a newly recorded entry to its minute and hour buckets, both at once. Never
    /// fails the caller: see the module documentation.
    pub(super) async fn add_health(&self, entry: &UsageEntry) {
        let Some(at) = entry_unix(entry) else {
            tracing::warn!(request_id = %entry.request_id, "provider health not counted: unreadable timestamp");
            return;
        };
        let (minute, hour) = futures_util::future::join(
            self.add_to_bucket(entry, Granularity::Minute, at),
            self.add_to_bucket(entry, Granularity::Hour, at),
        )
        .await;
        for (g, result) in [(Granularity::Minute, minute), (Granularity::Hour, hour)] {
            if let Err(e) = result {
                tracing::warn!(request_id = %entry.request_id, granularity = g.as_str(), error = %e,
                    "provider health not counted");
            }
        }
    }

    async fn add_to_bucket(
        &self,
        entry: &UsageEntry,
        g: Granularity,
        at: i64,
    ) -> Result<(), StoreError> {
        let start = g.bucket_start(at);
        let counters = HealthCounters::of(entry).named();
        let mut names = HashMap::from([("#ttl".to_owned(), "ttl".to_owned())]);
        let mut vals: Item = HashMap::from([(":ttl".to_owned(), n(start + g.retention_secs()))]);
        let mut adds = Vec::new();
        for (gi, group) in health_groups(entry).iter().enumerate() {
            for (ci, (counter, value)) in counters.iter().enumerate() {
                let (name, val) = (format!("#g{gi}c{ci}"), format!(":g{gi}c{ci}"));
                adds.push(format!("{name} {val}"));
                names.insert(name, format!("{group}|{counter}"));
                vals.insert(val, n(value));
            }
        }
        let key = user_key(
            &partition(g, shard_of(&entry.request_id)),
            bucket_key(start),
        );
        // Sent once: an ADD is not idempotent, and the SDK's retry of an attempt whose
        // answer was lost (a timeout) would count the request twice.
        self.client
            .update_item()
            .table_name(&self.usage_table)
            .set_key(Some(key))
            .update_expression(format!("SET #ttl = :ttl ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(vals))
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Sums the buckets holding `from..=to` over every shard (one query per shard, all
    /// at once).
    pub(super) async fn read_health(
        &self,
        g: Granularity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, HealthCounters>, StoreError> {
        let (first, last) = (
            bucket_key(g.bucket_start(from)),
            bucket_key(g.bucket_start(to)),
        );
        let key_names = names(&[("#pk", "user_id"), ("#sk", "sk")]);
        let queries = (0..SHARDS).map(|shard| {
            let vals = values(vec![
                (":p", s(partition(g, shard))),
                (":first", s(first.clone())),
                (":last", s(last.clone())),
            ]);
            let key_names = key_names.clone();
            async move {
                query_all(
                    &self.client,
                    &self.usage_table,
                    "#pk = :p AND #sk BETWEEN :first AND :last",
                    &key_names,
                    &vals,
                    true,
                    None,
                )
                .await
            }
        });
        let mut groups = BTreeMap::new();
        for items in futures_util::future::try_join_all(queries).await? {
            for item in &items {
                counters_of(item, &mut groups)?;
            }
        }
        Ok(groups)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::identity::valid_user_id;

    #[test]
    fn partitions_can_never_be_a_user_id() {
        for g in Granularity::ALL {
            for shard in 0..SHARDS {
                assert!(!valid_user_id(&partition(g, shard)));
            }
        }
    }

    #[test]
    fn bucket_keys_sort_by_time_and_shards_spread() {
        assert_eq!(bucket_key(1_794_999_960), "2026-11-18T11:06Z");
        assert!(bucket_key(1_794_999_960) < bucket_key(1_795_000_020));
        assert!(bucket_key(1_794_999_600) < bucket_key(1_795_003_200));
        let mut seen = [0u32; SHARDS as usize];
        for i in 0..800 {
            seen[shard_of(&format!("req-{i:032x}")) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
    }

    #[test]
    fn bucket_items_are_read_back_from_flat_attributes() {
        let item: Item = HashMap::from([
            ("user_id".to_owned(), s("health/minute/3")),
            ("sk".to_owned(), s("2026-11-18T11:06Z")),
            ("ttl".to_owned(), n(1)),
            ("provider:openai|successes".to_owned(), n(2)),
            ("provider:openai|error:rate_limited".to_owned(), n(1)),
            (
                "model:bedrock/anthropic.claude-v2:0|le_250".to_owned(),
                n(4),
            ),
        ]);
        let mut groups = BTreeMap::new();
        counters_of(&item, &mut groups).unwrap();
        counters_of(&item, &mut groups).unwrap();
        assert_eq!(groups["provider:openai"].successes, 4);
        assert_eq!(groups["provider:openai"].errors_by_class["rate_limited"], 2);
        assert_eq!(groups["model:bedrock/anthropic.claude-v2:0"].latency[5], 8);
        assert_eq!(groups.len(), 2);
    }
}
