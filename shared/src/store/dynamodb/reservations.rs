//! The budget items of the usage table and the writes that move them: the month's
//! counter (`budget#<YYYY-MM>`) and one item per reservation (`resv#<YYYY-MM>#<id>`),
//! whose `state` says what was applied already, so a retried write changes nothing.

use super::{
    DynamoUsageStore, Item, aggregate_ttl, backend, build_error, n, names, number, s, string,
    user_key, values,
};
use crate::identity::tenant_owner;
use crate::money::NanoUsd;
use crate::store::{Settlement, StoreError};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

/// Re-reads of a reservation whose state was not what a transaction assumed. States only
/// move forward (absent, held, released, settled), so a few always suffice.
pub(super) const STATE_READS: u32 = 5;

/// How long a reservation item is kept once it left `held`: the window in which a
/// retried reserve or settle of its id is recognised (retries come within seconds, the
/// lease ends at most a minute after the deadline). A `held` item carries the month's
/// TTL instead: the counter counts it until it is released, so it must not vanish first.
pub(super) const RESERVATION_MARKER_SECS: i64 = 86_400;

/// Reservation states (attribute `state`).
pub(super) const HELD: &str = "held";
pub(super) const RELEASED: &str = "released";
pub(super) const SETTLED: &str = "settled";

pub(super) fn budget_sort_key(month: &str) -> String {
    format!("budget#{month}")
}

pub(super) fn reservation_prefix(month: &str) -> String {
    format!("resv#{month}#")
}

pub(super) fn reservation_sort_key(month: &str, id: &str) -> String {
    format!("{}{id}", reservation_prefix(month))
}

/// The TTL of a reservation item that leaves `held`: a day from the later of the clock
/// and `now_unix` (the caller's now, which tests move ahead of the clock).
pub(super) fn marker_ttl(now_unix: i64) -> i64 {
    chrono::Utc::now().timestamp().max(now_unix) + RESERVATION_MARKER_SECS
}

/// What is stored under a reservation's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    Absent,
    Held(NanoUsd),
    Released,
    Settled,
}

pub(super) fn stored_of(item: Option<&Item>) -> Result<Stored, StoreError> {
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
pub(super) fn expected(s: &Settlement) -> Stored {
    if s.reserved.0 > 0 {
        Stored::Held(s.reserved)
    } else {
        Stored::Absent
    }
}

/// Whose reservations a settlement settles: the user's and, when the tenant holds the
/// same reservation, the tenant principal's.
pub(super) fn settlement_holders(user_id: &str, s: &Settlement) -> Vec<String> {
    let mut holders = vec![user_id.to_owned()];
    holders.extend(s.tenant.as_deref().map(tenant_owner));
    holders
}

/// Moves a month's counters: `spent` up by `spent`, `reserved` down by `released` (what
/// a reservation gives back) and `committed` (= spent + reserved) by the difference.
pub(super) fn counter_update(
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
pub(super) fn state_update(
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
pub(super) fn settled_marker(
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

impl DynamoUsageStore {
    /// The reservation item's state (consistent read).
    pub(super) async fn read_reservation(
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
    pub(super) fn settlement_writes(
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
