//! Keys for generation come from the vault through this in-memory cache, so a request
//! does not pay a vault (Secrets Manager) round trip. An entry is keyed by the vault
//! version the settings record names, and the vault is asked for exactly that version,
//! so a record that names another key can never be answered with the old one. The
//! settings service also calls [`KeyCache::invalidate`] (through
//! [`crate::vault::KeyChanges`]) on every key change in this process, so a replaced or
//! deleted key does not stay in memory; the TTL bounds how long any key lives here.

use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::settings::{KeyMeta, SettingsRecord};
use crate::vault::{KeyChangeListener, KeyVault, KeyVersion, VaultError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Slot = (String, Provider);

/// Which stored key an entry holds: the version the record names, or, for a record from
/// before key versions, the legacy key as of that record's `updated_at`.
#[derive(Clone, PartialEq, Eq)]
enum Tag {
    Version(KeyVersion),
    Legacy(String),
}

impl Tag {
    fn of(meta: &KeyMeta) -> Self {
        match &meta.version {
            Some(v) => Tag::Version(v.clone()),
            None => Tag::Legacy(meta.updated_at.to_rfc3339()),
        }
    }
}

pub struct KeyCache {
    vault: Arc<dyn KeyVault>,
    ttl: Duration,
    entries: Mutex<HashMap<Slot, (Tag, Instant, ApiKey)>>,
}

impl KeyCache {
    pub fn new(vault: Arc<dyn KeyVault>, ttl: Duration) -> Self {
        KeyCache {
            vault,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The user's key for `provider`, or `None` when the settings say none is saved.
    pub async fn get(
        &self,
        user_id: &str,
        settings: &SettingsRecord,
        provider: Provider,
    ) -> Result<Option<ApiKey>, VaultError> {
        let Some(meta) = settings.keys.get(&provider) else {
            return Ok(None);
        };
        let tag = Tag::of(meta);
        let slot = (user_id.to_owned(), provider);
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((t, at, key)) = entries.get(&slot)
                && *t == tag
                && at.elapsed() < self.ttl
            {
                return Ok(Some(key.clone()));
            }
        }
        let key = self
            .vault
            .get_key(user_id, provider, meta.version.as_ref())
            .await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match &key {
            Some(k) => {
                if entries.len() > 10_000 {
                    let ttl = self.ttl;
                    entries.retain(|_, (_, at, _)| at.elapsed() < ttl);
                }
                entries.insert(slot, (tag, Instant::now(), k.clone()));
            }
            None => {
                // The record names a version the vault does not hold (removed under a
                // race the settings service documents). Fail closed: no key, no guess.
                tracing::warn!(user_id, provider = %provider, "the saved key's version is missing from the vault");
                entries.remove(&slot);
            }
        }
        Ok(key)
    }

    /// Drops the cached key of `user_id` for `provider`.
    pub fn invalidate(&self, user_id: &str, provider: Provider) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&(user_id.to_owned(), provider));
    }
}

impl KeyChangeListener for KeyCache {
    fn key_changed(&self, user_id: &str, provider: Provider) {
        self.invalidate(user_id, provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::vault::local::LocalVault;

    fn key(c: char) -> ApiKey {
        ApiKey::new(format!("sk-ant-api03-{}", c.to_string().repeat(40)))
    }

    fn record_naming(
        version: &KeyVersion,
        updated_at: chrono::DateTime<chrono::Utc>,
    ) -> SettingsRecord {
        let mut r = SettingsRecord::default();
        r.keys.insert(
            Provider::Anthropic,
            KeyMeta {
                hint: "…aaaa".into(),
                updated_at,
                version: Some(version.clone()),
            },
        );
        r
    }

    #[tokio::test]
    async fn a_record_naming_a_new_version_never_gets_the_old_key() {
        let vault =
            Arc::new(LocalVault::new(SqliteStore::open_in_memory().unwrap(), &[1; 32]).unwrap());
        let cache = KeyCache::new(vault.clone(), Duration::from_secs(300));
        let (v1, v2) = (KeyVersion::fresh(), KeyVersion::fresh());
        vault
            .put_key("u", Provider::Anthropic, &v1, &key('a'))
            .await
            .unwrap();
        vault
            .put_key("u", Provider::Anthropic, &v2, &key('b'))
            .await
            .unwrap();
        // The same timestamp on both records: only the version tells them apart.
        let at = chrono::Utc::now();
        let old = record_naming(&v1, at);
        let new = record_naming(&v2, at);
        assert_eq!(
            cache.get("u", &old, Provider::Anthropic).await.unwrap(),
            Some(key('a'))
        );
        assert_eq!(
            cache.get("u", &new, Provider::Anthropic).await.unwrap(),
            Some(key('b'))
        );
        assert_eq!(
            cache.get("u", &old, Provider::Anthropic).await.unwrap(),
            Some(key('a'))
        );
    }

    #[tokio::test]
    async fn invalidate_drops_the_cached_key() {
        let vault =
            Arc::new(LocalVault::new(SqliteStore::open_in_memory().unwrap(), &[1; 32]).unwrap());
        let cache = Arc::new(KeyCache::new(vault.clone(), Duration::from_secs(300)));
        let changes = crate::vault::KeyChanges::default();
        changes.subscribe(cache.clone());
        let v1 = KeyVersion::fresh();
        vault
            .put_key("u", Provider::Anthropic, &v1, &key('a'))
            .await
            .unwrap();
        let rec = record_naming(&v1, chrono::Utc::now());
        assert!(
            cache
                .get("u", &rec, Provider::Anthropic)
                .await
                .unwrap()
                .is_some()
        );
        // The version is deleted and the change announced: the cache must ask the vault
        // again rather than serve the deleted key.
        vault
            .delete_key(
                "u",
                Provider::Anthropic,
                Some(&v1),
                crate::vault::Remaining::Nothing,
            )
            .await
            .unwrap();
        changes.notify("u", Provider::Anthropic);
        assert_eq!(
            cache.get("u", &rec, Provider::Anthropic).await.unwrap(),
            None
        );
    }
}
