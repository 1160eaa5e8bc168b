//! Keys for generation come from the vault through this in-memory cache, so a request
//! does not pay a vault (Secrets Manager) round trip. An entry is keyed by the key's
//! `updated_at` from the settings record, so a saved or deleted key is seen at once; the
//! TTL bounds how long a key lives in memory at all.

use crate::error::ApiError;
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::settings::SettingsRecord;
use crate::vault::KeyVault;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Slot = (String, Provider);

pub struct KeyCache {
    vault: Arc<dyn KeyVault>,
    ttl: Duration,
    entries: Mutex<HashMap<Slot, (String, Instant, ApiKey)>>,
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
    ) -> Result<Option<ApiKey>, ApiError> {
        let Some(meta) = settings.keys.get(&provider) else {
            return Ok(None);
        };
        let version = meta.updated_at.to_rfc3339();
        let slot = (user_id.to_owned(), provider);
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((v, at, key)) = entries.get(&slot) {
                if *v == version && at.elapsed() < self.ttl {
                    return Ok(Some(key.clone()));
                }
            }
        }
        let key = self.vault.get_key(user_id, provider).await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match &key {
            Some(k) => {
                if entries.len() > 10_000 {
                    let ttl = self.ttl;
                    entries.retain(|_, (_, at, _)| at.elapsed() < ttl);
                }
                entries.insert(slot, (version, Instant::now(), k.clone()));
            }
            None => {
                entries.remove(&slot);
            }
        }
        Ok(key)
    }
}
