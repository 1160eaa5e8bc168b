//! The DynamoDB backends of the usage, budget, cache and audit stores.
//!
//! The usage table (pk `user_id`, sk `sk`) holds four kinds of items per user:
//! - entries, sk `<timestamp>#<request_id>`, with the top-level `provider`,
//!   `operation_type`, `timestamp` (the GSIs' keys) and `ttl`;
//! - daily rollups, sk `rollup#<YYYY-MM-DD>`, one flat number attribute per group and
//!   counter (`all|requests`, `provider:anthropic|cost_nanos`, ...);
//! - monthly budget counters, sk `budget#<YYYY-MM>`: `spent`, `reserved`, `committed`;
//! - budget reservations, sk `resv#<YYYY-MM>#<reservation id>`: `amount`, `expires_at`
//!   (the end of the lease) and `state` (`held`, `released`, `settled`);
//! - budget alert markers, sk `alert#<YYYY-MM>#<threshold>`.
//!
//! Entry sort keys start with a digit and every other kind with a letter, so a range
//! query on timestamps never returns anything but entries. Only entries carry the GSI
//! key attributes, so the indexes stay sparse.
//!
//! An entry, its rollup and its settlement are written in one `TransactWriteItems`
//! whose Put is conditional on the entry not existing: recording twice changes nothing.
//!
//! Budget writes are retried (by the SDK after a timeout, by the writer after an error)
//! and a write that landed may be sent again, so none is a bare counter add: every
//! reservation and settlement is a transaction of the counter update with a conditional
//! write of the reservation's item, whose state says what was applied already. The
//! counter's `reserved` is always the sum of the month's `held` reservation amounts.

use super::{
    AuditEvent, AuditStore, BudgetStore, DailyRollup, MonthCounters, Reservation, ResponseCache,
    Settlement, StoreError, Totals, UsageEntry, UsageStore, add_to_groups, rollup_keys,
};
use crate::money::NanoUsd;
use crate::provider::Provider;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
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

/// Attempts of a budget transaction that lost to a concurrent one: every reservation of
/// a user's month updates the same counter item, so a burst conflicts more often than
/// usage writes do.
const BUDGET_ATTEMPTS: u32 = 8;

/// Re-reads of a reservation whose state was not what a transaction assumed. States only
/// move forward (absent, held, released, settled), so a few always suffice.
const STATE_READS: u32 = 5;

/// How long a reservation item is kept once it left `held`: the window in which a
/// retried reserve or settle of its id is recognised (retries come within seconds, the
/// lease ends at most a minute after the deadline). A `held` item carries the month's
/// TTL instead: the counter counts it until it is released, so it must not vanish first.
const RESERVATION_MARKER_SECS: i64 = 86_400;

/// Reservation states (attribute `state`).
const HELD: &str = "held";
const RELEASED: &str = "released";
const SETTLED: &str = "settled";

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

fn user_key(user_id: &str, sk: String) -> Item {
    HashMap::from([("user_id".to_owned(), s(user_id)), ("sk".to_owned(), s(sk))])
}

/// A few milliseconds, doubling per attempt, with full jitter.
async fn backoff(attempt: u32) {
    let cap_ms = 20u64 << attempt.min(6);
    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % cap_ms.max(1);
    tokio::time::sleep(Duration::from_millis(jitter + 5)).await;
}

fn reservation_prefix(month: &str) -> String {
    format!("resv#{month}#")
}

fn reservation_sort_key(month: &str, id: &str) -> String {
    format!("{}{id}", reservation_prefix(month))
}

/// The TTL of a reservation item that leaves `held`: a day from the later of the clock
/// and `now_unix` (the caller's now, which tests move ahead of the clock).
fn marker_ttl(now_unix: i64) -> i64 {
    chrono::Utc::now().timestamp().max(now_unix) + RESERVATION_MARKER_SECS
}

/// What is stored under a reservation's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Absent,
    Held(NanoUsd),
    Released,
    Settled,
}

fn stored_of(item: Option<&Item>) -> Result<Stored, StoreError> {
    let Some(item) = item else {
        return Ok(Stored::Absent);
    };
    match string(item, "state")? {
        HELD => Ok(Stored::Held(NanoUsd(number(item, "amount")?.unwrap_or(0)))),
        RELEASED => Ok(Stored::Released),
        SETTLED => Ok(Stored::Settled),
        other => Err(StoreError::Corrupt(format!(
            "unknown reservation state {other}"
        ))),
    }
}

