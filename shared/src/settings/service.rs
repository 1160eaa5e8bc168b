//! Settings writes that span two stores. Keys go to the vault and their metadata to the
//! settings record; the settings write is the commit point. Every vault change is made
//! first, remembering what it replaced, and undone if anything after it fails, so a
//! failed `PUT` leaves keys and preferences as they were.

use super::{KeyMeta, SettingsRecord, SettingsUpdate};
use crate::error::ApiError;
use crate::pricing::Catalog;
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::store::SettingsStore;
use crate::vault::KeyVault;

pub async fn read(settings: &dyn SettingsStore, user_id: &str) -> Result<SettingsRecord, ApiError> {
    Ok(settings.get_settings(user_id).await?.unwrap_or_default())
}

/// Validates the whole update before writing anything, then applies it atomically.
pub async fn update(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    catalog: &Catalog,
    user_id: &str,
    update: SettingsUpdate,
) -> Result<SettingsRecord, ApiError> {
    let current = read(settings, user_id).await?;
    if let Some(expected) = update.version {
        if expected != current.version {
            return Err(ApiError::Conflict(format!(
                "version {expected} is stale; the current version is {}",
                current.version
            )));
        }
    }

    let mut next = current.clone();
    if let Some(patch) = update.preferences {
        next.preferences = patch.apply(&current.preferences, catalog)?;
    }
    let mut changes: Vec<(Provider, Option<ApiKey>)> = Vec::new();
    for (provider, key) in update.api_keys.unwrap_or_default() {
        let key = key.map(|k| k.0);
        if let Some(k) = &key {
            provider
                .check_key_shape(k.expose())
                .map_err(|msg| ApiError::invalid(format!("apiKeys.{provider}"), msg))?;
        }
        changes.push((provider, key));
    }

    let now = chrono::Utc::now();
    for (provider, key) in &changes {
        match key {
            Some(k) => {
                next.keys.insert(
                    *provider,
                    KeyMeta {
                        hint: k.hint(),
                        updated_at: now,
                    },
                );
            }
            None => {
                next.keys.remove(provider);
            }
        }
    }
    next.version = current.version + 1;
    next.updated_at = Some(now);

    let mut undo: Vec<(Provider, Option<ApiKey>)> = Vec::new();
    let outcome = apply(
        settings,
        vault,
        user_id,
        &changes,
        &next,
        current.version,
        &mut undo,
    )
    .await;
    if let Err(e) = outcome {
        roll_back(vault, user_id, undo).await;
        return Err(e);
    }
    Ok(next)
}

async fn apply(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    user_id: &str,
    changes: &[(Provider, Option<ApiKey>)],
    next: &SettingsRecord,
    expected_version: u64,
    undo: &mut Vec<(Provider, Option<ApiKey>)>,
) -> Result<(), ApiError> {
    for (provider, key) in changes {
        let previous = vault.get_key(user_id, *provider).await?;
        match key {
            Some(k) => vault.put_key(user_id, *provider, k).await?,
            None => vault.delete_key(user_id, *provider).await?,
        }
        undo.push((*provider, previous));
    }
    settings
        .put_settings(user_id, next, expected_version)
        .await?;
    Ok(())
}

