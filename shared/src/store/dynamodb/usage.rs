//! The usage store on the usage table: entries (sk `<timestamp>#<request_id>`) and daily
//! rollups (sk `rollup#<YYYY-MM-DD>`; a tenant's under its owner id). An entry, its
//! rollups (its user's and, for a member, its tenant's) and its settlement are one
//! `TransactWriteItems` whose Put is conditional on the entry not existing; provider
//! health follows it, outside the transaction ([`super::health`]).

use super::reservations::{STATE_READS, Stored, expected, settlement_holders};
use super::txn::{Txn, failed};
use super::{
    DynamoUsageStore, Item, aggregate_ttl, backend, build_error, corrupt, n, names, query_all, s,
    string, user_key, values,
};
use crate::provider::Provider;
use crate::store::tenant_rollup::{HOUR_ERROR_PREFIX, is_hourly, rollup_targets};
use crate::store::{
    DailyRollup, Granularity, HealthCounters, Settlement, StoreError, Totals, UsageEntry,
    UsageStore, add_to_groups,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::{BTreeMap, HashMap};

/// Attempts of a usage transaction that lost to a concurrent one.
const TRANSACT_ATTEMPTS: u32 = 5;

fn rollup_sort_key(day: &str) -> String {
    format!("rollup#{day}")
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

/// A rollup item: a day's (`rollup#<day>`) or, for a tenant, one hour's of it
/// (`rollup#<day>#<HH>`), read back as (part of) that day's rollup.
fn rollup_of(item: &Item) -> Result<DailyRollup, StoreError> {
    let sk = string(item, "sk")?;
    let day = sk
        .strip_prefix("rollup#")
        .map(|rest| rest.split_once('#').map_or(rest, |(day, _hour)| day))
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

impl DynamoUsageStore {
    /// The entry's conditional Put and the increments of its rollups (its user's and,
    /// for a tenant member, its tenant's): one transaction, so the Put's condition makes
    /// a repeat add to neither.
    fn entry_writes(&self, entry: &UsageEntry) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item: Item = serde_dynamo::to_item(entry).map_err(corrupt)?;
        item.insert("sk".to_owned(), s(entry.sort_key()));
        let put = Put::builder()
            .table_name(&self.usage_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_error)?;
        let mut writes = vec![TransactWriteItem::builder().put(put).build()];
        for (owner, groups) in rollup_targets(entry) {
            // A tenant's hourly groups go to an item of their own per hour: the day's
            // item would otherwise grow with 24 x models and near DynamoDB's item limit.
            let (hourly, daily): (Vec<String>, Vec<String>) =
                groups.into_iter().partition(|g| is_hourly(g));
            writes.push(self.rollup_update(&owner, entry, rollup_sort_key(entry.day()), &daily)?);
            if !hourly.is_empty() {
                let hour = entry.timestamp.get(11..13).unwrap_or("00");
                let sk = format!("{}#{hour}", rollup_sort_key(entry.day()));
                writes.push(self.rollup_update(&owner, entry, sk, &hourly)?);
            }
        }
        Ok(writes)
    }

    /// Adds the entry's totals to `groups` of `owner`'s rollup item `sk`.
    fn rollup_update(
        &self,
        owner: &str,
        entry: &UsageEntry,
        sk: String,
        groups: &[String],
    ) -> Result<TransactWriteItem, StoreError> {
        let totals = Totals::of(entry);
        let mut names = HashMap::from([("#ttl".to_owned(), "ttl".to_owned())]);
        let mut values: Item = HashMap::from([(":ttl".to_owned(), n(aggregate_ttl(entry.day())))]);
        let mut adds = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for (c, (counter, value)) in COUNTERS.iter().zip(counter_values(&totals)).enumerate() {
                // A tenant's hourly groups keep only what is not zero (they are many), and
                // an error class group only its count, all that is read of it.
                let error_class = group.starts_with(HOUR_ERROR_PREFIX);
                if (value == 0 && is_hourly(group)) || (error_class && *counter != "requests") {
                    continue;
                }
                let (name, val) = (format!("#g{g}c{c}"), format!(":g{g}c{c}"));
                adds.push(format!("{name} {val}"));
                names.insert(name, format!("{group}|{counter}"));
                values.insert(val, n(value));
            }
        }
        let rollup = Update::builder()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(owner, sk)))
            .update_expression(format!("SET #ttl = :ttl ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(rollup).build())
    }

    /// Whether the entry item exists (consistent read): how an ambiguous cancellation
    /// (no reasons given) is resolved.
    async fn entry_exists(&self, entry: &UsageEntry) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.usage_table)
            .set_key(Some(user_key(&entry.user_id, entry.sort_key())))
            .projection_expression("sk")
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item.is_some())
    }
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
        // The settlement's holders (the user, and the tenant principal when the tenant
        // holds the same reservation), each with what its reservation is assumed to be.
        let mut holders: Vec<(String, Stored)> = match settlement {
            Some(s) => settlement_holders(&entry.user_id, s)
                .into_iter()
                .map(|h| (h, expected(s)))
                .collect(),
            None => Vec::new(),
        };
        let mut reads = 0;
        loop {
            let mut items = base.clone();
            let mut reservation_at = Vec::new();
            if let Some(s) = settlement {
                // A request that reserved nothing has no reservation item to update: its
                // entry (whose Put fails if it exists) is what makes a repeat a no-op.
                let mark = s.reserved.0 > 0;
                for (holder, stored) in &holders {
                    if let Some((reservation, counter)) =
                        self.settlement_writes(holder, s, *stored, mark, now)?
                    {
                        items.push(counter);
                        if let Some(r) = reservation {
                            reservation_at.push(items.len());
                            items.push(r);
                        }
                    }
                }
            }
            let codes = match self.transact(&items, TRANSACT_ATTEMPTS).await? {
                Txn::Committed => {
                    // Newly written (a repeat is cancelled below): count it, best effort.
                    self.add_health(entry).await;
                    return Ok(());
                }
                Txn::Cancelled(codes) => codes,
            };
            // The entry's Put failed its condition: recorded already, settlement included.
            if failed(&codes, 0) || (codes.is_empty() && self.entry_exists(entry).await?) {
                return Ok(());
            }
            let reservation_failed = reservation_at.iter().any(|i| failed(&codes, *i));
            if !codes.is_empty() && !reservation_failed {
                return Err(StoreError::Backend(format!(
                    "usage transaction cancelled: {codes:?}"
                )));
            }
            // A reservation was not in the state assumed: read them and rebuild.
            reads += 1;
            if reads > STATE_READS {
                return Err(StoreError::Backend(format!(
                    "usage transaction of {} kept being cancelled",
                    entry.request_id
                )));
            }
            if let Some(s) = settlement {
                for (holder, stored) in &mut holders {
                    *stored = self
                        .read_reservation(holder, &s.month, &s.reservation_id)
                        .await?;
                }
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
        let items = query_all(
            &self.client,
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

    async fn health(
        &self,
        granularity: Granularity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, HealthCounters>, StoreError> {
        self.read_health(granularity, from, to).await
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
        let items = query_all(
            &self.client,
            &self.usage_table,
            "#pk = :u AND #sk BETWEEN :from AND :to",
            &names(&[("#pk", "user_id"), ("#sk", "sk")]),
            &values(vec![
                (":u", s(user_id)),
                (":from", s(rollup_sort_key(from))),
                // `#~` sorts after the hour items of the last day (`#00` to `#23`).
                (":to", s(format!("{}#~", rollup_sort_key(to)))),
            ]),
            true,
            None,
        )
        .await?;
        // Items come in sort-key order: a day's item, then its hours'.
        let mut days: Vec<DailyRollup> = Vec::new();
        for item in &items {
            let part = rollup_of(item)?;
            match days.last_mut() {
                Some(d) if d.day == part.day => {
                    for (group, t) in part.groups {
                        d.groups.entry(group).or_default().add(&t);
                    }
                }
                _ => days.push(part),
            }
        }
        Ok(days)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

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
        let hour: Item = HashMap::from([
            ("user_id".to_owned(), s("tenant/acme")),
            ("sk".to_owned(), s("rollup#2026-11-20#13")),
            ("hour:13|openai/gpt-4o|requests".to_owned(), n(3)),
        ]);
        let r = rollup_of(&hour).unwrap();
        assert_eq!(r.day, "2026-11-20");
        assert_eq!(r.groups["hour:13|openai/gpt-4o"].requests, 3);
    }
}
