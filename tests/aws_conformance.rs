//! The store conformance suite on the AWS backends: DynamoDB and Secrets Manager, served
//! by ministack on loopback. `make test` starts the emulator, sets `AWS_ENDPOINT_URL`
//! and runs these; plain `cargo test` skips them (they are `#[ignore]`), because without
//! an emulator they cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod aws_registry;
mod aws_support;

use aws_support::{audit_table, config, registry_table, settings_table, usage_store, usage_table};
use shared::store::conformance;
use shared::store::dynamodb::{
    DynamoAuditStore, DynamoLimitsStore, DynamoRateCounters, DynamoRegistryStore,
    DynamoSettingsStore,
};
use shared::store::{BudgetStore, DynamoUsageStore};
use shared::vault::secrets_manager::SecretsManagerVault;
use shared::vault::{KeyVersion, Remaining};
use std::sync::Arc;

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_settings_conformance() {
    let config = config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = settings_table(&client).await;
    let audit = audit_table(&client).await;
    let store = DynamoSettingsStore::new(client.clone(), table, audit.clone());
    conformance::settings_suite(Arc::new(store), &DynamoAuditStore::new(client, audit)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let (table, audit) = (registry_table(&client).await, audit_table(&client).await);
    let store = DynamoRegistryStore::new(client.clone(), table, audit.clone());
    conformance::registry_suite(&store, &DynamoAuditStore::new(client, audit)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_registry_seed_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let (table, audit) = (registry_table(&client).await, audit_table(&client).await);
    conformance::registry_seed_suite(&DynamoRegistryStore::new(client, table, audit)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_limits_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let (table, audit) = (settings_table(&client).await, audit_table(&client).await);
    let store = DynamoLimitsStore::new(client.clone(), table, audit.clone());
    conformance::limits_suite(&store, &DynamoAuditStore::new(client, audit)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_rate_counters_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let table = usage_table(&client).await;
    conformance::counters_suite(Arc::new(DynamoRateCounters::new(client, table))).await;
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
    let version = KeyVersion::fresh();
    vault
        .put_key(&user, Provider::Anthropic, &version, &key)
        .await
        .unwrap();
    let name = format!("naming/users/{user}/llm/anthropic");
    let described = client
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/conformance"));
    let tags = described.tags();
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("user_id") && t.value() == Some(user.as_str()))
    );
    // Our version id is the secret's VersionId, and it carries a label of its own.
    let stages = described.version_ids_to_stages().unwrap();
    assert_eq!(
        stages.get(version.as_str()).unwrap(),
        &vec![format!("gw-{}", version.as_str())]
    );
    let got = client
        .get_secret_value()
        .secret_id(&name)
        .version_id(version.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(key.expose()));
    // Removing the last key deletes the secret.
    vault
        .delete_key(
            &user,
            Provider::Anthropic,
            Some(&version),
            Remaining::Nothing,
        )
        .await
        .unwrap();
    let gone = client.describe_secret().secret_id(&name).send().await;
    assert!(gone.is_err(), "the secret should be deleted");
}

/// A tenant's key is its own secret, `<prefix>tenants/<tenantId>/llm/<provider>`, never
/// a user's.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn a_tenants_key_is_named_under_tenants() {
    use shared::provider::Provider;
    use shared::secret::ApiKey;
    use shared::vault::KeyVault;
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let vault = SecretsManagerVault::new(client.clone(), "naming/", None, 0).unwrap();
    let tenant = format!("t-{}", uuid::Uuid::new_v4().simple());
    let owner = shared::identity::tenant_owner(&tenant);
    let key = ApiKey::new(format!("sk-proj-{}", "t".repeat(40)));
    let version = KeyVersion::fresh();
    vault
        .put_key(&owner, Provider::OpenAi, &version, &key)
        .await
        .unwrap();
    let name = format!("naming/tenants/{tenant}/llm/openai");
    let got = client
        .get_secret_value()
        .secret_id(&name)
        .version_id(version.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(key.expose()));
    assert_eq!(
        vault
            .get_key(&owner, Provider::OpenAi, Some(&version))
            .await
            .unwrap()
            .map(|k| k.expose().to_owned()),
        Some(key.expose().to_owned())
    );
    let as_user = client
        .describe_secret()
        .secret_id(format!("naming/users/{owner}/llm/openai"))
        .send()
        .await;
    assert!(as_user.is_err(), "no user-style secret was written");
    vault
        .delete_key(&owner, Provider::OpenAi, Some(&version), Remaining::Nothing)
        .await
        .unwrap();
}

/// A secret written before key versions (a plain `CreateSecret` value) reads as the
/// legacy key; a new version next to it does not disturb it; the legacy key goes with
/// the secret when the last key is removed.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn a_secret_from_before_versions_reads_as_the_legacy_key() {
    use shared::provider::Provider;
    use shared::secret::ApiKey;
    use shared::vault::KeyVault;
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let vault = SecretsManagerVault::new(client.clone(), "legacy/", None, 0).unwrap();
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    let name = format!("legacy/users/{user}/llm/anthropic");
    let old = format!("sk-ant-api03-{}", "l".repeat(40));
    client
        .create_secret()
        .name(&name)
        .secret_string(&old)
        .send()
        .await
        .unwrap();
    let legacy = vault
        .get_key(&user, Provider::Anthropic, None)
        .await
        .unwrap();
    assert_eq!(legacy.unwrap().expose(), old);

    let version = KeyVersion::fresh();
    let new = ApiKey::new(format!("sk-ant-api03-{}", "m".repeat(40)));
    vault
        .put_key(&user, Provider::Anthropic, &version, &new)
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_key(&user, Provider::Anthropic, Some(&version))
            .await
            .unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        vault
            .get_key(&user, Provider::Anthropic, None)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        old,
        "an uncommitted version must not change what a name-only read sees"
    );
    // The commit replaced the legacy key: deleting it keeps the new version.
    vault
        .delete_key(&user, Provider::Anthropic, None, Remaining::Named)
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_key(&user, Provider::Anthropic, Some(&version))
            .await
            .unwrap(),
        Some(new)
    );
    vault
        .delete_key(
            &user,
            Provider::Anthropic,
            Some(&version),
            Remaining::Nothing,
        )
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_key(&user, Provider::Anthropic, None)
            .await
            .unwrap(),
        None
    );
    assert!(
        client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .is_err()
    );
}

