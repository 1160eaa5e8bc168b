//! Settings writes that span two stores: keys go to the vault, their metadata to the
//! settings record, and the conditional settings write (on `version`) is the commit
//! point. Rotation is atomic because keys are never overwritten in place:
//!
//! - A `PUT` first writes each new key as a *new vault version* with a fresh id, then
//!   commits a record whose `KeyMeta` names those versions. Readers (the generate key
//!   cache, the connection test) fetch exactly the version the record they read names,
//!   so the key used always matches the hint `GET` shows.
//! - If the commit fails (lost race or error), the request deletes only the versions it
//!   created, never one someone else wrote, so a failed write leaves keys and preferences
//!   as they were. If it succeeds, it deletes the versions its commit replaced: the
//!   record it replaced named them, and no later record can name them again.
//! - `DELETE` commits the record without the key, then deletes the version it replaced.
//! - An error other than a lost race may hide a commit that landed (a timeout after the
//!   store applied it); since version ids are unique, re-reading the record tells, and a
//!   landed commit is treated as one, so its versions are never deleted under it.
//!
//! Retries: a write that carries `version` answers `409` when that version is stale, up
//! front or at the commit. A write without `version` (and every `DELETE`) that loses the
//! race re-reads the record and applies itself again on it (reusing the key versions it
//! already wrote), up to [`ATTEMPTS`] times; only then does it answer `409`.
//!
//! On Secrets Manager all versions of a key share one secret, and removing the last key
//! deletes the secret, but only when no version in it still carries a label of ours (a
//! write in flight). Residual window: a `PUT` that writes its version after that check
//! and before the `DeleteSecret` call loses it. The `PUT` therefore reads its versions
//! back after committing and writes a missing one again (under the same version id) if
//! the record still names it; what remains is a `PUT` that writes, commits and reads back
//! entirely within the one round trip between the check and the `DeleteSecret` of a
//! concurrent `DELETE` of that provider's last key. The record then names a version that
//! is gone: generation finds no key for that provider (it fails closed, never uses
//! another key) until the key is saved again. The embedded vault has one row per version
//! and no such window.

use super::error::SettingsError;
use super::{KeyMeta, SettingsRecord, SettingsUpdate};
use crate::pricing::ModelLookup;
use crate::provider::Provider;
use crate::secret::ApiKey;
use crate::store::{AuditEvent, SettingsStore, StoreError};
use crate::vault::{KeyChanges, KeyVault, KeyVersion, Remaining};

/// How often a write without `version` applies itself before answering `409`.
pub const ATTEMPTS: usize = 5;

pub async fn read(
    settings: &dyn SettingsStore,
    user_id: &str,
) -> Result<SettingsRecord, SettingsError> {
    Ok(settings.settings_or_default(user_id).await?)
}

/// One key change of a request: the new key and the version it was written as, or `None`
/// for a removal.
type Edit = (Provider, Option<(KeyVersion, ApiKey)>);

