//! The tables, laid out like the DynamoDB ones, and the one migration older files need.
//! Table and column names are the on-disk format: existing data directories must keep
//! opening, so they change only with a migration here.

use crate::store::StoreError;
use rusqlite::Connection;

pub(super) const SCHEMA: &str = "
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
-- Provider health across all users (store/health.rs): one additive counter per
-- granularity ('minute' | 'hour'), bucket start (Unix seconds), group
-- ('provider:<p>' | 'model:<p>/<model>') and counter name. Added after the first
-- release: CREATE IF NOT EXISTS is its migration, older files gain it on open.
CREATE TABLE IF NOT EXISTS health (
    granularity TEXT NOT NULL,
    bucket      INTEGER NOT NULL,
    grp         TEXT NOT NULL,
    counter     TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (granularity, bucket, grp, counter)
) WITHOUT ROWID;
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
-- The model registry: the name is unique, as the DynamoDB table's name-lock items make it.
CREATE TABLE IF NOT EXISTS llms (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL
);
-- Markers that something happened once in the store's life (`llms_seeded`).
CREATE TABLE IF NOT EXISTS markers (
    name TEXT PRIMARY KEY,
    at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_limits (
    user_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL
);
";

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

/// Token columns added after the first release, with their defaults for older rows.
const TOKEN_COLUMNS: [(&str, &str); 3] = [
    ("tenant_id", "TEXT"),
    ("is_tenant_admin", "INTEGER NOT NULL DEFAULT 0"),
    ("expires_at", "TEXT"),
];

/// Adds the tenant and expiry columns to a `tokens` table made before them, inside an
/// immediate transaction (a second process opening the file meanwhile waits, then finds
/// nothing to do).
pub(super) fn migrate_tokens(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (name, decl) in TOKEN_COLUMNS {
        let present: i64 = tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('tokens') WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        if present == 0 {
            tx.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {name} {decl};"))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Moves an unversioned `secrets` table to the versioned layout. The check runs inside
/// an immediate transaction, so a second process opening the file at the same moment
/// (`token create` next to `serve`) waits and then finds nothing to do.
pub(super) fn migrate_secrets(conn: &mut Connection) -> Result<(), StoreError> {
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
