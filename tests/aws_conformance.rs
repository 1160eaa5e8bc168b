//! The store conformance suite on the AWS backends: DynamoDB and Secrets Manager, served
//! by ministack on loopback. `make test` starts the emulator, sets `AWS_ENDPOINT_URL`
//! and runs these; plain `cargo test` skips them (they are `#[ignore]`), because without
//! an emulator they cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use shared::store::conformance;
use shared::store::dynamodb::DynamoSettingsStore;
use shared::vault::secrets_manager::SecretsManagerVault;
use std::sync::Arc;

async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at the emulator (make test sets it)");
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "conformance runs only against a loopback emulator, not {endpoint}"
    );
    shared::sdk::sdk_config().await
}

/// A settings table with the key schema `infra/dynamodb.tf` declares.
async fn settings_table(client: &aws_sdk_dynamodb::Client) -> String {
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

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_settings_conformance() {
    let config = config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = settings_table(&client).await;
    conformance::settings_suite(Arc::new(DynamoSettingsStore::new(client, table))).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn secrets_manager_vault_conformance_force_delete() {
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let vault = SecretsManagerVault::new(client, "conformance/", None, 0).unwrap();
    conformance::vault_suite(&vault).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn secrets_manager_vault_conformance_with_recovery_window() {
    // Deleting schedules the secret; saving again must restore it, not fail.
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let vault = SecretsManagerVault::new(client, "conformance-recovery/", None, 7).unwrap();
    conformance::vault_suite(&vault).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn secrets_are_named_tagged_and_keyed_as_configured() {
    use shared::provider::Provider;
    use shared::secret::ApiKey;
    use shared::vault::KeyVault;
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let vault = SecretsManagerVault::new(
        client.clone(),
        "naming/",
        Some("alias/conformance".into()),
        0,
    )
    .unwrap();
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    let key = ApiKey::new(format!("sk-ant-api03-{}", "n".repeat(40)));
    vault
        .put_key(&user, Provider::Anthropic, &key)
        .await
        .unwrap();
    let described = client
        .describe_secret()
        .secret_id(format!("naming/users/{user}/llm/anthropic"))
        .send()
        .await
        .unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/conformance"));
    let tags = described.tags();
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("user_id") && t.value() == Some(user.as_str()))
    );
    vault.delete_key(&user, Provider::Anthropic).await.unwrap();
}

fn bedrock_request(model: &str) -> shared::providers::ChatRequest {
    use shared::providers::{ChatRequest, Message, Role};
    ChatRequest {
        model: model.into(),
        system: Some("You write SQL.".into()),
        messages: vec![Message {
            role: Role::User,
            content: "Show me failed login attempts".into(),
        }],
        max_tokens: 64,
        temperature: Some(0.0),
        stream: false,
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn bedrock_converse_with_role_and_with_a_saved_key_pair() {
    use shared::providers::bedrock::Bedrock;
    use shared::secret::ApiKey;
    let bedrock = Bedrock::new(config().await, None);
    let model = "anthropic.claude-3-5-sonnet-20241022-v2:0";
    let g = bedrock
        .converse(None, &bedrock_request(model))
        .await
        .unwrap();
    assert!(!g.content.is_empty());
    assert!(
        g.tokens.input_tokens > 0 && g.tokens.output_tokens > 0,
        "{:?}",
        g.tokens
    );
    assert_eq!(g.finish_reason.as_deref(), Some("end_turn"));
    let key = ApiKey::new(format!("AKIAIOSFODNN7EXAMPLE:{}", "w".repeat(40)));
    let g2 = bedrock
        .converse(Some(&key), &bedrock_request(model))
        .await
        .unwrap();
    assert_eq!(
        g2.content, g.content,
        "the emulator's reply is deterministic"
    );
    bedrock.probe(Some(&key), model).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn bedrock_unreachable_is_a_network_error() {
    use shared::providers::ErrorKind;
    use shared::providers::bedrock::Bedrock;
    // ministack answers any model id, so service errors are classified in bedrock.rs's
    // unit tests from constructed SDK errors; here, nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Bedrock::new(config().await, Some(format!("http://127.0.0.1:{port}")));
    let err = down
        .converse(
            None,
            &bedrock_request("anthropic.claude-3-5-sonnet-20241022-v2:0"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err:?}");
}