/// What a settlement's reservation most likely is, before reading it: held with the
/// amount the request reserved, or absent when it reserved nothing. A wrong guess only
/// fails the transaction's condition, and then the item is read.
fn expected(s: &Settlement) -> Stored {
    if s.reserved.0 > 0 {
        Stored::Held(s.reserved)
    } else {
        Stored::Absent
    }
}

/// Moves a month's counters: `spent` up by `spent`, `reserved` down by `released` (what
/// a reservation gives back) and `committed` (= spent + reserved) by the difference.
fn counter_update(
    table: &str,
    user_id: &str,
    month: &str,
    spent: NanoUsd,
    released: NanoUsd,
) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(user_key(user_id, budget_sort_key(month))))
        .update_expression(
            "SET #ttl = if_not_exists(#ttl, :ttl) \
             ADD #spent :spent, #reserved :neg_released, #committed :delta",
        )
        .set_expression_attribute_names(Some(names(&[
            ("#spent", "spent"),
            ("#reserved", "reserved"),
            ("#committed", "committed"),
            ("#ttl", "ttl"),
        ])))
        .set_expression_attribute_values(Some(values(vec![
            (":spent", n(spent.0)),
            (":neg_released", n(-i128::from(released.0))),
            (":delta", n(i128::from(spent.0) - i128::from(released.0))),
            (":ttl", n(aggregate_ttl(month))),
        ])))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Moves a reservation item from `from` to `to`, on condition that it is still in `from`
/// and, when given, still holds `amount` (what the counter update beside it gives back).
fn state_update(
    table: &str,
    user_id: &str,
    sk: String,
    from: &str,
    amount: Option<NanoUsd>,
    to: &str,
    ttl: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut attr_names = names(&[("#state", "state"), ("#ttl", "ttl")]);
    let mut vals = values(vec![(":from", s(from)), (":to", s(to)), (":ttl", n(ttl))]);
    let mut condition = "#state = :from".to_owned();
    if let Some(amount) = amount {
        attr_names.insert("#amount".to_owned(), "amount".to_owned());
        vals.insert(":amount".to_owned(), n(amount.0));
        condition.push_str(" AND #amount = :amount");
    }
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(user_key(user_id, sk)))
        .update_expression("SET #state = :to, #ttl = :ttl")
        .condition_expression(condition)
        .set_expression_attribute_names(Some(attr_names))
        .set_expression_attribute_values(Some(vals))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The item that marks a settlement with no reservation behind it as applied; written
