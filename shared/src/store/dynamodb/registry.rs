//! The registry table: one partition (pk `registry`) holding
//! - entries, sk `llm#<id>`, the entry's fields as attributes;
//! - name locks, sk `name#<name>` with the holder's `id`: DynamoDB has no unique
//!   constraint on a non-key attribute, so a name is unique because its lock item is;
//! - the seed marker, sk `meta#seeded` (see [`super::registry_seed`]).
//!
//! A registry holds hundreds of entries at most, so one partition is no hot spot, and a
//! list is one consistent Query. A change is one `TransactWriteItems` of its entries,
//! their locks and its audit events, each entry conditional on its version.

use super::audit::audit_puts;
use super::txn::{Txn, transact};
use super::{Item, backend, build_error, corrupt, n, names, query_all, s, values};
use crate::store::{AuditEvent, LlmEntry, RegistryStore, RegistryWrite, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use std::collections::{BTreeMap, HashMap, HashSet};

const PK: &str = "registry";
const ENTRY_PREFIX: &str = "llm#";
const NAME_PREFIX: &str = "name#";

/// DynamoDB's limit on the items of one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// The model registry in its own table; audit events go to the audit table in the same
/// transaction as the change they describe.
#[derive(Clone)]
pub struct DynamoRegistryStore {
    pub(super) client: Client,
    pub(super) table: String,
    audit_table: String,
}

impl DynamoRegistryStore {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        DynamoRegistryStore {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }
}

pub(super) fn key(sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(PK)), ("sk".to_owned(), s(sk))])
}

fn entry_sk(id: &str) -> String {
    format!("{ENTRY_PREFIX}{id}")
}

fn name_sk(name: &str) -> String {
    format!("{NAME_PREFIX}{name}")
}

pub(super) fn entry_item(entry: &LlmEntry) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(entry).map_err(corrupt)?;
    item.extend(key(entry_sk(&entry.id)));
    Ok(item)
}

pub(super) fn lock_item(name: &str, id: &str) -> Item {
    let mut item = key(name_sk(name));
    item.insert("id".to_owned(), s(id));
    item
}

/// A write's condition: its expression, with the names and values it refers to.
struct Condition {
    expression: &'static str,
    names: Option<HashMap<String, String>>,
    values: Option<Item>,
}

/// The item does not exist.
fn absent() -> Condition {
    Condition {
        expression: "attribute_not_exists(sk)",
        names: None,
        values: None,
    }
}

/// The stored entry is still `version`.
fn at_version(version: u64) -> Condition {
    Condition {
        expression: "#version = :version",
        names: Some(names(&[("#version", "version")])),
        values: Some(values(vec![(":version", n(version))])),
    }
}

/// The lock is free or held by `id`: a released lock may be missing (then it is free
/// anyway) but must not be another entry's.
fn free_or_held_by(id: &str) -> Condition {
    Condition {
        expression: "attribute_not_exists(sk) OR #id = :holder",
        names: Some(names(&[("#id", "id")])),
        values: Some(values(vec![(":holder", s(id))])),
    }
}

fn put(table: &str, item: Item, c: Condition) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(c.expression)
        .set_expression_attribute_names(c.names)
        .set_expression_attribute_values(c.values)
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn delete(table: &str, key: Item, c: Condition) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(c.expression)
        .set_expression_attribute_names(c.names)
        .set_expression_attribute_values(c.values)
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// What one change does to one name: released by the entry that held it, taken by
/// the entry that now carries it, or both (an item may appear once per transaction,
/// so a name passed between entries in one change is one conditional Put).
#[derive(Default)]
struct NameChange<'a> {
    released_by: Option<&'a str>,
    taken_by: Option<&'a str>,
}

