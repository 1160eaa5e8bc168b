//! The emulator-backed tables the AWS tests share, built from the one definition
//! (`shared::store::dynamodb::tables`, held to `infra/dynamodb.tf` by a unit test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fault_proxy;
pub mod gateway;
pub mod logs;
pub mod ministack;

use shared::store::DynamoUsageStore;
use shared::store::dynamodb::tables;

pub async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at the emulator (make test sets it)");
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "conformance runs only against a loopback emulator, not {endpoint}"
    );
    shared::sdk::sdk_config().await
}

/// A fresh settings table as `infra/dynamodb.tf` declares it.
pub async fn settings_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("conformance-settings-{}", uuid::Uuid::new_v4().simple());
    tables::SETTINGS.create(client, &name).await.unwrap();
    name
}

/// A fresh audit table as `infra/dynamodb.tf` declares it.
pub async fn audit_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("conformance-audit-{}", uuid::Uuid::new_v4().simple());
    tables::AUDIT.create(client, &name).await.unwrap();
    name
}

/// Fresh usage, cache and audit tables as `infra/dynamodb.tf` declares them (keys, GSIs,
/// TTLs).
pub async fn usage_store(client: &aws_sdk_dynamodb::Client) -> DynamoUsageStore {
    let (usage, cache, audit) = usage_tables(client).await;
    DynamoUsageStore::new(client.clone(), usage, cache, audit)
}

/// The names of fresh usage, cache and audit tables.
pub async fn usage_tables(client: &aws_sdk_dynamodb::Client) -> (String, String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let usage = format!("conformance-usage-{id}");
    tables::USAGE.create(client, &usage).await.unwrap();
    let cache = format!("conformance-cache-{id}");
    tables::CACHE.create(client, &cache).await.unwrap();
    let audit = format!("conformance-audit-{id}");
    tables::AUDIT.create(client, &audit).await.unwrap();
    (usage, cache, audit)
}

/// A fresh registry table as `infra/dynamodb.tf` declares it.
pub async fn registry_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("conformance-registry-{}", uuid::Uuid::new_v4().simple());
    tables::REGISTRY.create(client, &name).await.unwrap();
    name
}

/// A fresh usage table as `infra/dynamodb.tf` declares it (keys, GSIs, TTL).
pub async fn usage_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("conformance-usage-{}", uuid::Uuid::new_v4().simple());
    tables::USAGE.create(client, &name).await.unwrap();
    name
}
