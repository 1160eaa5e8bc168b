//! Settings served from memory, written through. Every `generate` request reads its
//! user's settings; this keeps that read off the database.
//!
//! - [`SettingsCache::owned`]: the process owns the store (`llm-local serve` holds the
//!   data directory's lock), so every write goes through this cache and an entry never
//!   goes stale: exact, no expiry.
//! - [`SettingsCache::window`]: another process writes (the `llm-settings` Lambda writes
//!   what the `generate` Lambda reads), so an entry is served for at most the window and
//!   then read again. A change made elsewhere applies within the window.

use crate::settings::SettingsRecord;
use crate::store::{AuditEvent, SettingsStore, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Past this many users, entries past their window are dropped on the next insert.
const PRUNE_AT: usize = 10_000;

struct Entry {
    /// `None`: the user has no settings item (reads as the defaults).
    record: Option<SettingsRecord>,
    read_at: Instant,
}

impl Entry {
    fn version(&self) -> u64 {
        self.record.as_ref().map_or(0, |r| r.version)
    }
}

pub struct SettingsCache {
    inner: Arc<dyn SettingsStore>,
    /// `None`: exact (the process owns the store).
    window: Option<Duration>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl SettingsCache {
    /// For a process that is the only writer of `inner`.
    pub fn owned(inner: Arc<dyn SettingsStore>) -> Self {
        Self::new(inner, None)
    }

    /// For a reader of a store others write: entries live at most `window`
    /// (`Duration::ZERO` disables the cache).
    pub fn window(inner: Arc<dyn SettingsStore>, window: Duration) -> Self {
        Self::new(inner, Some(window))
    }

    fn new(inner: Arc<dyn SettingsStore>, window: Option<Duration>) -> Self {
        SettingsCache {
            inner,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, e: &Entry) -> bool {
        self.window.is_none_or(|w| e.read_at.elapsed() < w)
    }

    /// Installs what was read or written, unless the entry already holds a newer
    /// version: a slow read that started before a write must not put the old record
    /// back. Versions only grow, and a missing item is version 0.
    fn install(&self, user_id: &str, record: Option<SettingsRecord>, written: bool) {
        if self.window == Some(Duration::ZERO) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let version = record.as_ref().map_or(0, |r| r.version);
        if let Some(old) = entries.get_mut(user_id) {
            // A re-read of the same version refreshes the entry's age; a write of a
            // version replaces it whatever the age.
            if old.version() < version || (old.version() == version && !written) {
                *old = Entry {
                    record,
                    read_at: Instant::now(),
                };
            }
            return;
        }
        if entries.len() >= PRUNE_AT {
            let window = self.window;
            entries.retain(|_, e| window.is_none_or(|w| e.read_at.elapsed() < w));
        }
        entries.insert(
            user_id.to_owned(),
            Entry {
                record,
                read_at: Instant::now(),
            },
        );
    }
}

#[async_trait]
impl SettingsStore for SettingsCache {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = entries.get(user_id)
                && self.fresh(e)
            {
                return Ok(e.record.clone());
            }
        }
        let record = self.inner.get_settings(user_id).await?;
        self.install(user_id, record.clone(), false);
        Ok(record)
    }

    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        match self
            .inner
            .put_settings(user_id, record, expected_version, audit)
            .await
        {
            Ok(()) => {
                self.install(user_id, Some(record.clone()), true);
                Ok(())
            }
            Err(e) => {
                // A lost race means the entry may be behind (a writer elsewhere, within
                // the window); an error may hide a write that landed. Read it again.
                let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                entries.remove(user_id);
                Err(e)
            }
        }
    }
}

/// The window of the `generate` Lambda's settings cache: `LLM_SETTINGS_CACHE_SECS`
/// (default 5 s; 0 reads the table on every request; at most 60 s).
pub fn window_from_env() -> Duration {
    std::env::var("LLM_SETTINGS_CACHE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_WINDOW, |s| Duration::from_secs(s.min(60)))
}

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::sqlite::SqliteStore;

    fn record(version: u64, max_tokens: u32) -> SettingsRecord {
        let mut r = SettingsRecord {
            version,
            ..Default::default()
        };
        r.preferences.max_tokens = max_tokens;
        r
    }

    #[tokio::test]
    async fn both_kinds_pass_the_settings_conformance_suite() {
        let db = Arc::new(SqliteStore::open_in_memory().unwrap());
        let audit = db.as_ref();
        conformance::settings_suite(Arc::new(SettingsCache::owned(db.clone())), audit).await;
        conformance::settings_suite(
            Arc::new(SettingsCache::window(db.clone(), Duration::from_secs(5))),
            audit,
        )
        .await;
        conformance::settings_suite(
            Arc::new(SettingsCache::window(db.clone(), Duration::ZERO)),
            audit,
        )
        .await;
    }

    #[tokio::test]
    async fn owned_serves_its_own_writes_from_memory() {
        let db = Arc::new(SqliteStore::open_in_memory().unwrap());
        let cache = SettingsCache::owned(db.clone());
        assert_eq!(cache.get_settings("u").await.unwrap(), None);
        cache
            .put_settings("u", &record(1, 100), 0, &[])
            .await
            .unwrap();
        // Written behind the cache's back (only a test does that to an owned store):
        // the cache still answers what it wrote, proving the read never reached SQLite.
        db.put_settings("u", &record(2, 200), 1, &[]).await.unwrap();
        let got = cache.get_settings("u").await.unwrap().unwrap();
        assert_eq!((got.version, got.preferences.max_tokens), (1, 100));
    }

    #[tokio::test]
    async fn a_window_reads_again_once_it_has_passed() {
        let db = Arc::new(SqliteStore::open_in_memory().unwrap());
        let cache = SettingsCache::window(db.clone(), Duration::from_millis(50));
        db.put_settings("u", &record(1, 100), 0, &[]).await.unwrap();
        assert_eq!(cache.get_settings("u").await.unwrap().unwrap().version, 1);
        db.put_settings("u", &record(2, 200), 1, &[]).await.unwrap();
        assert_eq!(cache.get_settings("u").await.unwrap().unwrap().version, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get_settings("u").await.unwrap().unwrap().version, 2);
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_write() {
        let db = Arc::new(SqliteStore::open_in_memory().unwrap());
        let cache = SettingsCache::owned(db);
        cache.install("u", Some(record(2, 200)), true);
        cache.install("u", Some(record(1, 100)), false);
        cache.install("u", None, false);
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries["u"].version(), 2);
    }
}
