//! The local key vault: each key is sealed with AES-256-GCM under a key-encryption key
//! (KEK), with a fresh random nonce per write and the secret's name (and version) as
//! associated data, so a ciphertext copied to another user's, provider's or version's
//! row does not decrypt. One row per (user, provider, version).
//!
//! The KEK comes from `LLM_LOCAL_MASTER_KEY` (64 hex characters or base64 of 32 bytes)
//! or from `master.key` in the data directory, created with mode 0600 on first start.
//!
//! The vault seals and opens; where the sealed bytes are kept is a [`SealedStore`] (the
//! embedded database implements it), so the store never sees a key and the vault never
//! sees SQL.

use super::{KeyVault, KeyVersion, Remaining, VaultError, secret_name};
use crate::provider::Provider;
use crate::secret::ApiKey;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

pub const MASTER_KEY_ENV: &str = "LLM_LOCAL_MASTER_KEY";
const MASTER_KEY_FILE: &str = "master.key";

/// One sealed version of a key: the nonce and the AES-GCM ciphertext (tag included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Where the local vault keeps sealed keys, one slot per (secret name, version). The
/// version `None` is the legacy unversioned slot of records written before versions.
#[async_trait]
pub trait SealedStore: Send + Sync {
    /// Stores `sealed` as `version` of `name`, replacing what that version held (a
    /// retried or repaired write of the same version).
    async fn put_sealed(
        &self,
        name: &str,
        version: &KeyVersion,
        sealed: Sealed,
    ) -> Result<(), VaultError>;
    async fn get_sealed(
        &self,
        name: &str,
        version: Option<&KeyVersion>,
    ) -> Result<Option<Sealed>, VaultError>;
    /// Removes that one slot; removing one that is not there succeeds.
    async fn delete_sealed(
        &self,
        name: &str,
        version: Option<&KeyVersion>,
    ) -> Result<(), VaultError>;
}

pub struct LocalVault {
    sealed: Arc<dyn SealedStore>,
    cipher: Aes256Gcm,
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
    pub fn new(
        sealed: impl SealedStore + 'static,
        master_key: &[u8; 32],
    ) -> Result<Self, VaultError> {
        let cipher = Aes256Gcm::new_from_slice(master_key)
            .map_err(|_| VaultError::Config("master key must be 32 bytes".into()))?;
        Ok(LocalVault {
            sealed: Arc::new(sealed),
            cipher,
        })
    }
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
        let sealed = Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        };
        self.sealed.put_sealed(&name, version, sealed).await
    }

    async fn get_key(
        &self,
        user_id: &str,
        provider: Provider,
        version: Option<&KeyVersion>,
    ) -> Result<Option<ApiKey>, VaultError> {
        let name = secret_name("", user_id, provider);
        let aad = associated_data(&name, version);
        let Some(Sealed { nonce, ciphertext }) = self.sealed.get_sealed(&name, version).await?
        else {
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
        self.sealed.delete_sealed(&name, version).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
