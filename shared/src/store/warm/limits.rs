//! Per-user limits from memory: generation reads them on every request. A write through
//! this cache installs the new limits at once; a write elsewhere (another Lambda
//! instance, the `llm-local` CLI beside a running server) shows after `window`.

use crate::store::{AuditEvent, LimitsStore, StoreError, UserLimits};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct LimitsCache {
    inner: Arc<dyn LimitsStore>,
    window: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<UserLimits>)>>,
}

impl LimitsCache {
    pub fn new(inner: Arc<dyn LimitsStore>, window: Duration) -> Self {
        LimitsCache {
            inner,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn install(&self, user_id: &str, limits: Option<UserLimits>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, (at, _)| at.elapsed() < self.window);
        }
        entries.insert(user_id.to_owned(), (Instant::now(), limits));
    }
}

#[async_trait]
impl LimitsStore for LimitsCache {
    async fn get_limits(&self, user_id: &str) -> Result<Option<UserLimits>, StoreError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, l)) = entries.get(user_id)
                && at.elapsed() < self.window
            {
                return Ok(l.clone());
            }
        }
        let limits = self.inner.get_limits(user_id).await?;
        self.install(user_id, limits.clone());
        Ok(limits)
    }

    async fn put_limits(
        &self,
        user_id: &str,
        limits: &UserLimits,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let result = self
            .inner
            .put_limits(user_id, limits, expected_version, audit)
            .await;
        match &result {
            Ok(()) => self.install(user_id, Some(limits.clone())),
            Err(_) => {
                // Behind, or a write that may have landed: read it again next time.
                let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                entries.remove(user_id);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn passes_the_limits_suite_and_serves_its_own_writes_at_once() {
        let db = Arc::new(SqliteStore::open_in_memory().unwrap());
        let cache = LimitsCache::new(db.clone(), Duration::from_secs(3600));
        conformance::limits_suite(&cache, db.as_ref()).await;
        assert_eq!(cache.get_limits("u").await.unwrap(), None);
        let l = UserLimits {
            requests_per_minute: Some(3),
            version: 1,
            ..Default::default()
        };
        let e = AuditEvent::now("admin", "limits:u".into(), "limits_update");
        cache.put_limits("u", &l, 0, &e).await.unwrap();
        assert_eq!(cache.get_limits("u").await.unwrap(), Some(l));
    }
}