fn bedrock_request(model: &str) -> shared::providers::ChatRequest {
    use shared::providers::{ChatRequest, Message, Role};
    ChatRequest {
        model: model.into(),
        system: Some("You write SQL.".into()),
        messages: vec![Message::text(Role::User, "Show me failed login attempts")],
        max_tokens: 64,
        temperature: Some(0.0),
        stream: false,
        ..ChatRequest::default()
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
    assert_eq!(g.finish_reason, Some(shared::providers::FinishReason::Stop));
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

/// ConverseStream through the SDK against the emulator's Bedrock: the answer arrives as
/// several deltas (ministack cuts its reply into ~20-character pieces), then usage, then
/// the end; their text is Converse's whole answer, with the role's credentials and with
/// a saved key pair.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn bedrock_converse_stream_arrives_in_deltas() {
    use shared::providers::StreamEvent;
    use shared::providers::bedrock::Bedrock;
    use shared::providers::facade::EventStream;
    use shared::secret::ApiKey;
    let bedrock = Bedrock::new(config().await, None);
    let model = "anthropic.claude-3-5-sonnet-20241022-v2:0";
    let whole = bedrock
        .converse(None, &bedrock_request(model))
        .await
        .unwrap();
    let key = ApiKey::new(format!("AKIAIOSFODNN7EXAMPLE:{}", "w".repeat(40)));
    for key in [None, Some(&key)] {
        let mut request = bedrock_request(model);
        request.stream = true;
        let mut stream = bedrock.converse_stream(key, &request).await.unwrap();
        let mut events = Vec::new();
        while let Some(batch) = stream.next_events().await.unwrap() {
            events.extend(batch);
        }
        let deltas: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert!(deltas.len() > 1, "one delta: {events:?}");
        assert_eq!(deltas.concat(), whole.content);
        let n = events.len();
        assert!(
            matches!(&events[n - 2], StreamEvent::Usage(t) if t.input_tokens > 0 && t.output_tokens > 0),
            "{events:?}"
        );
        assert_eq!(
            events[n - 1],
            StreamEvent::Done {
                finish_reason: Some(shared::providers::FinishReason::Stop)
            }
        );
    }
}

/// A tool conversation with every block Converse gets from the gateway: text and image
/// bytes, the assistant's toolUse, the toolResult, and a toolConfig forcing the tool.
/// ministack's mock answers it with its canned text (it calls tools only when proxying
/// to a real model), so this proves the SDK's serialization of the blocks is accepted.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn bedrock_converse_takes_tools_images_and_results() {
    use shared::providers::bedrock::Bedrock;
    use shared::providers::{
        ChatRequest, ImageSource, Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    };
    let bedrock = Bedrock::new(config().await, None);
    let model = "anthropic.claude-3-5-sonnet-20241022-v2:0";
    let weather = Tool {
        name: "get_weather".into(),
        description: Some("Current weather for a city".into()),
        parameters: serde_json::json!({"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        strict: None,
    };
    let request = ChatRequest {
        model: model.into(),
        system: Some("You are a weather bot.".into()),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text {
                        text: "What is the weather in Paris, and where is this?".into(),
                    },
                    Part::Image {
                        source: ImageSource::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgo=".into(),
                        },
                        detail: None,
                    },
                ],
                ..Message::default()
            },
            Message {
                role: Role::Assistant,
                tool_calls: vec![ToolCall {
                    id: "tooluse_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                ..Message::default()
            },
            Message {
                tool_call_id: Some("tooluse_1".into()),
                ..Message::text(Role::Tool, "18C and sunny")
            },
        ],
        tools: vec![weather.clone()],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        max_tokens: 64,
        ..ChatRequest::default()
    };
    let g = bedrock.converse(None, &request).await.unwrap();
    assert!(!g.content.is_empty() || !g.tool_calls.is_empty(), "{g:?}");
    let structured = ChatRequest {
        model: model.into(),
        messages: vec![Message::text(Role::User, "Paris is at 18 degrees.")],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "weather".into(),
            description: None,
            schema: weather.parameters,
            strict: true,
        }),
        max_tokens: 64,
        ..ChatRequest::default()
    };
    bedrock.converse(None, &structured).await.unwrap();
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

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_usage_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = usage_store(&client).await;
    conformance::usage_suite(&store, &store).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_health_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    conformance::health_suite(&usage_store(&client).await).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_budget_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store: Arc<dyn BudgetStore> = Arc::new(usage_store(&client).await);
    conformance::budget_suite(store).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_tenant_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = Arc::new(usage_store(&client).await);
    conformance::tenant_suite(store.as_ref(), store.clone()).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_cache_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    conformance::cache_suite(&usage_store(&client).await).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_audit_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    conformance::audit_suite(&usage_store(&client).await).await;
}

