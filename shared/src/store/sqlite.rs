//! The embedded backend: one SQLite file (bundled SQLite, WAL), tables laid out like the
//! DynamoDB ones. rusqlite is blocking, so every call runs on the blocking pool and the
//! async executor never waits on disk.

use super::{SettingsRecord, SettingsStore, StoreError, TokenRecord, TokenStore};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SETTING_TYPE: &str = "llm_preferences";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (
    user_id      TEXT NOT NULL,
    setting_type TEXT NOT NULL,
    version      INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (user_id, setting_type)
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    is_admin   INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    user_id        TEXT NOT NULL,
    sk             TEXT NOT NULL,
    timestamp      TEXT NOT NULL,
    provider       TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    ttl            INTEGER NOT NULL,
    body           TEXT NOT NULL,
    PRIMARY KEY (user_id, sk)
);
CREATE INDEX IF NOT EXISTS usage_by_provider ON usage (provider, timestamp);
CREATE INDEX IF NOT EXISTS usage_by_operation ON usage (operation_type, timestamp);
CREATE TABLE IF NOT EXISTS rollups (
    user_id    TEXT NOT NULL,
    day        TEXT NOT NULL,
    grp        TEXT NOT NULL,
    requests   INTEGER NOT NULL DEFAULT 0,
    tokens     INTEGER NOT NULL DEFAULT 0,
    cost_nanos INTEGER NOT NULL DEFAULT 0,
    errors     INTEGER NOT NULL DEFAULT 0,
    cached     INTEGER NOT NULL DEFAULT 0,
    latency_us INTEGER NOT NULL DEFAULT 0,
    unpriced   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, grp)
);
CREATE TABLE IF NOT EXISTS budgets (
    user_id   TEXT NOT NULL,
    month     TEXT NOT NULL,
    spent     INTEGER NOT NULL DEFAULT 0,
    reserved  INTEGER NOT NULL DEFAULT 0,
    committed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, month)
);
-- One row per reservation: held until settled, or released when its lease ends. The
-- row stays (settled / released) as the marker that makes a retried reserve or settle
-- change nothing; old ones are purged.
CREATE TABLE IF NOT EXISTS reservations (
    user_id    TEXT NOT NULL,
    id         TEXT NOT NULL,
    month      TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX IF NOT EXISTS reservations_held ON reservations (user_id, month, expires_at)
    WHERE state = 'held';
-- The start-up and periodic sweep looks for held leases of any user by expiry; the
-- purge of old markers by expiry alone.
CREATE INDEX IF NOT EXISTS reservations_held_expiry ON reservations (expires_at)
    WHERE state = 'held';
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at);
CREATE TABLE IF NOT EXISTS budget_alerts (
    user_id   TEXT NOT NULL,
    month     TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    PRIMARY KEY (user_id, month, threshold)
);
CREATE TABLE IF NOT EXISTS response_cache (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    timestamp TEXT NOT NULL,
    id        TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (timestamp, id)
);
CREATE TABLE IF NOT EXISTS secrets (
    name       TEXT NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
";

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

/// Databases made before key versions had one `secrets` row per name. Their rows become
/// the legacy version `''` (still decrypted with the name alone as associated data), so
/// records that name no version keep reading them.
const SECRETS_V2: &str = "
CREATE TABLE secrets_v2 (
    name       TEXT NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
INSERT INTO secrets_v2 (name, version, nonce, ciphertext, updated_at)
    SELECT name, '', nonce, ciphertext, updated_at FROM secrets;
DROP TABLE secrets;
ALTER TABLE secrets_v2 RENAME TO secrets;
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
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
        conn.execute_batch(SCHEMA)?;
        migrate_secrets(&mut conn)?;
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

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_settings(&self, user_id: &str) -> Result<Option<SettingsRecord>, StoreError> {
        let user_id = user_id.to_owned();
        let body: Option<String> = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT body FROM settings WHERE user_id = ?1 AND setting_type = ?2",
                    params![user_id, SETTING_TYPE],
                    |row| row.get(0),
                )
                .optional()?)
            })
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn put_settings(
        &self,
        user_id: &str,
        record: &SettingsRecord,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let user_id = user_id.to_owned();
        let version = to_i64(record.version)?;
        let expected = to_i64(expected_version)?;
        self.call(move |c| {
            let changed = if expected == 0 {
                c.execute(
                    "INSERT INTO settings (user_id, setting_type, version, body)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![user_id, SETTING_TYPE, version, body],
                )?
            } else {
                c.execute(
                    "UPDATE settings SET version = ?3, body = ?4
                     WHERE user_id = ?1 AND setting_type = ?2 AND version = ?5",
                    params![user_id, SETTING_TYPE, version, body, expected],
                )?
            };
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }
}

/// Moves an unversioned `secrets` table to the versioned layout. The check runs inside
/// an immediate transaction, so a second process opening the file at the same moment
/// (`token create` next to `serve`) waits and then finds nothing to do.
fn migrate_secrets(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let versioned: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('secrets') WHERE name = 'version'",
        [],
        |r| r.get(0),
    )?;
    if versioned == 0 {
        tx.execute_batch(SECRETS_V2)?;
    }
    tx.commit()?;
    Ok(())
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend("version out of range".into()))
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let t = token.clone();
        self.call(move |c| {
            let changed = c.execute(
                "INSERT INTO tokens (token_hash, user_id, is_admin, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![
                    t.token_hash,
                    t.user_id,
                    t.is_admin,
                    t.created_at.to_rfc3339()
                ],
            )?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn get_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = token_hash.to_owned();
        let row: Option<(String, String, bool, String)> = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT token_hash, user_id, is_admin, created_at FROM tokens WHERE token_hash = ?1",
                    params![hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?)
            })
            .await?;
        row.map(|(token_hash, user_id, is_admin, created_at)| {
            let created_at = chrono::DateTime::parse_from_rfc3339(&created_at)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
                .with_timezone(&chrono::Utc);
            Ok(TokenRecord {
                token_hash,
                user_id,
                is_admin,
                created_at,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    #[tokio::test]
    async fn settings_conformance() {
        let store = SqliteStore::open_in_memory().unwrap();
        conformance::settings_suite(Arc::new(store)).await;
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
        conformance::budget_suite(Arc::new(store.clone())).await;
        conformance::cache_suite(&store).await;
        conformance::audit_suite(&store).await;
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
            .put_settings("u1", &record, 0)
            .await
            .unwrap();
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get_settings("u1").await.unwrap(), Some(record));
    }
}
