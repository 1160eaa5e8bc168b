//! The DynamoDB backends of the usage, budget, cache and audit stores.
//!
//! The usage table (pk `user_id`, sk `sk`) holds four kinds of items per user:
//! - entries, sk `<timestamp>#<request_id>`, with the top-level `provider`,
//!   `operation_type`, `timestamp` (the GSIs' keys) and `ttl`;
//! - daily rollups, sk `rollup#<YYYY-MM-DD>`, one flat number attribute per group and
//!   counter (`all|requests`, `provider:anthropic|cost_nanos`, ...);
//! - monthly budget counters, sk `budget#<YYYY-MM>`: `spent`, `reserved`, `committed`;
//! - budget alert markers, sk `alert#<YYYY-MM>#<threshold>`.
//!
//! Entry sort keys start with a digit and every other kind with a letter, so a range
//! query on timestamps never returns anything but entries. Only entries carry the GSI
//! key attributes, so the indexes stay sparse.
//!
//! An entry, its rollup and its settlement are written in one `TransactWriteItems`
//! whose Put is conditional on the entry not existing: recording twice changes nothing.

use super::{AuditEvent, AuditStore, BudgetStore, ResponseCache, StoreError, UsageStore};
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::usage::{
    DailyRollup, MonthCounters, Settlement, Totals, UsageEntry, add_to_groups, rollup_keys,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{Datelike, NaiveDate};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

/// How long rollups, budget counters and alert markers outlive their day or month
/// (about 13 months), so that they expire like the entries do.
const AGGREGATE_RETENTION_DAYS: i64 = 400;

/// Attempts of a usage transaction that lost to a concurrent one or was throttled.
const TRANSACT_ATTEMPTS: u32 = 5;

/// DynamoDB items are at most 400 KB; a larger response is simply not cached.
const MAX_CACHED_VALUE_BYTES: usize = 380 * 1024;

/// The usage table (entries, rollups, budgets, alerts), the response cache table (pk
/// `key`) and the audit table (pk `month`, sk `<timestamp>#<id>`).
#[derive(Clone)]
pub struct DynamoUsageStore {
    client: Client,
    usage_table: String,
    cache_table: String,
    audit_table: String,
}

impl DynamoUsageStore {
    pub fn new(
        client: Client,
        usage_table: impl Into<String>,
        cache_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        DynamoUsageStore {
            client,
            usage_table: usage_table.into(),
            cache_table: cache_table.into(),
            audit_table: audit_table.into(),
        }
    }

    pub fn usage_table(&self) -> &str {
        &self.usage_table
    }
}

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> StoreError {
    StoreError::Backend(DisplayErrorContext(e).to_string())
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

fn entry_sort_key(entry: &UsageEntry) -> String {
    format!("{}#{}", entry.timestamp, entry.request_id)
}

fn rollup_sort_key(day: &str) -> String {
    format!("rollup#{day}")
}

fn budget_sort_key(month: &str) -> String {
    format!("budget#{month}")
}

fn alert_prefix(month: &str) -> String {
    format!("alert#{month}#")
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

/// The rollup counters, by the suffix of their attribute names.
const COUNTERS: [&str; 7] = [
    "requests",
    "tokens",
    "cost_nanos",
    "errors",
    "cached",
    "latency_us",
    "unpriced",
];

fn counter_values(t: &Totals) -> [i128; 7] {
    [
        i128::from(t.requests),
        i128::from(t.tokens),
        i128::from(t.cost_nanos),
        i128::from(t.errors),
        i128::from(t.cached),
        i128::from(t.latency_us),
        i128::from(t.unpriced),
    ]
}

fn set_counter(t: &mut Totals, counter: &str, value: &str) -> Result<(), StoreError> {
    let bad = || {
        StoreError::Corrupt(format!(
            "rollup counter {counter} is not an integer: {value}"
        ))
    };
    let unsigned = || value.parse::<u64>().map_err(|_| bad());
    match counter {
        "requests" => t.requests = unsigned()?,
        "tokens" => t.tokens = unsigned()?,
        "cost_nanos" => t.cost_nanos = value.parse::<i64>().map_err(|_| bad())?,
        "errors" => t.errors = unsigned()?,
        "cached" => t.cached = unsigned()?,
        "latency_us" => t.latency_us = unsigned()?,
        "unpriced" => t.unpriced = unsigned()?,
        // A counter added by a later version: ignored, not fatal.
        _ => {}
    }
    Ok(())
}

fn rollup_of(item: &Item) -> Result<DailyRollup, StoreError> {
    let sk = string(item, "sk")?;
    let day = sk
        .strip_prefix("rollup#")
        .ok_or_else(|| StoreError::Corrupt(format!("not a rollup item: {sk}")))?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for (name, value) in item {
        let Some((group, counter)) = name.rsplit_once('|') else {
            continue;
        };
        let AttributeValue::N(value) = value else {
            return Err(StoreError::Corrupt(format!("{name} is not a number")));
        };
        set_counter(groups.entry(group.to_owned()).or_default(), counter, value)?;
    }
    Ok(DailyRollup {
        day: day.to_owned(),
        groups,
    })
}

/// The update of a month's budget item that settles a reservation.
struct SettlementUpdate {
    expression: &'static str,
    names: HashMap<String, String>,
    values: Item,
}

fn settlement_update(s: &Settlement) -> SettlementUpdate {
    let names = [
        ("#spent", "spent"),
        ("#reserved", "reserved"),
        ("#committed", "committed"),
        ("#ttl", "ttl"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let values = [
        (":actual", n(s.actual.0)),
        (":neg_reserved", n(-i128::from(s.reserved.0))),
        (
            ":delta",
            n(i128::from(s.actual.0) - i128::from(s.reserved.0)),
        ),
        (":ttl", n(aggregate_ttl(&s.month))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    SettlementUpdate {
        expression: "SET #ttl = if_not_exists(#ttl, :ttl) \
                     ADD #spent :actual, #reserved :neg_reserved, #committed :delta",
        names,
        values,
    }
}

fn user_key(user_id: &str, sk: String) -> Item {
    HashMap::from([("user_id".to_owned(), s(user_id)), ("sk".to_owned(), s(sk))])
}

/// A few milliseconds, doubling per attempt, with full jitter.
async fn backoff(attempt: u32) {
    let cap_ms = 20u64 << attempt.min(6);
    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % cap_ms.max(1);
    tokio::time::sleep(Duration::from_millis(jitter + 5)).await;
}

/// What a cancelled usage transaction means.
enum Cancelled {
    /// The entry's Put failed its condition: the request was recorded already.
    AlreadyRecorded,
    /// Lost to a concurrent transaction, or throttled: worth another attempt.
    Retry,
    Fatal,
}

fn classify_cancellation(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> Cancelled {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    if code(0) == "ConditionalCheckFailed" {
        return Cancelled::AlreadyRecorded;
    }
    let retryable = reasons.iter().any(|r| {
        matches!(
            r.code(),
            Some(
                "TransactionConflict"
                    | "ThrottlingError"
                    | "ProvisionedThroughputExceeded"
                    | "RequestLimitExceeded"
            )
        )
    });
    if retryable {
        Cancelled::Retry
    } else {
        Cancelled::Fatal
    }
}

impl DynamoUsageStore {
    fn record_items(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item: Item = serde_dynamo::to_item(entry).map_err(corrupt)?;
        item.insert("sk".to_owned(), s(entry_sort_key(entry)));
        let put = Put::builder()
            .table_name(&self.usage_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_error)?;

        let totals = Totals::of(entry);
        let mut names = HashMap::from([("#ttl".to_owned(), "ttl".to_owned())]);
        let mut values: Item = HashMap::from([(":ttl".to_owned(), n(aggregate_ttl(entry.day())))]);
        let mut adds = Vec::new();
        for (g, group) in rollup_keys(entry).iter().enumerate() {
            for (c, (counter, value)) in COUNTERS.iter().zip(counter_values(&totals)).enumerate() {
                let (name, val) = (format!("#g{g}c{c}"), format!(":g{g}c{c}"));
                adds.push(format!("{name} {val}"));
                names.insert(name, format!("{group}|{counter}"));
                values.insert(val, n(value));
            }
        }
        let rollup = Update::builder()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(&entry.user_id, rollup_sort_key(entry.day()))))
            .update_expression(format!("SET #ttl = :ttl ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;

        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(rollup).build(),
        ];
        if let Some(settlement) = settlement {
            let u = settlement_update(settlement);
            let update = Update::builder()
                .table_name(&self.usage_table)
                .set_key(Some(user_key(
                    &entry.user_id,
                    budget_sort_key(&settlement.month),
                )))
                .update_expression(u.expression)
                .set_expression_attribute_names(Some(u.names))
                .set_expression_attribute_values(Some(u.values))
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    /// Whether the entry item exists (consistent read): how an ambiguous cancellation
    /// (no reasons given) is resolved.
    async fn entry_exists(&self, entry: &UsageEntry) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(&entry.user_id, entry_sort_key(entry))))
            .projection_expression("sk")
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item.is_some())
    }

    /// Queries one partition of `table` with `key_condition`, following pages until
    /// `want` items were read or the partition range is exhausted.
    async fn query_all(
        &self,
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
            let mut q = self
                .client
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

#[async_trait]
impl UsageStore for DynamoUsageStore {
    async fn record(
        &self,
        entry: &UsageEntry,
        settlement: Option<&Settlement>,
    ) -> Result<(), StoreError> {
        let items = self.record_items(entry, settlement)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let verdict = match &err {
                SdkError::ServiceError(se) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        let reasons = c.cancellation_reasons();
                        if reasons.is_empty() {
                            // No reasons: find out whether the entry is there.
                            if self.entry_exists(entry).await? {
                                Cancelled::AlreadyRecorded
                            } else {
                                Cancelled::Retry
                            }
                        } else {
                            classify_cancellation(reasons)
                        }
                    }
                    TransactWriteItemsError::TransactionInProgressException(_)
                    | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
                    | TransactWriteItemsError::RequestLimitExceeded(_) => Cancelled::Retry,
                    _ => Cancelled::Fatal,
                },
                _ => Cancelled::Fatal,
            };
            match verdict {
                Cancelled::AlreadyRecorded => return Ok(()),
                Cancelled::Retry if attempt < TRANSACT_ATTEMPTS => backoff(attempt).await,
                _ => return Err(backend(err)),
            }
        }
    }

    async fn entries(
        &self,
        user_id: &str,
        start: &str,
        end: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<UsageEntry>, Option<String>), StoreError> {
        // Sort keys are `timestamp#request_id`; `end` bounds the timestamp part.
        let upper = match before {
            Some(b) if b < end => b,
            _ => end,
        };
        if limit == 0 || start >= upper {
            return Ok((Vec::new(), None));
        }
        // A key condition allows one comparison on the sort key: BETWEEN is inclusive,
        // so an item whose sk is exactly `upper` is read (first, newest first) and
        // dropped here; one more item tells whether more may follow.
        let (condition, vals) = if start.is_empty() {
            (
                "#pk = :u AND #sk < :upper",
                values(vec![(":u", s(user_id)), (":upper", s(upper))]),
            )
        } else {
            (
                "#pk = :u AND #sk BETWEEN :start AND :upper",
                values(vec![
                    (":u", s(user_id)),
                    (":start", s(start)),
                    (":upper", s(upper)),
                ]),
            )
        };
        let items = self
            .query_all(
                &self.usage_table,
                condition,
                &names(&[("#pk", "user_id"), ("#sk", "sk")]),
                &vals,
                false,
                Some(limit.saturating_add(2)),
            )
            .await?;
        let mut entries = Vec::with_capacity(limit.min(items.len()));
        let mut last_key = None;
        let mut more = false;
        for item in items {
            let sk = string(&item, "sk")?.to_owned();
            if sk.as_str() >= upper {
                continue;
            }
            if entries.len() == limit {
                more = true;
                break;
            }
            entries.push(serde_dynamo::from_item::<_, UsageEntry>(item).map_err(corrupt)?);
            last_key = Some(sk);
        }
        Ok((entries, if more { last_key } else { None }))
    }

    async fn provider_totals(
        &self,
        provider: Provider,
        start: &str,
        end: &str,
        now_unix: i64,
    ) -> Result<(BTreeMap<String, Totals>, usize), StoreError> {
        let mut groups = BTreeMap::new();
        let mut read = 0;
        if start >= end {
            return Ok((groups, read));
        }
        let mut start_key: Option<Item> = None;
        loop {
            // An index query (never a scan); index reads cannot be strongly consistent.
            let out = self
                .client
                .query()
                .table_name(&self.usage_table)
                .index_name("ProviderIndex")
                .key_condition_expression("#p = :p AND #ts BETWEEN :start AND :end")
                .set_expression_attribute_names(Some(names(&[
                    ("#p", "provider"),
                    ("#ts", "timestamp"),
                ])))
                .set_expression_attribute_values(Some(values(vec![
                    (":p", s(provider.as_str())),
                    (":start", s(start)),
                    (":end", s(end)),
                ])))
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                read += 1;
                let e: UsageEntry = serde_dynamo::from_item(item).map_err(corrupt)?;
                // BETWEEN includes `end`; the range excludes it. Expiry is lazy.
                if e.timestamp.as_str() < end && e.ttl > now_unix {
                    add_to_groups(&mut groups, &e, true);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => return Ok((groups, read)),
            }
        }
    }

    async fn rollups(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyRollup>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let items = self
            .query_all(
                &self.usage_table,
                "#pk = :u AND #sk BETWEEN :from AND :to",
                &names(&[("#pk", "user_id"), ("#sk", "sk")]),
                &values(vec![
                    (":u", s(user_id)),
                    (":from", s(rollup_sort_key(from))),
                    (":to", s(rollup_sort_key(to))),
                ]),
                true,
                None,
            )
            .await?;
        items.iter().map(rollup_of).collect()
    }
}

#[async_trait]
impl BudgetStore for DynamoUsageStore {
    async fn reserve(
        &self,
        user_id: &str,
        month: &str,
        amount: NanoUsd,
        limit: Option<NanoUsd>,
    ) -> Result<bool, StoreError> {
        let names = names(&[
            ("#reserved", "reserved"),
            ("#committed", "committed"),
            ("#ttl", "ttl"),
        ]);
        let mut vals = values(vec![(":a", n(amount.0)), (":ttl", n(aggregate_ttl(month)))]);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, budget_sort_key(month))))
            .update_expression(
                "SET #ttl = if_not_exists(#ttl, :ttl) ADD #reserved :a, #committed :a",
            );
        if let Some(limit) = limit {
            // committed + amount <= limit, as committed <= limit - amount.
            let Some(max) = limit.0.checked_sub(amount.0) else {
                return Ok(false);
            };
            if max < 0 {
                return Ok(false);
            }
            vals.insert(":max".to_owned(), n(max));
            request = request
                .condition_expression("attribute_not_exists(#committed) OR #committed <= :max");
        }
        let result = request
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(vals))
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

    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        let u = settlement_update(settlement);
        self.client
            .update_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, budget_sort_key(&settlement.month))))
            .update_expression(u.expression)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn month(&self, user_id: &str, month: &str) -> Result<MonthCounters, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, budget_sort_key(month))))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item else {
            return Ok(MonthCounters::default());
        };
        Ok(MonthCounters {
            spent: NanoUsd(number(&item, "spent")?.unwrap_or(0)),
            reserved: NanoUsd(number(&item, "reserved")?.unwrap_or(0)),
        })
    }

    async fn mark_alerted(
        &self,
        user_id: &str,
        month: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        let mut item = user_key(user_id, format!("{}{threshold}", alert_prefix(month)));
        item.insert("threshold".to_owned(), n(threshold));
        item.insert("ttl".to_owned(), n(aggregate_ttl(month)));
        let result = self
            .client
            .put_item()
            .table_name(&self.usage_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn alerted(&self, user_id: &str, month: &str) -> Result<Vec<u32>, StoreError> {
        let items = self
            .query_all(
                &self.usage_table,
                "#pk = :u AND begins_with(#sk, :prefix)",
                &names(&[("#pk", "user_id"), ("#sk", "sk")]),
                &values(vec![
                    (":u", s(user_id)),
                    (":prefix", s(alert_prefix(month))),
                ]),
                true,
                None,
            )
            .await?;
        let mut thresholds = items
            .iter()
            .map(|item| {
                number::<u32>(item, "threshold")?
                    .ok_or_else(|| StoreError::Corrupt("alert without threshold".into()))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        // Sort keys order "100" before "50": sort by value.
        thresholds.sort_unstable();
        Ok(thresholds)
    }
}

#[async_trait]
impl ResponseCache for DynamoUsageStore {
    async fn get_cached(&self, key: &str, now_unix: i64) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cache_table)
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
            .table_name(&self.cache_table)
            .item("key", s(key))
            .item("value", s(value))
            .item("expires_at", n(expires_unix))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The months `YYYY-MM` from `start`'s to `end`'s, in order.
fn months_between(start: &str, end: &str) -> Result<Vec<String>, StoreError> {
    let parse = |t: &str| {
        t.get(..7)
            .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
            .ok_or_else(|| StoreError::Backend(format!("audit range bound is not a date: {t}")))
    };
    let (mut month, last) = (parse(start)?, parse(end)?);
    let mut months = Vec::new();
    while month <= last {
        months.push(format!("{:04}-{:02}", month.year(), month.month()));
        month = match month.checked_add_months(chrono::Months::new(1)) {
            Some(m) => m,
            None => break,
        };
    }
    Ok(months)
}

#[async_trait]
impl AuditStore for DynamoUsageStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(event).map_err(corrupt)?;
        item.insert(
            "month".to_owned(),
            s(event.timestamp.get(..7).unwrap_or("")),
        );
        item.insert(
            "sk".to_owned(),
            s(format!("{}#{}", event.timestamp, event.id)),
        );
        self.client
            .put_item()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(
        &self,
        start: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        for month in months_between(start, end)? {
            // BETWEEN is inclusive: an item whose sk is exactly `end` is dropped below.
            let items = self
                .query_all(
                    &self.audit_table,
                    "#pk = :m AND #sk BETWEEN :start AND :end",
                    &names(&[("#pk", "month"), ("#sk", "sk")]),
                    &values(vec![
                        (":m", s(month)),
                        (":start", s(start)),
                        (":end", s(end)),
                    ]),
                    true,
                    Some(limit - events.len() + 1),
                )
                .await?;
            for item in items {
                if string(&item, "sk")? >= end {
                    continue;
                }
                events.push(serde_dynamo::from_item::<_, AuditEvent>(item).map_err(corrupt)?);
                if events.len() == limit {
                    return Ok(events);
                }
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellations_are_classified() {
        let already = [reason("ConditionalCheckFailed"), reason("None")];
        assert!(matches!(
            classify_cancellation(&already),
            Cancelled::AlreadyRecorded
        ));
        let conflict = [reason("None"), reason("TransactionConflict")];
        assert!(matches!(classify_cancellation(&conflict), Cancelled::Retry));
        let invalid = [reason("None"), reason("ValidationError")];
        assert!(matches!(classify_cancellation(&invalid), Cancelled::Fatal));
    }

    #[test]
    fn rollups_are_rebuilt_from_flat_attributes() {
        let item: Item = HashMap::from([
            ("user_id".to_owned(), s("u")),
            ("sk".to_owned(), s("rollup#2026-11-20")),
            ("ttl".to_owned(), n(1)),
            ("all|requests".to_owned(), n(2)),
            ("all|cost_nanos".to_owned(), n(-3)),
            ("model:anthropic.claude-v2:0|tokens".to_owned(), n(40)),
            ("all|future_counter".to_owned(), n(9)),
        ]);
        let r = rollup_of(&item).unwrap();
        assert_eq!(r.day, "2026-11-20");
        assert_eq!(r.groups["all"].requests, 2);
        assert_eq!(r.groups["all"].cost_nanos, -3);
        assert_eq!(r.groups["model:anthropic.claude-v2:0"].tokens, 40);
        assert_eq!(r.groups.len(), 2);
    }

    #[test]
    fn audit_months_span_the_range_in_order() {
        assert_eq!(
            months_between("2030-11-15", "2031-02-01T00:00:00.000Z").unwrap(),
            ["2030-11", "2030-12", "2031-01", "2031-02"]
        );
        assert!(months_between("", "2031-02").is_err());
    }

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

    #[test]
    fn settlement_moves_reserved_to_spent() {
        let u = settlement_update(&Settlement {
            month: "2026-11".into(),
            reserved: NanoUsd(50),
            actual: NanoUsd(12),
        });
        assert_eq!(u.values[":actual"], n(12));
        assert_eq!(u.values[":neg_reserved"], n(-50));
        assert_eq!(u.values[":delta"], n(-38));
    }
}