/// only if no item has that key.
fn settled_marker(
    table: &str,
    user_id: &str,
    settlement: &Settlement,
    now_unix: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut item = user_key(
        user_id,
        reservation_sort_key(&settlement.month, &settlement.reservation_id),
    );
    item.insert("month".to_owned(), s(&settlement.month));
    item.insert("amount".to_owned(), n(0));
    item.insert("expires_at".to_owned(), n(now_unix));
    item.insert("state".to_owned(), s(SETTLED));
    item.insert("ttl".to_owned(), n(marker_ttl(now_unix)));
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(sk)")
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What a cancelled transaction means.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// A condition failed: each item's code ("None" where its condition held), in
    /// request order; empty when the service gave no reasons.
    Conditions(Vec<String>),
    /// Lost to a concurrent transaction, or throttled: worth another attempt.
    Retry,
    Fatal,
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

fn classify_cancellation(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> Cancellation {
    let codes: Vec<String> = reasons
        .iter()
        .map(|r| r.code().unwrap_or("None").to_owned())
        .collect();
    // A failed condition is an answer about the items' state (another attempt would
    // fail it again), even when another item also conflicted.
    if codes.is_empty() || codes.iter().any(|c| c == CONDITION_FAILED) {
        return Cancellation::Conditions(codes);
    }
    let retryable = codes.iter().any(|c| {
        matches!(
            c.as_str(),
            "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded"
        )
    });
    if retryable {
        Cancellation::Retry
    } else {
        Cancellation::Fatal
    }
}

/// Whether item `i` of a cancelled transaction failed its condition.
fn failed(codes: &[String], i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == CONDITION_FAILED)
}

/// How a transaction ended, once conflicts and throttling were retried.
enum Txn {
    Committed,
    /// Nothing was written: a condition failed (the codes of [`Cancellation::Conditions`]).
    Cancelled(Vec<String>),
}

impl DynamoUsageStore {
    /// The entry's conditional Put and its rollup's increments.
    fn entry_writes(&self, entry: &UsageEntry) -> Result<Vec<TransactWriteItem>, StoreError> {
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

        Ok(vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(rollup).build(),
        ])
    }

    /// Runs one transaction, retrying conflicts and throttling up to `attempts` times.
    async fn transact(
        &self,
        items: &[TransactWriteItem],
        attempts: u32,
    ) -> Result<Txn, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.to_vec()))
                // The SDK resends this token when it retries a call that timed out, and
                // DynamoDB answers a resent token with the first call's outcome instead
                // of applying it again: that saves a cancelled retry and a re-read.
                // Correctness does not rest on it (the conditions carry it). A fresh
                // one per attempt: a token sent again with other items is refused.
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Txn::Committed),
                Err(e) => e,
            };
            let retry = match &err {
                SdkError::ServiceError(se) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        match classify_cancellation(c.cancellation_reasons()) {
                            Cancellation::Conditions(codes) => return Ok(Txn::Cancelled(codes)),
                            Cancellation::Retry => true,
                            Cancellation::Fatal => false,
                        }
                    }
                    TransactWriteItemsError::TransactionInProgressException(_)
                    | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
                    | TransactWriteItemsError::RequestLimitExceeded(_) => true,
                    _ => false,
                },
                _ => false,
            };
            if retry && attempt < attempts {
                backoff(attempt).await;
            } else {
                return Err(backend(err));
            }
        }
    }

    /// The reservation item's state (consistent read).
    async fn read_reservation(
        &self,
        user_id: &str,
        month: &str,
        id: &str,
    ) -> Result<Stored, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, reservation_sort_key(month, id))))
            .projection_expression("#state, #amount")
            .set_expression_attribute_names(Some(names(&[
                ("#state", "state"),
                ("#amount", "amount"),
            ])))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        stored_of(out.item.as_ref())
    }

    /// The writes that settle `s` given what is stored under its reservation: the
    /// reservation item's conditional write, if any, and the counter update; `None` when
    /// it was settled already. `mark`: when nothing is stored, leave a settled marker so
    /// that a repeat is recognised (a usage entry carrying the settlement is a marker
    /// itself).
    fn settlement_writes(
        &self,
        user_id: &str,
        s: &Settlement,
        stored: Stored,
        mark: bool,
        now_unix: i64,
    ) -> Result<Option<(Option<TransactWriteItem>, TransactWriteItem)>, StoreError> {
        let table = &self.usage_table;
        let sk = || reservation_sort_key(&s.month, &s.reservation_id);
        let ttl = marker_ttl(now_unix);
        let (reservation, released) = match stored {
            Stored::Settled => return Ok(None),
            Stored::Held(amount) => (
                Some(state_update(
                    table,
                    user_id,
                    sk(),
                    HELD,
                    Some(amount),
                    SETTLED,
                    ttl,
                )?),
                amount,
            ),
            // Its lease ended and gave its amount back already: only the cost is added.
            Stored::Released => (
                Some(state_update(
                    table,
                    user_id,
                    sk(),
                    RELEASED,
                    None,
                    SETTLED,
                    ttl,
                )?),
                NanoUsd::ZERO,
            ),
            Stored::Absent if mark => (
                Some(settled_marker(table, user_id, s, now_unix)?),
                NanoUsd::ZERO,
            ),
            Stored::Absent => (None, NanoUsd::ZERO),
        };
        let counter = counter_update(table, user_id, &s.month, s.actual, released)?;
        Ok(Some((reservation, counter)))
    }

    /// The reservation's Put (only if its id is new) and the counter's conditional add
    /// (only while `committed <= max`, when a limit gives a `max`).
    fn reserve_writes(
        &self,
        user_id: &str,
        r: &Reservation,
        max: Option<i64>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item = user_key(user_id, reservation_sort_key(&r.month, &r.id));
        item.insert("month".to_owned(), s(&r.month));
        item.insert("amount".to_owned(), n(r.amount.0));
        item.insert("expires_at".to_owned(), n(r.expires_unix));
        item.insert("state".to_owned(), s(HELD));
        item.insert("ttl".to_owned(), n(aggregate_ttl(&r.month)));
        let put = Put::builder()
            .table_name(&self.usage_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_error)?;

        let mut vals = values(vec![
            (":a", n(r.amount.0)),
            (":ttl", n(aggregate_ttl(&r.month))),
        ]);
        let mut counter = Update::builder()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, budget_sort_key(&r.month))))
            .update_expression(
                "SET #ttl = if_not_exists(#ttl, :ttl) ADD #reserved :a, #committed :a",
            )
            .set_expression_attribute_names(Some(names(&[
                ("#reserved", "reserved"),
                ("#committed", "committed"),
                ("#ttl", "ttl"),
            ])));
        if let Some(max) = max {
            vals.insert(":max".to_owned(), n(max));
            counter = counter
                .condition_expression("attribute_not_exists(#committed) OR #committed <= :max");
        }
        let counter = counter
            .set_expression_attribute_values(Some(vals))
            .build()
            .map_err(build_error)?;
        Ok(vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counter).build(),
        ])
    }

    /// The month's budget item (consistent read).
    async fn budget_item(&self, user_id: &str, month: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(user_id, budget_sort_key(month))))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    /// The user's held reservations of `month` whose lease ended by `now_unix`: sort key
    /// and amount. One Query on the user's `resv#<month>#` items (read-only, so the
    /// llm-usage role can run it); the filter saves transfer, not reads.
    async fn lapsed_reservations(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<Vec<(String, NanoUsd)>, StoreError> {
        let mut lapsed = Vec::new();
        let mut start_key: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.usage_table)
                .key_condition_expression("#pk = :u AND begins_with(#sk, :prefix)")
                .filter_expression("#state = :held AND #exp <= :now")
                .projection_expression("#sk, #amount")
                .set_expression_attribute_names(Some(names(&[
                    ("#pk", "user_id"),
                    ("#sk", "sk"),
                    ("#state", "state"),
                    ("#exp", "expires_at"),
                    ("#amount", "amount"),
                ])))
                .set_expression_attribute_values(Some(values(vec![
                    (":u", s(user_id)),
                    (":prefix", s(reservation_prefix(month))),
                    (":held", s(HELD)),
                    (":now", n(now_unix)),
                ])))
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                let amount = number(&item, "amount")?.unwrap_or(0);
                lapsed.push((string(&item, "sk")?.to_owned(), NanoUsd(amount)));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => return Ok(lapsed),
            }
        }
    }

    /// Releases the user's held reservations of `month` whose lease ended: each moves to
    /// `released` and gives its amount back in one transaction, on condition that it is
    /// still held (a settlement or another sweep may have got there first).
    async fn release_lapsed(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut total: i64 = 0;
        for (sk, amount) in self.lapsed_reservations(user_id, month, now_unix).await? {
            let items = [
                state_update(
                    &self.usage_table,
                    user_id,
                    sk,
                    HELD,
                    None,
                    RELEASED,
                    marker_ttl(now_unix),
                )?,
                counter_update(&self.usage_table, user_id, month, NanoUsd::ZERO, amount)?,
            ];
            match self.transact(&items, BUDGET_ATTEMPTS).await? {
                Txn::Committed => {
                    count += 1;
                    total = total.saturating_add(amount.0);
                }
                // No longer held: whoever moved it accounted for it.
                Txn::Cancelled(_) => {}
            }
        }
        if count > 0 {
            tracing::info!(user_id = %user_id, month = %month, count, released_nanos = total, "expired reservations released");
        }
        Ok(count)
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
        let base = self.entry_writes(entry)?;
        let now = chrono::Utc::now().timestamp();
        let mut stored = settlement.map(expected);
        let mut reads = 0;
        loop {
            let mut items = base.clone();
            let mut reservation_at = None;
            if let (Some(s), Some(st)) = (settlement, stored) {
                // A request that reserved nothing has no reservation item to update: its
                // entry (whose Put fails if it exists) is what makes a repeat a no-op.
                let mark = s.reserved.0 > 0;
                if let Some((reservation, counter)) =
                    self.settlement_writes(&entry.user_id, s, st, mark, now)?
                {
                    items.push(counter);
                    if let Some(r) = reservation {
                        reservation_at = Some(items.len());
                        items.push(r);
                    }
                }
            }
            let codes = match self.transact(&items, TRANSACT_ATTEMPTS).await? {
                Txn::Committed => return Ok(()),
                Txn::Cancelled(codes) => codes,
            };
            // The entry's Put failed its condition: recorded already, settlement included.
            if failed(&codes, 0) || (codes.is_empty() && self.entry_exists(entry).await?) {
                return Ok(());
            }
            let reservation_failed = reservation_at.is_some_and(|i| failed(&codes, i));
            if !codes.is_empty() && !reservation_failed {
                return Err(StoreError::Backend(format!(
                    "usage transaction cancelled: {codes:?}"
                )));
            }
            // The reservation was not in the state assumed: read it and rebuild.
            reads += 1;
            if reads > STATE_READS {
                return Err(StoreError::Backend(format!(
                    "usage transaction of {} kept being cancelled",
                    entry.request_id
                )));
            }
            if let Some(s) = settlement {
                stored = Some(
                    self.read_reservation(&entry.user_id, &s.month, &s.reservation_id)
                        .await?,
                );
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
        r: &Reservation,
        limit: Option<NanoUsd>,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        // committed + amount <= limit, as committed <= limit - amount.
        let max = match limit {
            None => None,
            Some(l) => match l.0.checked_sub(r.amount.0) {
                Some(max) if max >= 0 => Some(max),
                // It can never fit; a stored id is a retried call granted before.
                _ => {
                    let stored = self.read_reservation(user_id, &r.month, &r.id).await?;
                    return Ok(stored != Stored::Absent);
                }
            },
        };
        let items = self.reserve_writes(user_id, r, max)?;
        let mut released = false;
        let mut reads = 0;
        loop {
            let codes = match self.transact(&items, BUDGET_ATTEMPTS).await? {
                Txn::Committed => return Ok(true),
                Txn::Cancelled(codes) => codes,
            };
            let refused = if failed(&codes, 0) {
                // Its id is stored: granted before, by a call that landed and was retried.
                return Ok(true);
            } else if failed(&codes, 1) {
                true
            } else if codes.is_empty() {
                // No reasons given: the reads tell which condition failed.
                if self.read_reservation(user_id, &r.month, &r.id).await? != Stored::Absent {
                    return Ok(true);
                }
                let committed = match self.budget_item(user_id, &r.month).await? {
                    Some(item) => number::<i64>(&item, "committed")?.unwrap_or(0),
                    None => 0,
                };
                max.is_some_and(|m| committed > m)
            } else {
                return Err(StoreError::Backend(format!(
                    "reservation transaction cancelled: {codes:?}"
                )));
            };
            if refused {
                // Leases that ended may be what fills the month: release them, retry once.
                if released || self.release_lapsed(user_id, &r.month, now_unix).await? == 0 {
                    return Ok(false);
                }
                released = true;
            } else {
                reads += 1;
                if reads > STATE_READS {
                    return Err(StoreError::Backend(format!(
                        "reservation {} kept being cancelled",
                        r.id
                    )));
                }
            }
        }
    }

    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp();
        let mut stored = expected(settlement);
        for _ in 0..=STATE_READS {
            let Some((reservation, counter)) =
                self.settlement_writes(user_id, settlement, stored, true, now)?
            else {
                // Settled already: a retried call that had landed.
                return Ok(());
            };
            let items: Vec<TransactWriteItem> = reservation.into_iter().chain([counter]).collect();
            match self.transact(&items, BUDGET_ATTEMPTS).await? {
                Txn::Committed => return Ok(()),
                // Only the reservation's write has a condition: its state was not the
                // one assumed. Read it and take the branch it calls for.
                Txn::Cancelled(_) => {
                    stored = self
                        .read_reservation(user_id, &settlement.month, &settlement.reservation_id)
                        .await?;
                }
            }
        }
        Err(StoreError::Backend(format!(
            "settlement of {} kept being cancelled",
            settlement.reservation_id
        )))
    }

    async fn month(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<MonthCounters, StoreError> {
        // Reads only (the llm-usage role may not write): expired leases are subtracted,
        // not released. The counter is read first, so that a lease released between
        // the two reads is still in the counter and not subtracted (reserved reads high
        // for a moment) rather than subtracted from a counter that no longer holds it.
        let Some(item) = self.budget_item(user_id, month).await? else {
            return Ok(MonthCounters::default());
        };
        let spent: i64 = number(&item, "spent")?.unwrap_or(0);
        let reserved: i64 = number(&item, "reserved")?.unwrap_or(0);
        // `reserved` is the sum of the held amounts: nothing held, nothing to subtract,
        // and the usual case (no request in flight) costs no Query.
        let lapsed: i64 = if reserved > 0 {
            self.lapsed_reservations(user_id, month, now_unix)
                .await?
                .iter()
                .map(|(_, a)| a.0)
                .fold(0i64, i64::saturating_add)
        } else {
            0
        };
        Ok(MonthCounters {
            spent: NanoUsd(spent),
            reserved: NanoUsd(reserved - lapsed.min(reserved)),
        })
    }

    async fn release_expired(
        &self,
        user_id: &str,
        month: &str,
        now_unix: i64,
    ) -> Result<u64, StoreError> {
        self.release_lapsed(user_id, month, now_unix).await
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
        let codes = |c: &[&str]| c.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let already = [reason("ConditionalCheckFailed"), reason("None")];
        assert_eq!(
            classify_cancellation(&already),
            Cancellation::Conditions(codes(&["ConditionalCheckFailed", "None"]))
        );
        // A failed condition is an answer even when another item conflicted.
        let both = [
            reason("TransactionConflict"),
            reason("ConditionalCheckFailed"),
        ];
        assert!(matches!(
            classify_cancellation(&both),
            Cancellation::Conditions(c) if failed(&c, 1) && !failed(&c, 0)
        ));
        assert_eq!(classify_cancellation(&[]), Cancellation::Conditions(vec![]));
        let conflict = [reason("None"), reason("TransactionConflict")];
        assert_eq!(classify_cancellation(&conflict), Cancellation::Retry);
        let invalid = [reason("None"), reason("ValidationError")];
        assert_eq!(classify_cancellation(&invalid), Cancellation::Fatal);
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
        let item = counter_update("t", "u", "2026-11", NanoUsd(12), NanoUsd(50)).unwrap();
        let u = item.update().unwrap();
        assert_eq!(u.key()["sk"], s("budget#2026-11"));
        let v = u.expression_attribute_values().unwrap();
        assert_eq!(v[":spent"], n(12));
        assert_eq!(v[":neg_released"], n(-50));
        assert_eq!(v[":delta"], n(-38));
    }

    #[test]
    fn reservation_items_are_keyed_by_month_and_id_and_read_back() {
        assert_eq!(
            reservation_sort_key("2026-11", "req-1#0"),
            "resv#2026-11#req-1#0"
        );
        assert!(reservation_sort_key("2026-11", "x").starts_with(&reservation_prefix("2026-11")));
        let item = |state: &str| -> Item {
            HashMap::from([("state".to_owned(), s(state)), ("amount".to_owned(), n(30))])
        };
        assert_eq!(stored_of(None).unwrap(), Stored::Absent);
        assert_eq!(
            stored_of(Some(&item("held"))).unwrap(),
            Stored::Held(NanoUsd(30))
        );
        assert_eq!(
            stored_of(Some(&item("released"))).unwrap(),
            Stored::Released
        );
        assert_eq!(stored_of(Some(&item("settled"))).unwrap(), Stored::Settled);
        assert!(stored_of(Some(&item("lost"))).is_err());
    }

    #[test]
    fn a_held_reservation_settles_only_from_held_with_its_amount() {
        let w = state_update(
            "t",
            "u",
            "resv#m#r".into(),
            HELD,
            Some(NanoUsd(7)),
            SETTLED,
            9,
        )
        .unwrap();
        let u = w.update().unwrap();
        assert_eq!(
            u.condition_expression(),
            Some("#state = :from AND #amount = :amount")
        );
        let v = u.expression_attribute_values().unwrap();
        assert_eq!(
            (&v[":from"], &v[":to"], &v[":amount"]),
            (&s("held"), &s("settled"), &n(7))
        );
    }
}
