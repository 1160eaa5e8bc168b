//! The budget store on the usage table: leased reservations as transactions of the
//! counter with the reservation's item (see [`super::reservations`]), alert markers as
//! conditional puts.

use super::reservations::{
    HELD, RELEASED, STATE_READS, Stored, budget_sort_key, counter_update, expected, marker_ttl,
    reservation_prefix, reservation_sort_key, settlement_holders, state_update,
};
use super::txn::{Txn, failed};
use super::{
    DynamoUsageStore, Item, aggregate_ttl, backend, build_error, n, names, number, query_all, s,
    string, user_key, values,
};
use crate::money::NanoUsd;
use crate::store::{BudgetStore, MonthCounters, Reservation, Settlement, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

/// Attempts of a budget transaction that lost to a concurrent one: every reservation of
/// a user's month updates the same counter item, so a burst conflicts more often than
/// usage writes do.
const BUDGET_ATTEMPTS: u32 = 8;

fn alert_prefix(month: &str) -> String {
    format!("alert#{month}#")
}

impl DynamoUsageStore {
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

    /// One transaction of every holder's reservations (a Put each, if the id is new)
    /// and conditional counter adds: granted in all or none. A holder whose Put fails
    /// has the id already (granted before) and is left out of the next attempt; a
    /// counter that refuses has its holders' lapsed leases released and the rest tried
    /// once more, as [`BudgetStore::reserve`] does.
    async fn reserve_joint(
        &self,
        holders: &[(&str, Option<NanoUsd>)],
        r: &Reservation,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        // committed + amount <= limit, as committed <= limit - amount.
        let mut pending: Vec<(&str, Option<i64>)> = Vec::with_capacity(holders.len());
        for (holder, limit) in holders {
            match limit.map(|l| l.0.checked_sub(r.amount.0)) {
                None => pending.push((holder, None)),
                Some(Some(max)) if max >= 0 => pending.push((holder, Some(max))),
                // It can never fit this holder; a stored id is a retried call granted
                // before.
                Some(_) => {
                    if self.read_reservation(holder, &r.month, &r.id).await? == Stored::Absent {
                        return Ok(false);
                    }
                }
            }
        }
        let mut released = false;
        let mut reads = 0;
        while !pending.is_empty() {
            let mut items = Vec::with_capacity(2 * pending.len());
            for (holder, max) in &pending {
                items.extend(self.reserve_writes(holder, r, *max)?);
            }
            let codes = match self.transact(&items, BUDGET_ATTEMPTS).await? {
                Txn::Committed => return Ok(true),
                Txn::Cancelled(codes) => codes,
            };
            // Holder i's Put is item 2i, its counter 2i + 1.
            let mut known = Vec::new();
            let mut refused = false;
            for (i, (holder, max)) in pending.iter().enumerate() {
                if codes.is_empty() {
                    // No reasons given: the reads tell which condition failed.
                    if self.read_reservation(holder, &r.month, &r.id).await? != Stored::Absent {
                        known.push(i);
                    } else if let Some(max) = max {
                        let committed = match self.budget_item(holder, &r.month).await? {
                            Some(item) => number::<i64>(&item, "committed")?.unwrap_or(0),
                            None => 0,
                        };
                        refused |= committed > *max;
                    }
                } else if failed(&codes, 2 * i) {
                    known.push(i);
                } else if failed(&codes, 2 * i + 1) {
                    refused = true;
                }
            }
            if !codes.is_empty() && known.is_empty() && !refused {
                return Err(StoreError::Backend(format!(
                    "joint reservation transaction cancelled: {codes:?}"
                )));
            }
            if !known.is_empty() {
                for i in known.into_iter().rev() {
                    pending.remove(i);
                }
            } else if refused {
                // Leases that ended may be what fills a month: release them, retry once.
                if released {
                    return Ok(false);
                }
                let mut freed = 0;
                for (holder, _) in &pending {
                    freed += self.release_lapsed(holder, &r.month, now_unix).await?;
                }
                if freed == 0 {
                    return Ok(false);
                }
                released = true;
            } else {
                reads += 1;
                if reads > STATE_READS {
                    return Err(StoreError::Backend(format!(
                        "joint reservation {} kept being cancelled",
                        r.id
                    )));
                }
            }
        }
        Ok(true)
    }

    /// Settles the user's reservation and, for a settlement with a tenant, the tenant
    /// principal's, in one transaction.
    async fn settle(&self, user_id: &str, settlement: &Settlement) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp();
        let mut holders: Vec<(String, Stored)> = settlement_holders(user_id, settlement)
            .into_iter()
            .map(|h| (h, expected(settlement)))
            .collect();
        for _ in 0..=STATE_READS {
            let mut items: Vec<TransactWriteItem> = Vec::new();
            for (holder, stored) in &holders {
                // None: settled already (a retried call that had landed).
                if let Some((reservation, counter)) =
                    self.settlement_writes(holder, settlement, *stored, true, now)?
                {
                    items.extend(reservation);
                    items.push(counter);
                }
            }
            if items.is_empty() {
                return Ok(());
            }
            match self.transact(&items, BUDGET_ATTEMPTS).await? {
                Txn::Committed => return Ok(()),
                // Only the reservations' writes have conditions: a state was not the one
                // assumed. Read them and take the branches they call for.
                Txn::Cancelled(_) => {
                    for (holder, stored) in &mut holders {
                        *stored = self
                            .read_reservation(holder, &settlement.month, &settlement.reservation_id)
                            .await?;
                    }
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
        let items = query_all(
            &self.client,
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
