//! The emulator-backed tables the AWS tests share, with the key schemas, GSIs and TTLs
//! `infra/dynamodb.tf` declares.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use shared::store::DynamoUsageStore;

pub async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at the emulator (make test sets it)");
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "conformance runs only against a loopback emulator, not {endpoint}"
    );
    shared::sdk::sdk_config().await
}

/// A settings table with the key schema `infra/dynamodb.tf` declares.
pub async fn settings_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("conformance-settings-{}", uuid::Uuid::new_v4().simple());
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("user_id"))
        .attribute_definitions(attr("setting_type"))
        .key_schema(key("user_id", KeyType::Hash))
        .key_schema(key("setting_type", KeyType::Range))
        .send()
        .await
        .unwrap();
    name
}

pub fn string_attr(n: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(n)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

pub fn key_elem(n: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(n)
        .key_type(t)
        .build()
        .unwrap()
}

pub fn gsi(name: &str, hash: &str, range: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key_elem(hash, KeyType::Hash))
        .key_schema(key_elem(range, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap()
}

pub async fn enable_ttl(client: &aws_sdk_dynamodb::Client, table: &str, attribute: &str) {
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The usage, cache and audit tables with the keys, GSIs and TTLs `infra/dynamodb.tf`
/// declares.
pub async fn usage_store(client: &aws_sdk_dynamodb::Client) -> DynamoUsageStore {
    let (usage, cache, audit) = usage_tables(client).await;
    DynamoUsageStore::new(client.clone(), usage, cache, audit)
}

/// The names of fresh usage, cache and audit tables.
pub async fn usage_tables(client: &aws_sdk_dynamodb::Client) -> (String, String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let usage = format!("conformance-usage-{id}");
    client
        .create_table()
        .table_name(&usage)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr("user_id"))
        .attribute_definitions(string_attr("sk"))
        .attribute_definitions(string_attr("provider"))
        .attribute_definitions(string_attr("operation_type"))
        .attribute_definitions(string_attr("timestamp"))
        .key_schema(key_elem("user_id", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .global_secondary_indexes(gsi("ProviderIndex", "provider", "timestamp"))
        .global_secondary_indexes(gsi("OperationTypeIndex", "operation_type", "timestamp"))
        .send()
        .await
        .unwrap();
    enable_ttl(client, &usage, "ttl").await;

    let cache = format!("conformance-cache-{id}");
    client
        .create_table()
        .table_name(&cache)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr("key"))
        .key_schema(key_elem("key", KeyType::Hash))
        .send()
        .await
        .unwrap();
    enable_ttl(client, &cache, "expires_at").await;

    let audit = format!("conformance-audit-{id}");
    client
        .create_table()
        .table_name(&audit)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr("month"))
        .attribute_definitions(string_attr("sk"))
        .key_schema(key_elem("month", KeyType::Hash))
        .key_schema(key_elem("sk", KeyType::Range))
        .send()
        .await
        .unwrap();

    (usage, cache, audit)
}
