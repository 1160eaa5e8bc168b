//! The local key vault: each key is sealed with AES-256-GCM under a key-encryption key
//! (KEK), with a fresh random nonce per write and the secret's name (and version) as
//! associated data, so a ciphertext copied to another user's, provider's or version's
//! row does not decrypt. One row per (user, provider, version).
//!
//! The KEK comes from `LLM_LOCAL_MASTER_KEY` (64 hex characters or base64 of 32 bytes)
//! or from `master.key` in the data directory, created with mode 0600 on first start.

use super::{KeyVault, KeyVersion, Remaining, VaultError, secret_name};
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::store::StoreError;
use crate::store::sqlite::SqliteStore;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use rusqlite::{OptionalExtension, params};
use std::path::Path;
use zeroize::Zeroizing;

pub const MASTER_KEY_ENV: &str = "LLM_LOCAL_MASTER_KEY";
const MASTER_KEY_FILE: &str = "master.key";

pub struct LocalVault {
    db: SqliteStore,
    cipher: Aes256Gcm,
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        VaultError::Backend(e.to_string())
    }
}

/// Decodes a master key given as 64 hex characters or base64 of 32 bytes.
fn decode_master_key(text: &str) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let text = text.trim();
    let bytes = Zeroizing::new(
        hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or_else(|| {
                VaultError::Config(format!(
                    "{MASTER_KEY_ENV} must be 64 hex characters or base64 of 32 bytes"
                ))
            })?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(VaultError::Config(format!(
            "{MASTER_KEY_ENV} must decode to 32 bytes"
        )));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Loads the KEK from the environment, else from `<data_dir>/master.key`, creating that
/// file (0600) with 32 random bytes on first start. A key file readable by group or
/// others is refused rather than used.
pub fn load_master_key(
    env_value: Option<String>,
    data_dir: &Path,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    if let Some(v) = env_value {
        return decode_master_key(&v);
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    let io = |e: std::io::Error| VaultError::Config(format!("{}: {e}", path.display()));
    if !path.exists() {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| VaultError::Config(e.to_string()))?;
        write_private(&path, hex::encode(key.as_ref()).as_bytes()).map_err(io)?;
    }
    check_private(&path).map_err(io)?;
    let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(io)?);
    decode_master_key(&text)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(unix)]
fn check_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "master key file has mode {:o}; it must be 0600 (chmod 600 it)",
            mode & 0o777
        )));
    }
    Ok(())
}

impl LocalVault {
    pub fn new(db: SqliteStore, master_key: &[u8; 32]) -> Result<Self, VaultError> {
        let cipher = Aes256Gcm::new_from_slice(master_key)
            .map_err(|_| VaultError::Config("master key must be 32 bytes".into()))?;
        Ok(LocalVault { db, cipher })
    }
}

/// The row's version column: the legacy key is the empty version.
fn version_column(version: Option<&KeyVersion>) -> String {
    version.map(|v| v.as_str().to_owned()).unwrap_or_default()
}

/// The associated data a row is sealed with. A legacy row keeps the name alone (how rows
/// were sealed before versions), a versioned one binds the version too, so a ciphertext
/// moved to another user's, provider's or version's row does not decrypt.
fn associated_data(name: &str, version: Option<&KeyVersion>) -> String {
    match version {
        Some(v) => format!("{name}#{}", v.as_str()),
        None => name.to_owned(),
    }
}