/// The entry item carries the GSI keys and TTL at top level; its rollup carries flat
/// counters and a TTL of its own.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_usage_items_feed_the_indexes() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::provider::Provider;
    use shared::store::UsageStore;
    use shared::usage::UsageStatus;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = usage_store(&client).await;
    let user = format!("idx-{}", uuid::Uuid::new_v4().simple());
    let e = conformance::usage_entry(
        &user,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(5),
        UsageStatus::Success,
    );
    store.record(&e, None).await.unwrap();
    let out = client
        .query()
        .table_name(store.usage_table())
        .index_name("ProviderIndex")
        .key_condition_expression("#p = :p AND #t = :t")
        .expression_attribute_names("#p", "provider")
        .expression_attribute_names("#t", "timestamp")
        .expression_attribute_values(":p", AttributeValue::S("anthropic".into()))
        .expression_attribute_values(":t", AttributeValue::S(e.timestamp.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.items().len(), 1, "only the entry is indexed");
    let item = &out.items()[0];
    assert_eq!(
        item.get("request_id"),
        Some(&AttributeValue::S(e.request_id.clone()))
    );
    assert_eq!(
        item.get("ttl"),
        Some(&AttributeValue::N("1900000000".into()))
    );
    let rollup = client
        .get_item()
        .table_name(store.usage_table())
        .key("user_id", AttributeValue::S(user.clone()))
        .key("sk", AttributeValue::S("rollup#2026-11-20".into()))
        .send()
        .await
        .unwrap();
    let item = rollup.item().unwrap();
    assert_eq!(
        item.get("all|requests"),
        Some(&AttributeValue::N("1".into()))
    );
    assert_eq!(
        item.get("provider:anthropic|cost_nanos"),
        Some(&AttributeValue::N("5".into()))
    );
    assert!(matches!(item.get("ttl"), Some(AttributeValue::N(_))));
}