/// Validates the whole update before writing anything, then applies it atomically.
/// Every committed key change is announced on `changes`.
pub async fn update(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    changes: &KeyChanges,
    catalog: &dyn ModelLookup,
    actor: &str,
    user_id: &str,
    update: SettingsUpdate,
) -> Result<SettingsRecord, SettingsError> {
    let mut keys: Vec<(Provider, Option<ApiKey>)> = Vec::new();
    for (provider, key) in update.api_keys.unwrap_or_default() {
        let key = key.map(|k| k.0);
        if let Some(k) = &key {
            provider
                .check_key_shape(k.expose())
                .map_err(|msg| SettingsError::invalid(format!("apiKeys.{provider}"), msg))?;
        }
        keys.push((provider, key));
    }
    let expected = update.version;
    let patch = update.preferences;

    // A stale version or an invalid preference is refused before any key is written.
    let mut current = read(settings, user_id).await?;
    check_version(expected, &current)?;
    let mut preferences = match &patch {
        Some(p) => Some(p.clone().apply(&current.preferences, catalog)?),
        None => None,
    };

    let mut edits: Vec<Edit> = Vec::with_capacity(keys.len());
    for (provider, key) in keys {
        match key {
            Some(k) => {
                let version = KeyVersion::fresh();
                let written = vault.put_key(user_id, provider, &version, &k).await;
                // Remembered before the result is looked at: a failed write may still
                // have stored something, and deleting a version is idempotent.
                edits.push((provider, Some((version, k))));
                if let Err(e) = written {
                    discard(settings, vault, user_id, &edits).await;
                    return Err(e.into());
                }
            }
            None => edits.push((provider, None)),
        }
    }

    let mut attempt = 1;
    loop {
        let mut next = next_record(&current, preferences.take(), &edits);
        if let Some(p) = &patch {
            let mut saved = current.saved();
            saved.extend(p.given().into_iter().map(str::to_owned));
            next.saved_fields = Some(saved);
        }
        let audit = audit_events(actor, user_id, &current, &next, &edits);
        match settings
            .put_settings(user_id, &next, current.version, &audit)
            .await
        {
            Ok(()) => {
                after_commit(settings, vault, changes, user_id, &current, &next, &edits).await;
                return Ok(next);
            }
            Err(StoreError::Conflict) if expected.is_none() && attempt < ATTEMPTS => {
                attempt += 1;
                let fresh = match read(settings, user_id).await {
                    Ok(r) => r,
                    Err(e) => {
                        discard(settings, vault, user_id, &edits).await;
                        return Err(e);
                    }
                };
                current = fresh;
                preferences = match &patch {
                    Some(p) => match p.clone().apply(&current.preferences, catalog) {
                        Ok(prefs) => Some(prefs),
                        Err(e) => {
                            discard(settings, vault, user_id, &edits).await;
                            return Err(e);
                        }
                    },
                    None => None,
                };
            }
            Err(StoreError::Conflict) => {
                discard(settings, vault, user_id, &edits).await;
                return Err(match expected {
                    Some(v) => stale(v),
                    None => StoreError::Conflict.into(),
                });
            }
            Err(e) => {
                if landed(settings, user_id, &next).await {
                    after_commit(settings, vault, changes, user_id, &current, &next, &edits).await;
                    return Ok(next);
                }
                discard(settings, vault, user_id, &edits).await;
                return Err(e.into());
            }
        }
    }
}

/// The audit events of a commit from `current` to `next`: one for changed preferences
/// (before and after, which hold no secret), one per key set or removed, naming the
/// provider and the hint only.
fn audit_events(
    actor: &str,
    user_id: &str,
    current: &SettingsRecord,
    next: &SettingsRecord,
    edits: &[Edit],
) -> Vec<AuditEvent> {
    let target = AuditEvent::owner_target(user_id);
    let mut events = Vec::new();
    if current.preferences != next.preferences {
        events.push(
            AuditEvent::now(actor, target.clone(), "settings_update").with_change(
                serde_json::to_value(&current.preferences).ok(),
                serde_json::to_value(&next.preferences).ok(),
            ),
        );
    }
    let hint = |r: &SettingsRecord, p: &Provider| {
        r.keys
            .get(p)
            .map(|m| serde_json::json!({"provider": p, "hint": m.hint}))
    };
    for (provider, edit) in edits {
        let action = if edit.is_some() {
            "key_set"
        } else if current.keys.contains_key(provider) {
            "key_delete"
        } else {
            continue; // removing a key that was never saved changes nothing
        };
        events.push(
            AuditEvent::now(actor, target.clone(), action)
                .with_change(hint(current, provider), hint(next, provider)),
        );
    }
    events
}

fn stale(expected: u64) -> SettingsError {
    SettingsError::Conflict(format!(
        "version {expected} is stale; settings were changed by another request"
    ))
}

fn check_version(expected: Option<u64>, current: &SettingsRecord) -> Result<(), SettingsError> {
    match expected {
        Some(v) if v != current.version => Err(SettingsError::Conflict(format!(
            "version {v} is stale; the current version is {}",
            current.version
        ))),
        _ => Ok(()),
    }
}

/// `current` with the edits and preferences applied, one version later.
fn next_record(
    current: &SettingsRecord,
    preferences: Option<super::Preferences>,
    edits: &[Edit],
) -> SettingsRecord {
    let now = chrono::Utc::now();
    let mut next = current.clone();
    if let Some(p) = preferences {
        next.preferences = p;
    }
    for (provider, edit) in edits {
        match edit {
            Some((version, key)) => {
                next.keys.insert(
                    *provider,
                    KeyMeta {
                        hint: key.hint(),
                        updated_at: now,
                        version: Some(version.clone()),
                    },
                );
            }
            None => {
                next.keys.remove(provider);
            }
        }
    }
    next.version = current.version + 1;
    next.updated_at = Some(now);
    next
}

