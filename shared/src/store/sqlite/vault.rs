//! The rows the local vault keeps its sealed keys in: table `secrets`, one row per
//! (name, version), the legacy unversioned key under the empty version. Only bytes the
//! vault sealed reach this file.

use super::SqliteStore;
use crate::store::StoreError;
use crate::vault::local::{Sealed, SealedStore};
use crate::vault::{KeyVersion, VaultError};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        VaultError::Backend(e.to_string())
    }
}

/// The row's version column: the legacy key is the empty version.
fn version_column(version: Option<&KeyVersion>) -> String {
    version.map(|v| v.as_str().to_owned()).unwrap_or_default()
}

#[async_trait]
impl SealedStore for SqliteStore {
    async fn put_sealed(
        &self,
        name: &str,
        version: &KeyVersion,
        sealed: Sealed,
    ) -> Result<(), VaultError> {
        let now = chrono::Utc::now().to_rfc3339();
        let (name, version) = (name.to_owned(), version.as_str().to_owned());
        self.call(move |c| {
            // A version id is fresh per write; the upsert only makes a retried or
            // repaired write of the same version succeed.
            c.execute(
                "INSERT INTO secrets (name, version, nonce, ciphertext, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name, version) DO UPDATE SET nonce = ?3, ciphertext = ?4, updated_at = ?5",
                params![name, version, sealed.nonce, sealed.ciphertext, now],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn get_sealed(
        &self,
        name: &str,
        version: Option<&KeyVersion>,
    ) -> Result<Option<Sealed>, VaultError> {
        let (name, version) = (name.to_owned(), version_column(version));
        let row = self
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT nonce, ciphertext FROM secrets WHERE name = ?1 AND version = ?2",
                    params![name, version],
                    |r| {
                        Ok(Sealed {
                            nonce: r.get(0)?,
                            ciphertext: r.get(1)?,
                        })
                    },
                )
                .optional()?)
            })
            .await?;
        Ok(row)
    }

    async fn delete_sealed(
        &self,
        name: &str,
        version: Option<&KeyVersion>,
    ) -> Result<(), VaultError> {
        let (name, version) = (name.to_owned(), version_column(version));
        self.call(move |c| {
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
    use crate::provider::Provider;
    use crate::secret::ApiKey;
    use crate::store::conformance;
    use crate::vault::local::LocalVault;
    use crate::vault::{KeyVault, Remaining, VaultError};
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};

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
}
