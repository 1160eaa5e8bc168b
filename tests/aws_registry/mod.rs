//! What the DynamoDB registry, limits and counters do beyond the shared suites: the
//! transaction's limits, names passed between entries in one change, seeding from
//! several cold starts and after a dead seeder, and where the items live.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::aws_support::{audit_table, config, registry_table, settings_table, usage_table};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::conformance::llm_entry;
use shared::store::dynamodb::{
    DynamoLimitsStore, DynamoRateCounters, DynamoRegistryStore, DynamoSettingsStore,
};
use shared::store::{
    AuditEvent, LimitsStore, RateCounters, RegistryStore, RegistryWrite, SettingsRecord,
    SettingsStore, StoreError, UserLimits,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

async fn registry() -> (Client, String, DynamoRegistryStore) {
    let client = Client::new(&config().await);
    let table = registry_table(&client).await;
    let audit = audit_table(&client).await;
    let store = DynamoRegistryStore::new(client.clone(), table.clone(), audit);
    (client, table, store)
}

fn create(entry: &shared::store::LlmEntry) -> RegistryWrite {
    RegistryWrite::Put {
        entry: entry.clone(),
        previous: None,
    }
}

fn renamed(entry: &shared::store::LlmEntry, name: &str) -> RegistryWrite {
    let mut next = entry.clone();
    next.name = name.to_owned();
    next.version += 1;
    RegistryWrite::Put {
        entry: next,
        previous: Some(entry.clone()),
    }
}

fn event() -> AuditEvent {
    AuditEvent::now("admin", "llm:x".into(), "llm_update")
}

/// Every sort key of the registry partition.
async fn sort_keys(client: &Client, table: &str) -> BTreeSet<String> {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("registry".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| i["sk"].as_s().unwrap().clone())
        .collect()
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_names_swap_in_one_change_and_locks_follow_entries() {
    let (client, table, store) = registry().await;
    let (a, b) = (llm_entry("swap-a", 1), llm_entry("swap-b", 2));
    store
        .write_llms(&[create(&a), create(&b)], &[event()])
        .await
        .unwrap();
    // A takes B's name and B takes A's, in one change: each lock is one Put.
    store
        .write_llms(&[renamed(&a, &b.name), renamed(&b, &a.name)], &[event()])
        .await
        .unwrap();
    assert_eq!(store.get_llm(&a.id).await.unwrap().unwrap().name, b.name);
    assert_eq!(store.get_llm(&b.id).await.unwrap().unwrap().name, a.name);
    let keys = sort_keys(&client, &table).await;
    let want: BTreeSet<String> = [
        format!("llm#{}", a.id),
        format!("llm#{}", b.id),
        format!("name#{}", a.name),
        format!("name#{}", b.name),
    ]
    .into();
    assert_eq!(keys, want);
    // Two new entries taking one name in one change: a conflict, nothing written.
    let (c, mut d) = (llm_entry("dup-c", 3), llm_entry("dup-d", 4));
    d.name = c.name.clone();
    assert!(matches!(
        store.write_llms(&[create(&c), create(&d)], &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_llm(&c.id).await.unwrap(), None);
    // Deleting both frees both names and leaves no lock behind.
    let (a2, b2) = (
        store.get_llm(&a.id).await.unwrap().unwrap(),
        store.get_llm(&b.id).await.unwrap().unwrap(),
    );
    store
        .write_llms(
            &[
                RegistryWrite::Delete { previous: a2 },
                RegistryWrite::Delete { previous: b2 },
            ],
            &[],
        )
        .await
        .unwrap();
    assert!(sort_keys(&client, &table).await.is_empty());
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_refuses_changes_one_transaction_cannot_hold() {
    let (_, _, store) = registry().await;
    // 50 creates are 100 items (entries and locks); one audit event more is too many.
    let many: Vec<_> = (0..50).map(|i| llm_entry("bulk", i)).collect();
    let writes: Vec<_> = many.iter().map(create).collect();
    match store.write_llms(&writes, &[event()]).await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("101"), "{msg}"),
        other => panic!("expected a clear backend error, got {other:?}"),
    }
    assert_eq!(store.list_llms().await.unwrap(), vec![]);
    // Exactly 100 fits.
    store.write_llms(&writes, &[]).await.unwrap();
    assert_eq!(store.list_llms().await.unwrap().len(), 50);
    // One entry written twice in one change cannot be one transaction.
    let twice = [renamed(&many[0], "first"), renamed(&many[0], "second")];
    assert!(matches!(
        store.write_llms(&twice, &[]).await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_seeds_once_from_concurrent_cold_starts() {
    let (client, table, store) = registry().await;
    let store = Arc::new(store);
    let seeds: Vec<_> = (0..6).map(|i| llm_entry("seed", i)).collect();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, seeds) = (store.clone(), seeds.clone());
        tasks.push(tokio::spawn(async move {
            store.seed_llms(&seeds).await.unwrap()
        }));
    }
    let mut seeded = 0;
    for t in tasks {
        seeded += u32::from(t.await.unwrap());
    }
    assert_eq!(seeded, 1, "one start seeds, the others see the marker");
    let mut listed = store.list_llms().await.unwrap();
    listed.sort_by_key(|e| e.priority);
    assert_eq!(listed, seeds);
    assert_eq!(sort_keys(&client, &table).await.len(), 6 * 2 + 1);
}

/// Writes the marker a seeder leaves when it dies after seeding `done`.
async fn dead_seeder(client: &Client, table: &str, lease_until: i64, done: &[&str]) {
    let mut item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("registry".into())),
        ("sk".to_owned(), AttributeValue::S("meta#seeded".into())),
        ("owner".to_owned(), AttributeValue::S("dead".into())),
        (
            "lease_until".to_owned(),
            AttributeValue::N(lease_until.to_string()),
        ),
        ("state".to_owned(), AttributeValue::S("seeding".into())),
        (
            "progress".to_owned(),
            AttributeValue::N(done.len().to_string()),
        ),
    ]);
    if !done.is_empty() {
        let ids = done.iter().map(|d| (*d).to_owned()).collect();
        item.insert("done".to_owned(), AttributeValue::Ss(ids));
    }
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_seed_finishes_what_a_dead_seeder_started() {
    let (client, table, store) = registry().await;
    let seeds = [llm_entry("dead-a", 1), llm_entry("dead-b", 2)];
    let now = chrono::Utc::now().timestamp();
    // Its lease has not ended: it may still be seeding, so nothing is written.
    dead_seeder(&client, &table, now + 60, &[&seeds[0].id]).await;
    assert!(!store.seed_llms(&seeds).await.unwrap());
    assert_eq!(store.list_llms().await.unwrap(), vec![]);
    // Once it has ended, the next start finishes: it had seeded A (since deleted by an
    // admin), which stays deleted; B is written.
    dead_seeder(&client, &table, now - 1, &[&seeds[0].id]).await;
    assert!(store.seed_llms(&seeds).await.unwrap());
    assert_eq!(store.list_llms().await.unwrap(), vec![seeds[1].clone()]);
    assert!(!store.seed_llms(&seeds).await.unwrap(), "seeded: done");
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_limits_sit_beside_the_preferences_item() {
    let client = Client::new(&config().await);
    let (table, audit) = (settings_table(&client).await, audit_table(&client).await);
    let settings = DynamoSettingsStore::new(client.clone(), table.clone(), audit.clone());
    let limits = DynamoLimitsStore::new(client.clone(), table.clone(), audit);
    let user = format!("lim-{}", uuid::Uuid::new_v4().simple());
    let record = SettingsRecord {
        version: 1,
        ..Default::default()
    };
    settings.put_settings(&user, &record, 0, &[]).await.unwrap();
    let l = UserLimits {
        requests_per_minute: Some(3),
        version: 1,
        ..Default::default()
    };
    limits.put_limits(&user, &l, 0, &event()).await.unwrap();
    assert_eq!(settings.get_settings(&user).await.unwrap(), Some(record));
    assert_eq!(limits.get_limits(&user).await.unwrap(), Some(l));
    let item = client
        .get_item()
        .table_name(&table)
        .key("user_id", AttributeValue::S(user.clone()))
        .key("setting_type", AttributeValue::S("admin_limits".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["requests_per_minute"], AttributeValue::N("3".into()));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_rate_counters_stay_out_of_user_partitions_and_indexes() {
    let client = Client::new(&config().await);
    let table = usage_table(&client).await;
    let counters = DynamoRateCounters::new(client.clone(), table.clone());
    let window = 1_900_000_020;
    assert!(counters.hit("alice", window, 60, 2).await.unwrap());
    assert!(
        !counters.hit("alice", window, 0, 0).await.unwrap(),
        "limit 0"
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("user_id", AttributeValue::S("/rate/alice".into()))
        .key("sk", AttributeValue::S(format!("rate#{window}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let attributes: BTreeSet<&str> = item.keys().map(String::as_str).collect();
    // No `provider`, `operation_type` or `timestamp`: no GSI can hold it.
    assert_eq!(attributes, BTreeSet::from(["user_id", "sk", "n", "ttl"]));
    assert_eq!(item["n"], AttributeValue::N("1".into()));
    assert_eq!(
        item["ttl"],
        AttributeValue::N((window + 4 * 60).to_string())
    );
    // The user's own partition holds nothing of it.
    let out = client
        .query()
        .table_name(&table)
        .key_condition_expression("user_id = :u")
        .expression_attribute_values(":u", AttributeValue::S("alice".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.count(), 0);
}
