//! The local key vault: each key is sealed with AES-256-GCM under a key-encryption key
//! (KEK), with a fresh random nonce per write and the secret's name as associated data,
//! so a ciphertext copied to another user's or provider's row does not decrypt.
//!
//! The KEK comes from `LLM_LOCAL_MASTER_KEY` (64 hex characters or base64 of 32 bytes)
//! or from `master.key` in the data directory, created with mode 0600 on first start.

use super::{KeyVault, VaultError, secret_name};
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

#[async_trait]
impl KeyVault for LocalVault {
    async fn put_key(
        &self,
        user_id: &str,
        provider: Provider,
        key: &ApiKey,
    ) -> Result<(), VaultError> {
        let name = secret_name("", user_id, provider);
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Backend(e.to_string()))?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key.expose().as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Backend("encryption failed".into()))?;
        let now = chrono::Utc::now().to_rfc3339();
        self.db
            .call(move |c| {
                c.execute(
                    "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET nonce = ?2, ciphertext = ?3, updated_at = ?4",
                    params![name, nonce.to_vec(), ciphertext, now],
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
    ) -> Result<Option<ApiKey>, VaultError> {
        let name = secret_name("", user_id, provider);
        let lookup = name.clone();
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .db
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT nonce, ciphertext FROM secrets WHERE name = ?1",
                    params![lookup],
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
                        aad: name.as_bytes(),
                    },
                )
                .map_err(|_| VaultError::Undecryptable(name.clone()))?,
        );
        let text =
            String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Undecryptable(name))?;
        Ok(Some(ApiKey::new(text)))
    }

    async fn delete_key(&self, user_id: &str, provider: Provider) -> Result<(), VaultError> {
        let name = secret_name("", user_id, provider);
        self.db
            .call(move |c| {
                c.execute("DELETE FROM secrets WHERE name = ?1", params![name])?;
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
        v.put_key("u1", Provider::Anthropic, &key).await.unwrap();
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
        v.put_key("u1", Provider::Anthropic, &key).await.unwrap();
        let other = LocalVault::new(db.clone(), &[8u8; 32]).unwrap();
        assert!(matches!(
            other.get_key("u1", Provider::Anthropic).await,
            Err(VaultError::Undecryptable(_))
        ));
        // Copy u1's ciphertext into u2's slot: the name is bound as associated data.
        db.call(|c| {
            c.execute(
                "INSERT INTO secrets SELECT 'users/u2/llm/anthropic', nonce, ciphertext, updated_at FROM secrets",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(v.get_key("u2", Provider::Anthropic).await.is_err());
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
