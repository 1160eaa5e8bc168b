//! Seeding the registry once in its life, from several cold starts at once, and after a
//! seeder died halfway.
//!
//! The marker (sk `meta#seeded`) is claimed first, with a lease: `owner`, `lease_until`,
//! `state` (`seeding`, then `done`), and `done`, the set of seed ids written so far.
//! Each seed entry is then one transaction of the entry, its name lock and the marker's
//! `done` update (conditional on still owning it). So:
//! - two processes seeding at once: one claims the marker, the other sees it and stops;
//! - an entry seeded and later deleted by an admin is in `done`, and is never re-added;
//! - a seeder that died (or whose Lambda was frozen) mid-way leaves `state = seeding`
//!   with a lease that ends: the next start takes the marker over (conditional on the
//!   owner and progress it read) and writes only the seeds not in `done`. A seeder that
//!   resumes after a takeover fails its marker condition and stops.
//!
//! Seeds whose id or name is taken are skipped (not added to `done`): a later takeover
//! tries them again, which adds only entries that were never there.

use super::registry::{DynamoRegistryStore, entry_item, key, lock_item};
use super::txn::{Txn, failed, transact};
use super::{Item, backend, build_error, n, names, number, s, values};
use crate::store::{LlmEntry, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::HashSet;

const MARKER: &str = "meta#seeded";

/// How long a seeder owns the marker: longer than any function runs (API Gateway
/// gives up at 30 s), so only a dead or frozen seeder loses it.
const SEED_LEASE_SECS: i64 = 120;

/// Whoever claimed the marker, as read.
struct Marker {
    owner: String,
    progress: u64,
    lease_until: i64,
    done: bool,
    seeded: HashSet<String>,
}

fn marker_of(item: &Item) -> Result<Marker, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!(
            "seed marker: {name} is missing"
        ))),
    };
    let seeded = match item.get("done") {
        Some(AttributeValue::Ss(ids)) => ids.iter().cloned().collect(),
        _ => HashSet::new(),
    };
    Ok(Marker {
        owner: text("owner")?,
        progress: number(item, "progress")?.unwrap_or(0),
        lease_until: number(item, "lease_until")?.unwrap_or(0),
        done: text("state")? == "done",
        seeded,
    })
}

pub(super) async fn seed(
    store: &DynamoRegistryStore,
    entries: &[LlmEntry],
) -> Result<bool, StoreError> {
    let me = uuid::Uuid::new_v4().to_string();
    let Some(seeded) = claim(store, &me).await? else {
        return Ok(false);
    };
    for entry in entries.iter().filter(|e| !seeded.contains(&e.id)) {
        let items = [
            put_absent(store, entry_item(entry)?)?,
            put_absent(store, lock_item(&entry.name, &entry.id))?,
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&store.table)
                        .set_key(Some(key(MARKER.into())))
                        .update_expression("ADD #done :id, #progress :one")
                        .condition_expression("#owner = :me")
                        .set_expression_attribute_names(Some(names(&[
                            ("#done", "done"),
                            ("#progress", "progress"),
                            ("#owner", "owner"),
                        ])))
                        .set_expression_attribute_values(Some(values(vec![
                            (":id", AttributeValue::Ss(vec![entry.id.clone()])),
                            (":one", n(1)),
                            (":me", s(me.as_str())),
                        ])))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        ];
        match transact(&store.client, &items, 4).await? {
            Txn::Committed => {}
            // Taken over by a later start (this one was presumed dead): it goes on.
            Txn::Cancelled(codes) if failed(&codes, 2) => return Ok(true),
            // The id or the name is taken: skipped.
            Txn::Cancelled(_) => {}
        }
    }
    let finished = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(MARKER.into())))
        .update_expression("SET #state = :done")
        .condition_expression("#owner = :me")
        .set_expression_attribute_names(Some(names(&[("#state", "state"), ("#owner", "owner")])))
        .set_expression_attribute_values(Some(values(vec![
            (":done", s("done")),
            (":me", s(me.as_str())),
        ])))
        .send()
        .await;
    match finished {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(true)
        }
        Err(e) => Err(backend(e)),
    }
}

fn put_absent(store: &DynamoRegistryStore, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(&store.table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(sk)")
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Makes `me` the seeder: a new marker, or one whose seeder's lease ended. The seed ids
/// written already, or `None` when the registry was seeded (or is being seeded now).
async fn claim(
    store: &DynamoRegistryStore,
    me: &str,
) -> Result<Option<HashSet<String>>, StoreError> {
    let now = chrono::Utc::now().timestamp();
    let lease = n(now + SEED_LEASE_SECS);
    let mut marker = key(MARKER.into());
    marker.extend(values(vec![
        ("owner", s(me)),
        ("lease_until", lease.clone()),
        ("state", s("seeding")),
        ("progress", n(0)),
    ]));
    let created = store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(marker))
        .condition_expression("attribute_not_exists(sk)")
        .send()
        .await;
    match created {
        Ok(_) => return Ok(Some(HashSet::new())),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {}
        Err(e) => return Err(backend(e)),
    }
    let out = store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(key(MARKER.into())))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend)?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    let seen = marker_of(&item)?;
    if seen.done || seen.lease_until > now {
        return Ok(None);
    }
    // Conditional on the owner and progress read: the set in hand is the whole of it.
    let taken = store
        .client
        .update_item()
        .table_name(&store.table)
        .set_key(Some(key(MARKER.into())))
        .update_expression("SET #owner = :me, #lease = :lease")
        .condition_expression("#owner = :seen AND #progress = :progress AND #state = :seeding")
        .set_expression_attribute_names(Some(names(&[
            ("#owner", "owner"),
            ("#lease", "lease_until"),
            ("#progress", "progress"),
            ("#state", "state"),
        ])))
        .set_expression_attribute_values(Some(values(vec![
            (":me", s(me)),
            (":lease", lease),
            (":seen", s(seen.owner)),
            (":progress", n(seen.progress)),
            (":seeding", s("seeding")),
        ])))
        .send()
        .await;
    match taken {
        Ok(_) => Ok(Some(seen.seeded)),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(backend(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_its_owner_progress_and_seeded_ids() {
        let mut item = key(MARKER.into());
        item.extend(values(vec![
            ("owner", s("a")),
            ("lease_until", n(10)),
            ("state", s("seeding")),
            ("progress", n(2)),
            ("done", AttributeValue::Ss(vec!["x".into(), "y".into()])),
        ]));
        let m = marker_of(&item).unwrap();
        assert_eq!((m.owner.as_str(), m.progress, m.lease_until), ("a", 2, 10));
        assert!(!m.done);
        assert_eq!(m.seeded, HashSet::from(["x".to_owned(), "y".to_owned()]));
        item.insert("state".into(), s("done"));
        assert!(marker_of(&item).unwrap().done);
    }
}
