//! The embedded backend: one SQLite file (bundled SQLite, WAL), tables laid out like the
//! DynamoDB ones. rusqlite is blocking, so every call runs on the blocking pool and the
//! async executor never waits on disk.

mod audit;
mod budgets;
mod cache;
mod limits;
mod registry;
mod schema;
mod settings;
mod tokens;
mod usage;
mod vault;

use crate::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Creates `path` readable by its owner only, or narrows an existing file to that.
pub fn private_file(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    options.open(path).map_err(io)?;
    Ok(())
}

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating it 0600 on first use) the database file. SQLite gives its WAL
    /// and shared-memory files the permissions of the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        private_file(path)?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Checkpoints (copying the WAL back into the database, with an fsync) run on a
        // connection of their own, off the request path: a request waits for its usage
        // commit, and must not also wait for a checkpoint that commit happened to trigger.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let store = Self::init(conn)?;
        store.checkpoint_in_background(path)?;
        Ok(store)
    }

    /// Every 200 ms, a passive checkpoint (it never blocks readers or the writer) from a
    /// second connection on a thread of its own, for as long as the store is alive.
    fn checkpoint_in_background(&self, path: &Path) -> Result<(), StoreError> {
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let alive = Arc::downgrade(&self.conn);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while alive.upgrade().is_some() {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if let Err(e) =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                    }
                }
                // The last handle is gone: one final checkpoint folds the WAL back in.
                let _ = checkpointer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| StoreError::Backend(format!("checkpoint thread: {e}")))?;
        Ok(())
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(schema::SCHEMA)?;
        schema::migrate_secrets(&mut conn)?;
        schema::migrate_tokens(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("connection lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SettingsRecord, SettingsStore, conformance};

    #[tokio::test]
    async fn settings_conformance() {
        let store = SqliteStore::open_in_memory().unwrap();
        conformance::settings_suite(Arc::new(store.clone()), &store).await;
    }

    #[tokio::test]
    async fn tokens_conformance() {
        let store = SqliteStore::open_in_memory().unwrap();
        conformance::tokens_suite(&store).await;
    }

    #[tokio::test]
    async fn usage_budget_cache_audit_conformance() {
        let store = SqliteStore::open_in_memory().unwrap();
        conformance::usage_suite(&store, &store).await;
        conformance::health_suite(&store).await;
        conformance::budget_suite(Arc::new(store.clone())).await;
        conformance::tenant_suite(&store, Arc::new(store.clone())).await;
        conformance::cache_suite(&store).await;
        conformance::audit_suite(&store).await;
    }

    #[tokio::test]
    async fn registry_limits_counters_conformance() {
        let store = SqliteStore::open_in_memory().unwrap();
        conformance::registry_suite(&store, &store).await;
        conformance::registry_seed_suite(&SqliteStore::open_in_memory().unwrap()).await;
        conformance::limits_suite(&store, &store).await;
        conformance::counters_suite(Arc::new(
            crate::store::warm::counters::MemoryCounters::default(),
        ))
        .await;
    }

    #[tokio::test]
    async fn purge_removes_expired_cache_entries_and_release_all_expired_sweeps_every_user() {
        use crate::money::NanoUsd;
        use crate::store::{BudgetStore, ResponseCache, UsageStore};
        let store = SqliteStore::open_in_memory().unwrap();
        store.put_cached("old", "{}", 100).await.unwrap();
        store.put_cached("fresh", "{}", 10_000).await.unwrap();
        store.purge_expired(1_000, "2000-01-01").await.unwrap();
        let rows: i64 = store
            .call(|c| Ok(c.query_row("SELECT COUNT(*) FROM response_cache", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 1, "the expired entry's row is gone");
        assert!(store.get_cached("fresh", 1_000).await.unwrap().is_some());

        for user in ["a", "b"] {
            let r = conformance::reservation("r", "2026-11", 10, 500);
            assert!(
                store
                    .reserve(user, &r, Some(NanoUsd(100)), 100)
                    .await
                    .unwrap()
            );
        }
        assert_eq!(store.release_all_expired(499).await.unwrap(), 0);
        assert_eq!(store.release_all_expired(500).await.unwrap(), 2);
        for user in ["a", "b"] {
            let m = store.month(user, "2026-11", 0).await.unwrap();
            assert_eq!(m.reserved, NanoUsd(0), "released even as seen from before");
        }
    }

    /// A data directory from before provider health (no `health` table) opens, gains
    /// the table and counts from then on; the purge drops buckets past their retention.
    #[tokio::test]
    async fn an_older_file_gains_the_health_table_and_old_buckets_are_purged() {
        use crate::provider::Provider;
        use crate::store::{Granularity, UsageStatus, UsageStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let old = SqliteStore::open(&path).unwrap();
        old.call(|c| Ok(c.execute_batch("DROP TABLE health")?))
            .await
            .unwrap();
        drop(old);
        let store = SqliteStore::open(&path).unwrap();
        let at = 1_900_000_000; // 2030-03-17T17:46:40Z
        let e = conformance::usage_entry(
            "u",
            "2030-03-17T17:46:40.000Z",
            Provider::OpenAi,
            Some(1),
            UsageStatus::Success,
        );
        store.record(&e, None).await.unwrap();
        let read = |g| store.health(g, at, at);
        assert_eq!(
            read(Granularity::Minute).await.unwrap()["provider:openai"].successes,
            1
        );
        // An hour later the minute bucket is still there; past it, it is gone, while
        // the hour bucket stays for two days.
        store
            .purge_expired(at + 3600 - 40, "2000-01-01")
            .await
            .unwrap();
        assert!(!read(Granularity::Minute).await.unwrap().is_empty());
        store
            .purge_expired(at + 3600 + 60, "2000-01-01")
            .await
            .unwrap();
        assert!(read(Granularity::Minute).await.unwrap().is_empty());
        assert!(!read(Granularity::Hour).await.unwrap().is_empty());
        store
            .purge_expired(at + 2 * 86_400 + 3600, "2000-01-01")
            .await
            .unwrap();
        assert!(read(Granularity::Hour).await.unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn the_database_file_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an existing file is narrowed too");
    }

    #[tokio::test]
    async fn survives_reopen_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let record = SettingsRecord {
            version: 1,
            ..Default::default()
        };
        SqliteStore::open(&path)
            .unwrap()
            .put_settings("u1", &record, 0, &[])
            .await
            .unwrap();
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get_settings("u1").await.unwrap(), Some(record));
    }
}