async fn roll_back(vault: &dyn KeyVault, user_id: &str, undo: Vec<(Provider, Option<ApiKey>)>) {
    for (provider, previous) in undo.into_iter().rev() {
        let restored = match &previous {
            Some(k) => vault.put_key(user_id, provider, k).await,
            None => vault.delete_key(user_id, provider).await,
        };
        if let Err(e) = restored {
            // The settings record was not written, so it still describes the old state;
            // the vault now disagrees with it for this provider.
            tracing::error!(user_id, provider = %provider, error = %e, "key rollback failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;
    use crate::store::StoreError;
    use crate::store::sqlite::SqliteStore;
    use crate::vault::local::LocalVault;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A settings store whose writes can be made to fail on demand.
    struct Flaky {
        inner: SqliteStore,
        fail: AtomicBool,
    }

    #[async_trait]
    impl SettingsStore for Flaky {
        async fn get_settings(&self, u: &str) -> Result<Option<SettingsRecord>, StoreError> {
            self.inner.get_settings(u).await
        }
        async fn put_settings(
            &self,
            u: &str,
            r: &SettingsRecord,
            v: u64,
        ) -> Result<(), StoreError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("injected".into()));
            }
            self.inner.put_settings(u, r, v).await
        }
    }

    fn key(c: char) -> String {
        format!("sk-ant-api03-{}", c.to_string().repeat(40))
    }

    fn body(json: &str) -> SettingsUpdate {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn failed_settings_write_restores_every_key() {
        let db = SqliteStore::open_in_memory().unwrap();
        let store = Flaky {
            inner: db.clone(),
            fail: AtomicBool::new(false),
        };
        let vault = LocalVault::new(db, &[1; 32]).unwrap();
        let c = catalog().unwrap();
        let openai = format!("sk-proj-{}", "o".repeat(40));
        update(
            &store,
            &vault,
            c,
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}", "openai": "{openai}"}}, "preferences": {{"maxTokens": 10}}}}"#,
                key('a')
            )),
        )
        .await
        .unwrap();

        store.fail.store(true, Ordering::SeqCst);
        let failed = update(
            &store,
            &vault,
            c,
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}", "openai": null, "google": "AIza{}"}}, "preferences": {{"maxTokens": 20}}}}"#,
                key('b'),
                "g".repeat(35)
            )),
        )
        .await;
        assert!(matches!(failed, Err(ApiError::Internal(_))));

        let ant = vault
            .get_key("u", Provider::Anthropic)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ant.expose(), key('a'));
        let oai = vault.get_key("u", Provider::OpenAi).await.unwrap().unwrap();
        assert_eq!(oai.expose(), openai);
        assert!(
            vault
                .get_key("u", Provider::Google)
                .await
                .unwrap()
                .is_none()
        );
        let rec = read(&store, "u").await.unwrap();
        assert_eq!(rec.preferences.max_tokens, 10);
        assert_eq!(rec.version, 1);
    }

    #[tokio::test]
    async fn invalid_input_writes_nothing() {
        let db = SqliteStore::open_in_memory().unwrap();
        let vault = LocalVault::new(db.clone(), &[1; 32]).unwrap();
        let c = catalog().unwrap();
        // A valid key next to an invalid preference: neither is saved.
        let r = update(
            &db,
            &vault,
            c,
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}"}}, "preferences": {{"maxTokens": 0}}}}"#,
                key('a')
            )),
        )
        .await;
        assert!(matches!(r, Err(ApiError::InvalidField { .. })));
        assert!(
            vault
                .get_key("u", Provider::Anthropic)
                .await
                .unwrap()
                .is_none()
        );
        // A valid key next to a malformed one: neither is saved.
        let r = update(
            &db,
            &vault,
            c,
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}", "openai": "nope"}}}}"#,
                key('a')
            )),
        )
        .await;
        match r {
            Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, "apiKeys.openai"),
            other => panic!("{:?}", other.err()),
        }
        assert!(
            vault
                .get_key("u", Provider::Anthropic)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(read(&db, "u").await.unwrap().version, 0);
    }

    #[tokio::test]
    async fn stale_version_is_a_conflict() {
        let db = SqliteStore::open_in_memory().unwrap();
        let vault = LocalVault::new(db.clone(), &[1; 32]).unwrap();
        let c = catalog().unwrap();
        update(&db, &vault, c, "u", body(r#"{"version": 0}"#))
            .await
            .unwrap();
        let r = update(&db, &vault, c, "u", body(r#"{"version": 0}"#)).await;
        assert!(matches!(r, Err(ApiError::Conflict(_))));
        update(&db, &vault, c, "u", body(r#"{"version": 1}"#))
            .await
            .unwrap();
    }
}