/// The same request recorded by concurrent writers (a Lambda retry racing the original)
/// lands once: one entry, one rollup increment, one settlement.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_usage_record_is_idempotent_under_concurrency() {
    use shared::money::NanoUsd;
    use shared::provider::Provider;
    use shared::store::UsageStore;
    use shared::usage::UsageStatus;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = Arc::new(usage_store(&client).await);
    let user = format!("race-{}", uuid::Uuid::new_v4().simple());
    let e = conformance::usage_entry(
        &user,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(7),
        UsageStatus::Success,
    );
    let now = chrono::Utc::now().timestamp();
    let lease = conformance::reservation("race#0", "2026-11", 10, now + 60);
    assert!(
        store
            .reserve(&user, &lease, Some(NanoUsd(100)), now)
            .await
            .unwrap()
    );
    let settle = conformance::settlement(&lease, 7);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, e, settle) = (store.clone(), e.clone(), settle.clone());
        tasks.push(tokio::spawn(async move {
            store.record(&e, Some(&settle)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let m = store.month(&user, "2026-11", now).await.unwrap();
    assert_eq!((m.spent, m.reserved), (NanoUsd(7), NanoUsd(0)));
    let days = store
        .rollups(&user, "2026-11-20", "2026-11-20")
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].groups["all"].requests, 1);
    assert_eq!(days[0].groups["all"].cost_nanos, 7);
    let (entries, next) = store
        .entries(&user, "2026-11-01", "2026-12-01", 10, None)
        .await
        .unwrap();
    assert_eq!((entries, next), (vec![e], None));
}

/// Provider health on DynamoDB: the same request recorded by 8 concurrent writers adds to
/// its buckets once (only the writer whose transaction committed adds), and the bucket
/// items sit outside every user's partition and every index, with a TTL.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_health_counts_a_raced_entry_once_outside_the_indexes() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::provider::Provider;
    use shared::store::{Granularity, UsageStore};
    use shared::usage::UsageStatus;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = Arc::new(usage_store(&client).await);
    let user = format!("health-{}", uuid::Uuid::new_v4().simple());
    // In the future: the emulator reaps items whose TTL has passed.
    let at = 1_938_340_800; // 2031-06-04T12:00:00Z
    let e = conformance::usage_entry(
        &user,
        "2031-06-04T12:00:00.000Z",
        Provider::OpenAi,
        Some(7),
        UsageStatus::Success,
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, e) = (store.clone(), e.clone());
        tasks.push(tokio::spawn(async move { store.record(&e, None).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for g in [Granularity::Minute, Granularity::Hour] {
        let groups = store.health(g, at, at).await.unwrap();
        assert_eq!(groups["provider:openai"].requests(), 1, "{g:?}");
        assert_eq!(groups["model:openai/gpt-4o"].successes, 1, "{g:?}");
    }

    // One bucket item per granularity, in a partition of its own, with a TTL and none
    // of the index keys.
    for (g, retention) in [("minute", 3600), ("hour", 2 * 86_400)] {
        let mut items = Vec::new();
        for shard in 0..8 {
            let out = client
                .query()
                .table_name(store.usage_table())
                .key_condition_expression("user_id = :p")
                .expression_attribute_values(":p", AttributeValue::S(format!("health/{g}/{shard}")))
                .send()
                .await
                .unwrap();
            items.extend(out.items().iter().cloned());
        }
        assert_eq!(items.len(), 1, "{g}: {items:?}");
        let item = &items[0];
        assert_eq!(item["sk"], AttributeValue::S("2031-06-04T12:00Z".into()));
        assert_eq!(item["ttl"], AttributeValue::N((at + retention).to_string()));
        for key in ["provider", "operation_type", "timestamp"] {
            assert!(!item.contains_key(key), "{g}: an index key {key}");
        }
    }
    let indexed = client
        .query()
        .table_name(store.usage_table())
        .index_name("ProviderIndex")
        .key_condition_expression("#p = :p")
        .expression_attribute_names("#p", "provider")
        .expression_attribute_values(":p", AttributeValue::S("openai".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(indexed.items().len(), 1, "only the entry is indexed");
    let (entries, next) = store
        .entries(&user, "2000", "9999", 10, None)
        .await
        .unwrap();
    assert_eq!((entries, next), (vec![e], None));
}

/// The 200-request budget burst of `e2e_generate.rs`, directly on the DynamoDB stores:
/// 200 concurrent reservations of $0.0018 against a $0.05 limit grant exactly 27; each
/// granted one records its usage entry with that cost and its settlement (one
/// transaction), so the counters end at 27 × $0.0018 spent, nothing reserved, and equal
/// the sum of the recorded entries.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_budget_holds_under_200_concurrent_reservations() {
    use shared::money::NanoUsd;
    use shared::provider::Provider;
    use shared::store::UsageStore;
    use shared::usage::UsageStatus;
    const COST: i64 = 1_800_000;
    const LIMIT: i64 = 50_000_000;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = Arc::new(usage_store(&client).await);
    let user = format!("burst-{}", uuid::Uuid::new_v4().simple());
    let month = "2026-11";
    let now = chrono::Utc::now().timestamp();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, user) = (store.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let lease = conformance::reservation(&format!("burst{i}#0"), month, COST, now + 60);
            let granted = store
                .reserve(&user, &lease, Some(NanoUsd(LIMIT)), now)
                .await
                .unwrap();
            if granted {
                let e = conformance::usage_entry(
                    &user,
                    "2026-11-20T10:00:00.000Z",
                    Provider::Anthropic,
                    Some(COST),
                    UsageStatus::Success,
                );
                let settle = conformance::settlement(&lease, COST);
                store.record(&e, Some(&settle)).await.unwrap();
            }
            granted
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap() {
            granted += 1;
        }
    }
    assert_eq!(granted, 27, "a $0.05 budget allows exactly 27 × $0.0018");
    let m = store.month(&user, month, now).await.unwrap();
    assert_eq!(m.spent, NanoUsd(27 * COST));
    assert_eq!(m.reserved, NanoUsd(0), "every reservation settled");
    assert!(m.spent.0 <= LIMIT, "spend never passes the limit");
    let (entries, next) = store
        .entries(&user, "2026-11-01", "2026-12-01", 1000, None)
        .await
        .unwrap();
    assert_eq!(next, None);
    assert_eq!(entries.len(), 27, "one entry per granted reservation");
    let recorded: i64 = entries.iter().filter_map(|e| e.cost_usd).map(|c| c.0).sum();
    assert_eq!(recorded, m.spent.0, "counters equal the sum of the entries");
    let days = store
        .rollups(&user, "2026-11-20", "2026-11-20")
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].groups["all"].requests, 27);
    assert_eq!(days[0].groups["all"].cost_nanos, 27 * COST);
}

/// The raw reservation item (state, ttl), read past the store: what a retry left behind.
async fn reservation_item(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoUsageStore,
    user: &str,
    month: &str,
    id: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .get_item()
        .table_name(store.usage_table())
        .key("user_id", AttributeValue::S(user.into()))
        .key("sk", AttributeValue::S(format!("resv#{month}#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn state_of(
    item: &Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Option<String> {
    item.as_ref()
        .and_then(|i| i.get("state"))
        .and_then(|v| v.as_s().ok())
        .cloned()
}

/// The raw budget counters, past `month()`'s lease arithmetic: (spent, reserved, committed).
async fn raw_counters(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoUsageStore,
    user: &str,
    month: &str,
) -> (i64, i64, i64) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = client
        .get_item()
        .table_name(store.usage_table())
        .key("user_id", AttributeValue::S(user.into()))
        .key("sk", AttributeValue::S(format!("budget#{month}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = out.item.unwrap_or_default();
    let num = |k: &str| {
        item.get(k)
            .map(|v| v.as_n().unwrap().parse::<i64>().unwrap())
            .unwrap_or(0)
    };
    (num("spent"), num("reserved"), num("committed"))
}

/// A reserve or settle whose write landed but whose answer was lost is sent again (by
/// the SDK, by the writer): sent twice in a row and 8 ways at once, the counters move
/// once, and a settled reservation stays settled when its usage entry arrives after.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_reserve_and_settle_applied_twice_by_a_retried_call_count_once() {
    use shared::money::NanoUsd;
    use shared::provider::Provider;
    use shared::store::UsageStore;
    use shared::usage::UsageStatus;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = Arc::new(usage_store(&client).await);
    let user = format!("retry-{}", uuid::Uuid::new_v4().simple());
    let month = "2026-11";
    let limit = Some(NanoUsd(100));
    let now = chrono::Utc::now().timestamp();
    let counters = |store: Arc<DynamoUsageStore>, user: String| async move {
        let m = store.month(&user, month, now).await.unwrap();
        (m.spent.0, m.reserved.0)
    };

    // Twice in a row.
    let r1 = conformance::reservation("req-1#0", month, 30, now + 60);
    assert!(store.reserve(&user, &r1, limit, now).await.unwrap());
    assert!(store.reserve(&user, &r1, limit, now).await.unwrap());
    assert_eq!(counters(store.clone(), user.clone()).await, (0, 30));

    // 8 ways at once: every call is granted (it is one reservation), counted once.
    let r2 = conformance::reservation("req-2#0", month, 20, now + 60);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, user, r2) = (store.clone(), user.clone(), r2.clone());
        tasks.push(tokio::spawn(async move {
            store.reserve(&user, &r2, limit, now).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap(),
            "a reservation that was granted stays granted"
        );
    }
    assert_eq!(counters(store.clone(), user.clone()).await, (0, 50));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (0, 50, 50)
    );

    // Settling twice in a row, then 8 ways at once.
    let s1 = conformance::settlement(&r1, 10);
    store.settle(&user, &s1).await.unwrap();
    store.settle(&user, &s1).await.unwrap();
    assert_eq!(counters(store.clone(), user.clone()).await, (10, 20));
    let s2 = conformance::settlement(&r2, 5);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, user, s2) = (store.clone(), user.clone(), s2.clone());
        tasks.push(tokio::spawn(async move {
            store.settle(&user, &s2).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(counters(store.clone(), user.clone()).await, (15, 0));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (15, 0, 15)
    );
    let item = reservation_item(&client, &store, &user, month, "req-2#0").await;
    assert_eq!(state_of(&item).as_deref(), Some("settled"));
    let ttl: i64 = item.as_ref().unwrap()["ttl"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ttl > now && ttl <= now + 2 * 86_400,
        "a settled reservation expires about a day later: {ttl}"
    );

    // A reserve retried after its settlement is still the one reservation: no new hold.
    assert!(store.reserve(&user, &r1, limit, now).await.unwrap());
    assert_eq!(counters(store.clone(), user.clone()).await, (15, 0));

    // The usage entry of a reservation settled already is written, its settlement not
    // applied again.
    let e = conformance::usage_entry(
        &user,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(10),
        UsageStatus::Success,
    );
    store.record(&e, Some(&s1)).await.unwrap();
    assert_eq!(counters(store.clone(), user.clone()).await, (15, 0));
    let (entries, _) = store
        .entries(&user, "2026-11-01", "2026-12-01", 10, None)
        .await
        .unwrap();
    assert_eq!(entries, vec![e]);

    // A settlement with nothing reserved leaves a settled marker and counts once.
    let none = conformance::reservation("req-3#0", month, 0, now + 60);
    let s3 = conformance::settlement(&none, 4);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, user, s3) = (store.clone(), user.clone(), s3.clone());
        tasks.push(tokio::spawn(async move {
            store.settle(&user, &s3).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(counters(store.clone(), user.clone()).await, (19, 0));

    // The limit still holds on what was counted once: 19 spent, 81 left.
    let fits = conformance::reservation("req-4#0", month, 81, now + 60);
    assert!(store.reserve(&user, &fits, limit, now).await.unwrap());
    let over = conformance::reservation("req-5#0", month, 1, now + 60);
    assert!(!store.reserve(&user, &over, limit, now).await.unwrap());
    assert_eq!(
        reservation_item(&client, &store, &user, month, "req-5#0").await,
        None,
        "a refused reservation leaves no item"
    );
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (19, 81, 100)
    );
}

/// A reservation nobody settled (its process died): once its lease ends it stops
/// counting in `month()` (which only reads), a reservation that needs its room releases
/// it and is granted, and its settlement arriving late, through `settle` or with its
/// usage entry, adds only the actual cost.
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_an_ended_lease_stops_counting_and_a_late_settlement_adds_only_the_cost() {
    use shared::money::NanoUsd;
    use shared::provider::Provider;
    use shared::store::UsageStore;
    use shared::usage::UsageStatus;
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let store = usage_store(&client).await;
    let user = format!("lease-{}", uuid::Uuid::new_v4().simple());
    let month = "2026-11";
    let limit = Some(NanoUsd(200));
    let now = chrono::Utc::now().timestamp();
    let counters = |t: i64| {
        let (store, user) = (&store, &user);
        async move {
            let m = store.month(user, month, t).await.unwrap();
            (m.spent.0, m.reserved.0)
        }
    };

    let abandoned = conformance::reservation("dead#0", month, 170, now + 60);
    assert!(store.reserve(&user, &abandoned, limit, now).await.unwrap());
    assert_eq!(counters(now + 30).await, (0, 170));
    // The lease ended: it no longer counts, and reading that changed nothing.
    assert_eq!(counters(now + 61).await, (0, 0));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (0, 170, 170)
    );
    let item = reservation_item(&client, &store, &user, month, "dead#0").await;
    assert_eq!(state_of(&item).as_deref(), Some("held"));

    // A reservation that needs its room releases it and is granted.
    let needs_room = conformance::reservation("next#0", month, 100, now + 130);
    assert!(
        store
            .reserve(&user, &needs_room, limit, now + 70)
            .await
            .unwrap()
    );
    assert_eq!(counters(now + 70).await, (0, 100));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (0, 100, 100)
    );
    let item = reservation_item(&client, &store, &user, month, "dead#0").await;
    assert_eq!(state_of(&item).as_deref(), Some("released"));

    // Its late settlement adds only the actual cost, once.
    let late = conformance::settlement(&abandoned, 5);
    store.settle(&user, &late).await.unwrap();
    store.settle(&user, &late).await.unwrap();
    assert_eq!(counters(now + 70).await, (5, 100));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (5, 100, 105)
    );

    // The same with the settlement carried by the usage entry: another lease ends,
    // is released by a reservation that needs its room, and its entry arrives late.
    let abandoned2 = conformance::reservation("dead2#0", month, 50, now + 80);
    assert!(
        store
            .reserve(&user, &abandoned2, limit, now + 70)
            .await
            .unwrap()
    );
    let room2 = conformance::reservation("next2#0", month, 95, now + 150);
    assert!(store.reserve(&user, &room2, limit, now + 90).await.unwrap());
    assert_eq!(counters(now + 90).await, (5, 195));
    let e = conformance::usage_entry(
        &user,
        "2026-11-20T10:00:00.000Z",
        Provider::Anthropic,
        Some(7),
        UsageStatus::Success,
    );
    let settle2 = conformance::settlement(&abandoned2, 7);
    store.record(&e, Some(&settle2)).await.unwrap();
    store.record(&e, Some(&settle2)).await.unwrap();
    assert_eq!(counters(now + 90).await, (12, 195));
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (12, 195, 207)
    );
    let item = reservation_item(&client, &store, &user, month, "dead2#0").await;
    assert_eq!(state_of(&item).as_deref(), Some("settled"));

    // The sweep releases what is left once its lease ends, once.
    assert_eq!(
        store
            .release_expired(&user, month, now + 151)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .release_expired(&user, month, now + 151)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        raw_counters(&client, &store, &user, month).await,
        (12, 0, 12)
    );
}

/// Key rotation on the AWS backends: rounds of concurrent `PUT`s (different keys) and a
/// `DELETE` through the settings service. After each round the record names a version
/// that reads back as the key of its hint, and the secret carries our label on exactly
/// the version the record names (none, or no secret at all, when no key is named).
#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn concurrent_rotation_on_dynamodb_and_secrets_manager() {
    use shared::provider::Provider;
    use shared::settings::{SettingsUpdate, service};
    use shared::store::SettingsStore;
    use shared::vault::{KeyChanges, KeyVault};
    let config = config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = settings_table(&dynamodb).await;
    let audit = audit_table(&dynamodb).await;
    let settings: Arc<dyn SettingsStore> =
        Arc::new(DynamoSettingsStore::new(dynamodb, table, audit));
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let vault: Arc<dyn KeyVault> =
        Arc::new(SecretsManagerVault::new(sm.clone(), "rotation/", None, 0).unwrap());
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    let name = format!("rotation/users/{user}/llm/anthropic");
    let changes = KeyChanges::default();
    let catalog = shared::pricing::catalog().unwrap();
    for round in 0..12 {
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (settings, vault, changes, user) = (
                settings.clone(),
                vault.clone(),
                changes.clone(),
                user.clone(),
            );
            let json = if round % 2 == 1 && i == 2 {
                r#"{"apiKeys": {"anthropic": null}}"#.to_owned()
            } else {
                format!(
                    r#"{{"apiKeys": {{"anthropic": "sk-ant-api03-{}{round:02}{i}"}}}}"#,
                    "r".repeat(40)
                )
            };
            tasks.push(tokio::spawn(async move {
                let body: SettingsUpdate = serde_json::from_str(&json).unwrap();
                service::update(
                    settings.as_ref(),
                    vault.as_ref(),
                    &changes,
                    catalog,
                    &user,
                    &user,
                    body,
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let rec = service::read(settings.as_ref(), &user).await.unwrap();
        let labelled: Vec<String> = match sm.describe_secret().secret_id(&name).send().await {
            Ok(d) => d
                .version_ids_to_stages()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, stages)| stages.iter().any(|s| s.starts_with("gw-")))
                .map(|(v, _)| v)
                .collect(),
            Err(_) => Vec::new(),
        };
        match rec.keys.get(&Provider::Anthropic) {
            Some(meta) => {
                let version = meta.version.clone().unwrap();
                let key = vault
                    .get_key(&user, Provider::Anthropic, Some(&version))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(key.hint(), meta.hint, "round {round}");
                assert_eq!(labelled, vec![version.as_str().to_owned()], "round {round}");
            }
            None => assert!(labelled.is_empty(), "round {round}: {labelled:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator; run by `make test`"]
async fn dynamodb_rate_limits_conformance() {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let table = usage_table(&client).await;
    conformance::rate_limits_suite(&shared::store::dynamodb::DynamoRateLimits::new(
        client, table,
    ))
    .await;
}