/// Whether the record now stored is `next` after all (the failed write landed). Its
/// version number and its timestamp, taken when it was built, single it out.
async fn landed(settings: &dyn SettingsStore, user_id: &str, next: &SettingsRecord) -> bool {
    match settings.get_settings(user_id).await {
        Ok(Some(stored)) => {
            stored.version == next.version
                && stored.updated_at == next.updated_at
                && stored.keys == next.keys
        }
        _ => false,
    }
}

fn names(record: &SettingsRecord, provider: Provider, version: &KeyVersion) -> bool {
    record
        .keys
        .get(&provider)
        .is_some_and(|m| m.version.as_ref() == Some(version))
}

fn remaining(record: &SettingsRecord, provider: Provider) -> Remaining {
    if record.keys.contains_key(&provider) {
        Remaining::Named
    } else {
        Remaining::Nothing
    }
}

/// After a failed commit: deletes the versions this request wrote (no record names
/// them). What the stored record names for each provider decides whether a backend may
/// drop the whole container; when that cannot be read, it may not.
async fn discard(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    user_id: &str,
    edits: &[Edit],
) {
    if edits.iter().all(|(_, e)| e.is_none()) {
        return;
    }
    let stored = settings
        .get_settings(user_id)
        .await
        .ok()
        .map(Option::unwrap_or_default);
    for (provider, edit) in edits {
        let Some((version, _)) = edit else { continue };
        let left = stored
            .as_ref()
            .map_or(Remaining::Named, |r| remaining(r, *provider));
        if let Err(e) = vault
            .delete_key(user_id, *provider, Some(version), left)
            .await
        {
            // Unreferenced: no record names this version, so it is never read; it only
            // takes space until removed by hand.
            tracing::error!(user_id, provider = %provider, error = %e, "an uncommitted key version could not be deleted");
        }
    }
}

/// After a commit: deletes what it replaced, makes sure what it names is stored, and
/// tells this process's key caches.
async fn after_commit(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    changes: &KeyChanges,
    user_id: &str,
    replaced: &SettingsRecord,
    committed: &SettingsRecord,
    edits: &[Edit],
) {
    for (provider, _) in edits {
        if let Some(old) = replaced.keys.get(provider) {
            let left = remaining(committed, *provider);
            if let Err(e) = vault
                .delete_key(user_id, *provider, old.version.as_ref(), left)
                .await
            {
                tracing::error!(user_id, provider = %provider, error = %e, "a replaced key version could not be deleted");
            }
        }
    }
    for (provider, edit) in edits {
        if let Some((version, key)) = edit {
            ensure_stored(settings, vault, user_id, *provider, version, key).await;
        }
    }
    for (provider, _) in edits {
        changes.notify(user_id, *provider);
    }
}