impl NameChange<'_> {
    fn write(&self, table: &str, name: &str) -> Result<TransactWriteItem, StoreError> {
        match (self.released_by, self.taken_by) {
            (Some(releaser), Some(taker)) => {
                put(table, lock_item(name, taker), free_or_held_by(releaser))
            }
            (None, Some(taker)) => put(table, lock_item(name, taker), absent()),
            (Some(releaser), None) => delete(table, key(name_sk(name)), free_or_held_by(releaser)),
            (None, None) => Err(StoreError::Backend(format!("no change to the name {name}"))),
        }
    }
}

/// The transaction items of `writes`: each entry's conditional Put or Delete, then the
/// name locks. A name taken twice in one change is a [`StoreError::Conflict`]; an entry
/// written twice is refused (its item could not appear twice in the transaction).
fn change_items(
    table: &str,
    writes: &[RegistryWrite],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    let mut locks: BTreeMap<&str, NameChange> = BTreeMap::new();
    for write in writes {
        let (id, released, taken) = match write {
            RegistryWrite::Put { entry, previous } => {
                let condition = match previous {
                    None => absent(),
                    Some(p) if p.id == entry.id => at_version(p.version),
                    Some(p) => {
                        return Err(StoreError::Backend(format!(
                            "registry write of {} names {} as its previous entry",
                            entry.id, p.id
                        )));
                    }
                };
                items.push(put(table, entry_item(entry)?, condition)?);
                let released = previous
                    .as_ref()
                    .map(|p| p.name.as_str())
                    .filter(|old| *old != entry.name);
                let taken =
                    (previous.is_none() || released.is_some()).then_some(entry.name.as_str());
                (entry.id.as_str(), released, taken)
            }
            RegistryWrite::Delete { previous } => {
                let condition = at_version(previous.version);
                items.push(delete(table, key(entry_sk(&previous.id)), condition)?);
                (previous.id.as_str(), Some(previous.name.as_str()), None)
            }
        };
        if !ids.insert(id) {
            return Err(StoreError::Backend(format!(
                "a registry change writes entry {id} more than once"
            )));
        }
        if let Some(name) = released
            && locks
                .entry(name)
                .or_default()
                .released_by
                .replace(id)
                .is_some()
        {
            // Two entries claim to hold one name: one of them was read stale.
            return Err(StoreError::Conflict);
        }
        if let Some(name) = taken
            && locks
                .entry(name)
                .or_default()
                .taken_by
                .replace(id)
                .is_some()
        {
            return Err(StoreError::Conflict);
        }
    }
    for (name, change) in locks {
        items.push(change.write(table, name)?);
    }
    Ok(items)
}

#[async_trait]
impl RegistryStore for DynamoRegistryStore {
    async fn list_llms(&self) -> Result<Vec<LlmEntry>, StoreError> {
        let items = query_all(
            &self.client,
            &self.table,
            "#pk = :pk AND begins_with(#sk, :prefix)",
            &names(&[("#pk", "pk"), ("#sk", "sk")]),
            &values(vec![(":pk", s(PK)), (":prefix", s(ENTRY_PREFIX))]),
            true,
            None,
        )
        .await?;
        // The keys are read past: `LlmEntry` ignores attributes it does not know.
        items
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect()
    }

    async fn get_llm(&self, id: &str) -> Result<Option<LlmEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(entry_sk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .transpose()
    }

    async fn write_llms(
        &self,
        writes: &[RegistryWrite],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        if writes.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let mut items = change_items(&self.table, writes)?;
        items.extend(audit_puts(&self.audit_table, audit)?);
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Backend(format!(
                "a registry change of {} writes and {} audit events needs {} transaction items; \
                 DynamoDB allows {MAX_TRANSACTION_ITEMS} (split the change)",
                writes.len(),
                audit.len(),
                items.len()
            )));
        }
        match transact(&self.client, &items, 4).await? {
            Txn::Committed => Ok(()),
            // Only entries and locks carry conditions: a stale version or a taken name.
            Txn::Cancelled(_) => Err(StoreError::Conflict),
        }
    }

    async fn seed_llms(&self, entries: &[LlmEntry]) -> Result<bool, StoreError> {
        super::registry_seed::seed(self, entries).await
    }
}