#[async_trait]
impl KeyVault for LocalVault {
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: &KeyVersion,
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let name = secret_name("", user_id, provider);
        let aad = associated_data(&name, Some(version));
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Backend(e.to_string()))?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Backend("encryption failed".into()))?;
        let now = chrono::Utc::now().to_rfc3339();
        let version = version.as_str().to_owned();
        self.db
            .call(move |c| {
                // A version id is fresh per write; the upsert only makes a retried or
                // repaired write of the same version succeed.
                c.execute(
                    "INSERT INTO secrets (name, version, nonce, ciphertext, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (name, version) DO UPDATE SET nonce = ?3, ciphertext = ?4, updated_at = ?5",
                    params![name, version, nonce.to_vec(), ciphertext, now],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
    ) -> Result<Option<ApiKey>, VaultError> {
        let name = secret_name("", user_id, provider);
        let aad = associated_data(&name, version);
        let lookup = (name.clone(), version_column(version));
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .db
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT nonce, ciphertext FROM secrets WHERE name = ?1 AND version = ?2",
                    params![lookup.0, lookup.1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
            })
            .await?;
        let Some((nonce, ciphertext)) = row else {
            return Ok(None);
        };
        if nonce.len() != 12 {
            return Err(VaultError::Undecryptable(name));
        }
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| VaultError::Undecryptable(name.clone()))?,
        );
        let text =
            String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Undecryptable(name))?;
        Ok(Some(ApiKey::new(text)))
    }

    /// Deletes exactly one row; `remaining` does not matter here, as every version has
    /// its own row.
    async fn delete_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
        _remaining: Remaining,
    ) -> Result<(), VaultError> {
        let name = secret_name("", user_id, provider);
        let version = version_column(version);
        self.db
            .call(move |c| {
                c.execute(
                    "DELETE FROM secrets WHERE name = ?1 AND version = ?2",
                    params![name, version],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn vault() -> (LocalVault, SqliteStore) {
        let db = SqliteStore::open_in_memory().unwrap();
        (LocalVault::new(db.clone(), &[7u8; 32]).unwrap(), db)
    }

    #[tokio::test]
    async fn vault_conformance() {
        conformance::vault_suite(&vault().0).await;
    }

    #[tokio::test]
    async fn plaintext_never_reaches_the_database() {
        let (v, db) = vault();
        let key = ApiKey::new("sk-ant-api03-PLAINTEXT-MARKER-0000000000000".into());
        v.put_key("u1", Provider::Anthropic, &KeyVersion::fresh(), &key)
            .await
            .unwrap();
        let raw: Vec<u8> = db
            .call(|c| Ok(c.query_row("SELECT ciphertext FROM secrets", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("PLAINTEXT-MARKER"));
    }

    #[tokio::test]
    async fn wrong_master_key_or_moved_ciphertext_does_not_decrypt() {
        let (v, db) = vault();
        let key = ApiKey::new("sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into());
        let ver = KeyVersion::fresh();
        v.put_key("u1", Provider::Anthropic, &ver, &key)
            .await
            .unwrap();
        let other = LocalVault::new(db.clone(), &[8u8; 32]).unwrap();
        assert!(matches!(
            other.get_key("u1", Provider::Anthropic, Some(&ver)).await,
            Err(VaultError::Undecryptable(_))
        ));
        // Copy u1's ciphertext into u2's slot, and into another version of u1's: the name
        // and the version are bound as associated data.
        let moved = KeyVersion::fresh();
        let moved_id = moved.as_str().to_owned();
        db.call(move |c| {
            c.execute(
                "INSERT INTO secrets SELECT 'users/u2/llm/anthropic', version, nonce, ciphertext, updated_at FROM secrets",
                [],
            )?;
            c.execute(
                "INSERT INTO secrets SELECT name, ?1, nonce, ciphertext, updated_at FROM secrets WHERE name = 'users/u1/llm/anthropic'",
                [moved_id],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(
            v.get_key("u2", Provider::Anthropic, Some(&ver))
                .await
                .is_err()
        );
        assert!(
            v.get_key("u1", Provider::Anthropic, Some(&moved))
                .await
                .is_err()
        );
        assert!(
            v.get_key("u1", Provider::Anthropic, Some(&ver))
                .await
                .is_ok()
        );
    }

    /// A database from before key versions: its one row per name is still readable as
    /// the legacy key after the migration, and new versions live next to it.
    #[tokio::test]
    async fn unversioned_rows_survive_the_migration_as_the_legacy_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let master = [7u8; 32];
        let name = "users/u1/llm/anthropic";
        let old_key = format!("sk-ant-api03-{}", "o".repeat(40));
        {
            let cipher = Aes256Gcm::new_from_slice(&master).unwrap();
            let nonce = [3u8; 12];
            let ciphertext = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: old_key.as_bytes(),
                        aad: name.as_bytes(),
                    },
                )
                .unwrap();
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE secrets (name TEXT PRIMARY KEY, nonce BLOB NOT NULL,
                 ciphertext BLOB NOT NULL, updated_at TEXT NOT NULL);",
            )
            .unwrap();
            c.execute(
                "INSERT INTO secrets VALUES (?1, ?2, ?3, '2025-01-01T00:00:00Z')",
                params![name, nonce.to_vec(), ciphertext],
            )
            .unwrap();
        }
        let db = SqliteStore::open(&path).unwrap();
        // Opening twice migrates once.
        let db2 = SqliteStore::open(&path).unwrap();
        let v = LocalVault::new(db, &master).unwrap();
        let legacy = v.get_key("u1", Provider::Anthropic, None).await.unwrap();
        assert_eq!(legacy.unwrap().expose(), old_key);
        let ver = KeyVersion::fresh();
        let new_key = ApiKey::new(format!("sk-ant-api03-{}", "n".repeat(40)));
        v.put_key("u1", Provider::Anthropic, &ver, &new_key)
            .await
            .unwrap();
        let v2 = LocalVault::new(db2, &master).unwrap();
        assert_eq!(
            v2.get_key("u1", Provider::Anthropic, Some(&ver))
                .await
                .unwrap(),
            Some(new_key)
        );
        v.delete_key("u1", Provider::Anthropic, None, Remaining::Named)
            .await
            .unwrap();
        assert_eq!(
            v.get_key("u1", Provider::Anthropic, None).await.unwrap(),
            None
        );
        assert!(
            v.get_key("u1", Provider::Anthropic, Some(&ver))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let k1 = load_master_key(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = load_master_key(None, dir.path()).unwrap();
        assert_eq!(*k1, *k2);
        std::fs::set_permissions(
            dir.path().join(MASTER_KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(load_master_key(None, dir.path()).is_err());
    }

    #[test]
    fn master_key_from_env_hex_or_base64() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = "11".repeat(32);
        assert_eq!(
            *load_master_key(Some(hex_key), dir.path()).unwrap(),
            [0x11; 32]
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode([0x22u8; 32]);
        assert_eq!(*load_master_key(Some(b64), dir.path()).unwrap(), [0x22; 32]);
        assert!(load_master_key(Some("short".into()), dir.path()).is_err());
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }
}