/// Reads a committed version back; if a concurrent removal of the provider's last key
/// took it (Secrets Manager: the whole secret was deleted), writes it again under the
/// same id, then takes it out once more if the record has moved on meanwhile.
async fn ensure_stored(
    settings: &dyn SettingsStore,
    vault: &dyn KeyVault,
    user_id: &str,
    provider: Provider,
    version: &KeyVersion,
    key: &ApiKey,
) {
    match vault.get_key(user_id, provider, Some(version)).await {
        Ok(Some(_)) => return,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(user_id, provider = %provider, error = %e, "a committed key version could not be read back");
            return;
        }
    }
    tracing::warn!(user_id, provider = %provider, "a committed key version was removed concurrently; writing it again");
    if let Err(e) = vault.put_key(user_id, provider, version, key).await {
        tracing::error!(user_id, provider = %provider, error = %e, "a committed key version could not be written again");
        return;
    }
    match settings.get_settings(user_id).await {
        Ok(stored) => {
            let stored = stored.unwrap_or_default();
            if !names(&stored, provider, version) {
                let left = remaining(&stored, provider);
                if let Err(e) = vault
                    .delete_key(user_id, provider, Some(version), left)
                    .await
                {
                    tracing::error!(user_id, provider = %provider, error = %e, "a key version no record names could not be deleted");
                }
            }
        }
        Err(e) => {
            tracing::error!(user_id, provider = %provider, error = %e, "settings could not be read after writing a key version again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;
    use crate::store::StoreError;
    use crate::store::sqlite::SqliteStore;
    use crate::vault::local::LocalVault;
    use async_trait::async_trait;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    const OK: u8 = 0;
    const FAIL: u8 = 1;
    const CONFLICT: u8 = 2;
    /// Writes the record, then reports a failure (a timeout after the store applied it).
    const LAND_THEN_FAIL: u8 = 3;

    /// A settings store whose writes can be made to fail on demand.
    struct Flaky {
        inner: SqliteStore,
        mode: AtomicU8,
    }

    #[async_trait]
    impl SettingsStore for Flaky {
        async fn get_settings(&self, u: &str) -> Result<Option<SettingsRecord>, StoreError> {
            self.inner.get_settings(u).await
        }
        async fn put_settings(
            &self,
            u: &str,
            r: &SettingsRecord,
            v: u64,
            a: &[AuditEvent],
        ) -> Result<(), StoreError> {
            match self.mode.load(Ordering::SeqCst) {
                FAIL => Err(StoreError::Backend("injected".into())),
                CONFLICT => Err(StoreError::Conflict),
                LAND_THEN_FAIL => {
                    self.inner.put_settings(u, r, v, a).await?;
                    Err(StoreError::Backend("injected after the write".into()))
                }
                _ => self.inner.put_settings(u, r, v, a).await,
            }
        }
    }

    fn flaky(db: &SqliteStore) -> Flaky {
        Flaky {
            inner: db.clone(),
            mode: AtomicU8::new(OK),
        }
    }

    fn key(c: char) -> String {
        format!("sk-ant-api03-{}", c.to_string().repeat(40))
    }

    fn body(json: &str) -> SettingsUpdate {
        serde_json::from_str(json).unwrap()
    }

    fn put_key_body(c: char) -> SettingsUpdate {
        body(&format!(r#"{{"apiKeys": {{"anthropic": "{}"}}}}"#, key(c)))
    }

    /// The key the stored record names for `provider`, read as generate reads it.
    async fn saved(db: &SqliteStore, vault: &LocalVault, provider: Provider) -> Option<String> {
        let rec = read(db, "u").await.unwrap();
        let meta = rec.keys.get(&provider)?;
        let key = vault
            .get_key("u", provider, meta.version.as_ref())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the record names a {provider} key the vault lacks"));
        Some(key.expose().to_owned())
    }

    async fn secret_rows(db: &SqliteStore) -> i64 {
        db.call(|c| Ok(c.query_row("SELECT COUNT(*) FROM secrets", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// Every key the record names is stored and matches its hint; nothing else is stored.
    async fn assert_consistent(db: &SqliteStore, vault: &LocalVault) {
        let rec = read(db, "u").await.unwrap();
        for (provider, meta) in &rec.keys {
            let k = saved(db, vault, *provider).await.unwrap();
            assert_eq!(ApiKey::new(k).hint(), meta.hint, "{provider}");
        }
        assert_eq!(
            secret_rows(db).await,
            i64::try_from(rec.keys.len()).unwrap(),
            "a stored key the settings do not name"
        );
    }

    fn setup() -> (SqliteStore, LocalVault) {
        let db = SqliteStore::open_in_memory().unwrap();
        let vault = LocalVault::new(db.clone(), &[1; 32]).unwrap();
        (db, vault)
    }

    #[tokio::test]
    async fn failed_settings_write_restores_every_key() {
        let (db, vault) = setup();
        let store = flaky(&db);
        let c = catalog().unwrap();
        let changes = KeyChanges::default();
        let openai = format!("sk-proj-{}", "o".repeat(40));
        update(&store, &vault, &changes, c, "u", "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}", "openai": "{openai}"}}, "preferences": {{"maxTokens": 10}}}}"#,
                key('a')
            )),
        )
        .await
        .unwrap();

        for mode in [FAIL, CONFLICT] {
            store.mode.store(mode, Ordering::SeqCst);
            let failed = update(&store, &vault, &changes, c, "u", "u",
                body(&format!(
                    r#"{{"apiKeys": {{"anthropic": "{}", "openai": null, "google": "AIza{}"}}, "preferences": {{"maxTokens": 20}}}}"#,
                    key('b'),
                    "g".repeat(35)
                )),
            )
            .await;
            match mode {
                FAIL => assert!(matches!(failed, Err(SettingsError::Internal(_)))),
                _ => assert!(matches!(failed, Err(SettingsError::Conflict(_)))),
            }
            assert_eq!(
                saved(&db, &vault, Provider::Anthropic).await,
                Some(key('a'))
            );
            assert_eq!(
                saved(&db, &vault, Provider::OpenAi).await,
                Some(openai.clone())
            );
            assert_eq!(saved(&db, &vault, Provider::Google).await, None);
            let rec = read(&store, "u").await.unwrap();
            assert_eq!(rec.preferences.max_tokens, 10);
            assert_eq!(rec.version, 1);
            // The versions the failed write created are gone; nothing else was touched.
            assert_consistent(&db, &vault).await;
        }
    }

    #[tokio::test]
    async fn a_write_that_landed_despite_an_error_keeps_its_keys() {
        let (db, vault) = setup();
        let store = flaky(&db);
        let c = catalog().unwrap();
        let changes = KeyChanges::default();
        update(&store, &vault, &changes, c, "u", "u", put_key_body('a'))
            .await
            .unwrap();
        store.mode.store(LAND_THEN_FAIL, Ordering::SeqCst);
        let rec = update(&store, &vault, &changes, c, "u", "u", put_key_body('b'))
            .await
            .unwrap();
        assert_eq!(rec.version, 2);
        assert_eq!(
            saved(&db, &vault, Provider::Anthropic).await,
            Some(key('b'))
        );
        assert_consistent(&db, &vault).await;
    }

    #[tokio::test]
    async fn invalid_input_writes_nothing() {
        let (db, vault) = setup();
        let c = catalog().unwrap();
        let changes = KeyChanges::default();
        // A valid key next to an invalid preference: neither is saved.
        let r = update(
            &db,
            &vault,
            &changes,
            c,
            "u",
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}"}}, "preferences": {{"maxTokens": 0}}}}"#,
                key('a')
            )),
        )
        .await;
        assert!(matches!(r, Err(SettingsError::InvalidField { .. })));
        assert_eq!(secret_rows(&db).await, 0);
        // A valid key next to a malformed one: neither is saved.
        let r = update(
            &db,
            &vault,
            &changes,
            c,
            "u",
            "u",
            body(&format!(
                r#"{{"apiKeys": {{"anthropic": "{}", "openai": "nope"}}}}"#,
                key('a')
            )),
        )
        .await;
        match r {
            Err(SettingsError::InvalidField { field, .. }) => assert_eq!(field, "apiKeys.openai"),
            other => panic!("{:?}", other.err()),
        }
        assert_eq!(secret_rows(&db).await, 0);
        assert_eq!(read(&db, "u").await.unwrap().version, 0);
    }

    #[tokio::test]
    async fn stale_version_is_a_conflict() {
        let (db, vault) = setup();
        let c = catalog().unwrap();
        let changes = KeyChanges::default();
        update(
            &db,
            &vault,
            &changes,
            c,
            "u",
            "u",
            body(r#"{"version": 0}"#),
        )
        .await
        .unwrap();
        let r = update(
            &db,
            &vault,
            &changes,
            c,
            "u",
            "u",
            body(r#"{"version": 0}"#),
        )
        .await;
        assert!(matches!(r, Err(SettingsError::Conflict(_))));
        update(
            &db,
            &vault,
            &changes,
            c,
            "u",
            "u",
            body(r#"{"version": 1}"#),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_write_without_version_that_keeps_losing_is_a_conflict_and_leaves_nothing() {
        let (db, vault) = setup();
        let store = flaky(&db);
        let c = catalog().unwrap();
        let changes = KeyChanges::default();
        update(&store, &vault, &changes, c, "u", "u", put_key_body('a'))
            .await
            .unwrap();
        store.mode.store(CONFLICT, Ordering::SeqCst);
        let r = update(&store, &vault, &changes, c, "u", "u", put_key_body('b')).await;
        assert!(matches!(r, Err(SettingsError::Conflict(_))));
        assert_eq!(
            saved(&db, &vault, Provider::Anthropic).await,
            Some(key('a'))
        );
        assert_consistent(&db, &vault).await;
    }

    /// Concurrent writers of one user's key (different keys, deletions), as many
    /// interleavings as the scheduler gives: afterwards the record names a stored key
    /// matching its hint, and the vault holds nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_and_deletes_keep_vault_and_record_in_step() {
        let (db, vault) = setup();
        let db = Arc::new(db);
        let vault = Arc::new(vault);
        let changes = KeyChanges::default();
        for round in 0..40 {
            let mut tasks = Vec::new();
            for (i, c) in ['a', 'b', 'c'].into_iter().enumerate() {
                let (db, vault, changes) = (db.clone(), vault.clone(), changes.clone());
                let delete = round % 2 == 1 && i == 2;
                tasks.push(tokio::spawn(async move {
                    let b = if delete {
                        body(r#"{"apiKeys": {"anthropic": null}}"#)
                    } else {
                        put_key_body(c)
                    };
                    update(
                        db.as_ref(),
                        vault.as_ref(),
                        &changes,
                        catalog().unwrap(),
                        "u",
                        "u",
                        b,
                    )
                    .await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            assert_consistent(&db, &vault).await;
        }
    }
}
