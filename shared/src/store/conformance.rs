//! The behaviour every store backend must show, written once and called from each
//! backend's tests (embedded here, DynamoDB and Secrets Manager against an emulator).
//! Test code: it asserts, so the no-panic lints do not apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{SettingsStore, StoreError, TokenRecord, TokenStore};
use crate::money::NanoUsd;
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::settings::{KeyMeta, SettingsRecord};
use crate::vault::KeyVault;
use std::sync::Arc;

/// A user id unique to this run, so suites can share a long-lived backend.
fn fresh_user(tag: &str) -> String {
    format!("conf-{tag}-{}", uuid::Uuid::new_v4())
}

fn record(version: u64, max_tokens: u32) -> SettingsRecord {
    let mut r = SettingsRecord {
        version,
        updated_at: Some(chrono::Utc::now()),
        ..Default::default()
    };
    r.preferences.max_tokens = max_tokens;
    r.preferences.monthly_budget_usd = Some(NanoUsd(12_345_678_901));
    r.keys.insert(
        Provider::OpenAi,
        KeyMeta {
            hint: "…abcd".into(),
            updated_at: chrono::Utc::now(),
        },
    );
    r
}

pub async fn settings_suite(store: Arc<dyn SettingsStore>) {
    let user = fresh_user("settings");

    // A user with nothing saved has no item.
    assert_eq!(store.get_settings(&user).await.unwrap(), None);

    // First write expects version 0; it round-trips exactly.
    let v1 = record(1, 100);
    store.put_settings(&user, &v1, 0).await.unwrap();
    let got = store.get_settings(&user).await.unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(got.preferences, v1.preferences);
    assert_eq!(got.keys, v1.keys);

    // A second "first write" loses.
    assert!(matches!(
        store.put_settings(&user, &record(1, 200), 0).await,
        Err(StoreError::Conflict)
    ));
    // A write on a stale version loses and changes nothing.
    assert!(matches!(
        store.put_settings(&user, &record(6, 300), 5).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store
            .get_settings(&user)
            .await
            .unwrap()
            .unwrap()
            .preferences
            .max_tokens,
        100
    );
    // The current version wins.
    store.put_settings(&user, &record(2, 400), 1).await.unwrap();
    assert_eq!(store.get_settings(&user).await.unwrap().unwrap().version, 2);

    // Users are isolated.
    let other = fresh_user("settings-other");
    assert_eq!(store.get_settings(&other).await.unwrap(), None);

    // Under concurrency exactly one writer of a given version wins.
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        let user = user.clone();
        tasks.push(tokio::spawn(async move {
            store.put_settings(&user, &record(3, 1000 + i), 2).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error under concurrency: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one conditional write must win");
    assert_eq!(store.get_settings(&user).await.unwrap().unwrap().version, 3);
}

pub async fn tokens_suite(store: &dyn TokenStore) {
    let hash = format!("{:0>64}", uuid::Uuid::new_v4().simple());
    assert_eq!(store.get_token(&hash).await.unwrap(), None);
    let token = TokenRecord {
        token_hash: hash.clone(),
        user_id: fresh_user("token"),
        is_admin: true,
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    store.put_token(&token).await.unwrap();
    assert_eq!(store.get_token(&hash).await.unwrap(), Some(token.clone()));
    // A hash is never silently re-bound to another user.
    let hijack = TokenRecord {
        user_id: "someone-else".into(),
        ..token.clone()
    };
    assert!(matches!(
        store.put_token(&hijack).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_token(&hash).await.unwrap(), Some(token));
}

pub async fn vault_suite(vault: &dyn KeyVault) {
    let user = fresh_user("vault");
    let other = fresh_user("vault-other");
    let k1 = ApiKey::new(format!("sk-ant-api03-{}", "a".repeat(40)));
    let k2 = ApiKey::new(format!("sk-ant-api03-{}", "b".repeat(40)));

    assert_eq!(
        vault.get_key(&user, Provider::Anthropic).await.unwrap(),
        None
    );
    vault
        .put_key(&user, Provider::Anthropic, &k1)
        .await
        .unwrap();
    assert_eq!(
        vault.get_key(&user, Provider::Anthropic).await.unwrap(),
        Some(k1.clone())
    );
    // Per provider and per user.
    assert_eq!(vault.get_key(&user, Provider::OpenAi).await.unwrap(), None);
    assert_eq!(
        vault.get_key(&other, Provider::Anthropic).await.unwrap(),
        None
    );
    // Replace.
    vault
        .put_key(&user, Provider::Anthropic, &k2)
        .await
        .unwrap();
    assert_eq!(
        vault.get_key(&user, Provider::Anthropic).await.unwrap(),
        Some(k2.clone())
    );
    // Delete, then delete again (idempotent), then put again after a delete.
    vault.delete_key(&user, Provider::Anthropic).await.unwrap();
    assert_eq!(
        vault.get_key(&user, Provider::Anthropic).await.unwrap(),
        None
    );
    vault.delete_key(&user, Provider::Anthropic).await.unwrap();
    vault
        .put_key(&user, Provider::Anthropic, &k1)
        .await
        .unwrap();
    assert_eq!(
        vault.get_key(&user, Provider::Anthropic).await.unwrap(),
        Some(k1)
    );
    vault.delete_key(&user, Provider::Anthropic).await.unwrap();
}
