//! The rate-limit book in the usage table, shared by every Lambda instance (generation
//! reads it through [`crate::store::warm::ratelimits::RateLimitWindow`], which also
//! decides which observations are worth a write).
//!
//! One item per key: pk `ratelimit/<owner>` (a `/` is never in a user id, see
//! `identity::valid_user_id`, so no user's partition holds one; a tenant owner
//! `tenant/<id>` only adds another), sk `<provider>#<key fingerprint>`, one number
//! attribute per known count and instant (milliseconds), `observed_ms`, `expires_ms`
//! and `ttl` (seconds: a while past the latest reset, at most a day, so DynamoDB
//! deletes it; reads ignore an expired item that was not deleted yet). The items carry
//! none of the GSI key attributes (the provider is in the sort key, not in `provider`),
//! so no index holds them. Never the key: only its fingerprint.

use super::{Item, backend, n, names, number, query_all, s, string, user_key, values};
use crate::provider::Provider;
use crate::store::StoreError;
use crate::store::ratelimits::{
    KeyRef, RateLimitBook, RateLimitReport, RateLimitState, newest_per_provider,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use chrono::{DateTime, Utc};

/// The partition key prefix of rate-limit items.
pub const RATE_LIMIT_PARTITION_PREFIX: &str = "ratelimit/";

#[derive(Clone)]
pub struct DynamoRateLimits {
    client: Client,
    usage_table: String,
}

impl DynamoRateLimits {
    pub fn new(client: Client, usage_table: impl Into<String>) -> Self {
        DynamoRateLimits {
            client,
            usage_table: usage_table.into(),
        }
    }
}

fn partition(owner: &str) -> String {
    format!("{RATE_LIMIT_PARTITION_PREFIX}{owner}")
}

fn key_of(key: &KeyRef) -> Item {
    user_key(
        &partition(&key.owner),
        format!("{}#{}", key.provider, key.fingerprint),
    )
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    number::<i64>(item, name)?
        .map(|v| {
            DateTime::from_timestamp_millis(v)
                .ok_or_else(|| StoreError::Corrupt(format!("{name} is not a time: {v}")))
        })
        .transpose()
}

fn to_item(key: &KeyRef, state: &RateLimitState, now: DateTime<Utc>) -> Item {
    let mut item = key_of(key);
    let expires = state.expires_at(now);
    item.insert("observed_ms".into(), n(ms(now)));
    item.insert("expires_ms".into(), n(ms(expires)));
    item.insert("ttl".into(), n(expires.timestamp()));
    let counts = [
        ("requests_remaining", state.requests_remaining),
        ("tokens_remaining", state.tokens_remaining),
    ];
    for (name, v) in counts {
        if let Some(v) = v {
            item.insert(name.into(), n(v));
        }
    }
    let times = [
        ("requests_reset_ms", state.requests_reset),
        ("tokens_reset_ms", state.tokens_reset),
        ("blocked_until_ms", state.blocked_until),
    ];
    for (name, t) in times {
        if let Some(t) = t {
            item.insert(name.into(), n(ms(t)));
        }
    }
    item
}

/// The state, when it was observed and when it expires.
fn from_item(item: &Item) -> Result<(RateLimitState, DateTime<Utc>, DateTime<Utc>), StoreError> {
    let state = RateLimitState {
        requests_remaining: number(item, "requests_remaining")?,
        requests_reset: time(item, "requests_reset_ms")?,
        tokens_remaining: number(item, "tokens_remaining")?,
        tokens_reset: time(item, "tokens_reset_ms")?,
        blocked_until: time(item, "blocked_until_ms")?,
    };
    let required =
        |name| time(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("{name} is missing")));
    Ok((state, required("observed_ms")?, required("expires_ms")?))
}

fn provider_of(item: &Item) -> Result<Provider, StoreError> {
    let sk = string(item, "sk")?;
    let name = sk.split_once('#').map_or(sk, |(p, _)| p);
    name.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown provider in {sk}")))
}

#[async_trait]
impl RateLimitBook for DynamoRateLimits {
    async fn observe(
        &self,
        key: &KeyRef,
        state: &RateLimitState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Last answer wins, but an older one arriving late (a slow request of another
        // instance) does not replace a newer one.
        let result = self
            .client
            .put_item()
            .table_name(&self.usage_table)
            .set_item(Some(to_item(key, state, now)))
            .condition_expression("attribute_not_exists(#o) OR #o <= :o")
            .set_expression_attribute_names(Some(names(&[("#o", "observed_ms")])))
            .set_expression_attribute_values(Some(values(vec![(":o", n(ms(now)))])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn last(
        &self,
        key: &KeyRef,
        now: DateTime<Utc>,
    ) -> Result<Option<RateLimitState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let (state, _, expires) = from_item(&item)?;
        Ok((expires > now).then_some(state))
    }

    async fn reported(
        &self,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<RateLimitReport>, StoreError> {
        let items = query_all(
            &self.client,
            &self.usage_table,
            "#pk = :p",
            &names(&[("#pk", "user_id")]),
            &values(vec![(":p", s(partition(owner)))]),
            true,
            None,
        )
        .await?;
        let mut all = Vec::new();
        for item in &items {
            let (state, observed_at, expires) = from_item(item)?;
            if expires > now {
                all.push(RateLimitReport {
                    provider: provider_of(item)?,
                    state,
                    observed_at,
                });
            }
        }
        Ok(newest_per_provider(all))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn items_live_outside_every_user_partition_and_round_trip() {
        let key = KeyRef {
            owner: "alice".into(),
            provider: Provider::OpenAi,
            fingerprint: "0123456789abcdef".into(),
        };
        let now = DateTime::from_timestamp_millis(1_900_000_000_123).unwrap();
        let state = RateLimitState {
            requests_remaining: Some(0),
            requests_reset: Some(now + chrono::TimeDelta::milliseconds(2500)),
            tokens_remaining: Some(12),
            tokens_reset: None,
            blocked_until: Some(now + chrono::TimeDelta::seconds(9)),
        };
        let item = to_item(&key, &state, now);
        let pk = item["user_id"].as_s().unwrap();
        assert_eq!(pk, "ratelimit/alice");
        assert!(!crate::identity::valid_user_id(pk));
        assert_eq!(item["sk"].as_s().unwrap(), "openai#0123456789abcdef");
        for gsi_key in ["provider", "operation_type", "timestamp"] {
            assert!(!item.contains_key(gsi_key), "{gsi_key}");
        }
        let (back, observed, expires) = from_item(&item).unwrap();
        assert_eq!((back, observed), (state.clone(), now));
        assert_eq!(expires, state.expires_at(now));
        assert_eq!(
            item["ttl"].as_n().unwrap(),
            &state.expires_at(now).timestamp().to_string()
        );
        assert_eq!(provider_of(&item).unwrap(), Provider::OpenAi);
    }
}
