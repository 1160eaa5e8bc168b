//! The admin operations on the registry. Each reads the entries it changes, validates
//! the result, and commits every changed entry with its audit event as one conditional
//! write; a lost race is answered `409`, never applied over. After a commit the
//! process's view is replaced, so routing follows the change at once.

use super::RegistryCache;
use super::error::RegistryError;
use super::input::{
    Bulk, BulkAction, LlmPatch, MAX_BULK, NewLlm, SetDefault, check_entry, check_operation,
};
use crate::provider::Provider;
use crate::store::{ANY_OPERATION, AuditEvent, LlmEntry, RegistryWrite, StoreError};
use crate::vault::operator::OperatorKeys;
use serde::Serialize;

/// What admin operations need: the cache (its store and catalog) and the reference check.
pub struct Admin<'a> {
    pub cache: &'a RegistryCache,
    pub operator: &'a dyn OperatorKeys,
    /// The user id of the admin making the change.
    pub actor: &'a str,
}

/// An entry as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LlmView {
    #[serde(flatten)]
    pub entry: LlmEntry,
    pub is_default: bool,
}

impl From<LlmEntry> for LlmView {
    fn from(entry: LlmEntry) -> Self {
        LlmView {
            is_default: entry.is_default(),
            entry,
        }
    }
}

/// `GET /api/admin/llms` filters and page.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub search: Option<String>,
    pub provider: Option<Provider>,
    pub enabled: Option<bool>,
    pub scope: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Serialize)]
pub struct ListPage {
    pub llms: Vec<LlmView>,
    pub total: usize,
    /// The offset of the next page, when there is one (the HTTP layer signs it).
    #[serde(skip)]
    pub next_offset: Option<usize>,
}

/// One id's outcome in a bulk action.
#[derive(Debug, Serialize)]
pub struct BulkResult {
    pub id: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BulkError>,
}

#[derive(Debug, Serialize)]
pub struct BulkError {
    pub code: &'static str,
    pub message: String,
}

fn snapshot(e: &LlmEntry) -> Option<serde_json::Value> {
    serde_json::to_value(LlmView::from(e.clone())).ok()
}

fn conflict(e: StoreError) -> RegistryError {
    match e {
        StoreError::Conflict => RegistryError::Conflict(
            "the entry was changed by another request, or its name is taken; read it and try again"
                .into(),
        ),
        other => RegistryError::Store(other),
    }
}

impl Admin<'_> {
    fn event(
        &self,
        id: &str,
        action: &str,
        before: Option<&LlmEntry>,
        after: Option<&LlmEntry>,
    ) -> AuditEvent {
        AuditEvent::now(self.actor, format!("llm:{id}"), action)
            .with_change(before.and_then(snapshot), after.and_then(snapshot))
    }

    async fn entries(&self) -> Result<Vec<LlmEntry>, RegistryError> {
        Ok(self.cache.store().list_llms().await?)
    }

    async fn get_entry(&self, id: &str) -> Result<LlmEntry, RegistryError> {
        self.cache
            .store()
            .get_llm(id)
            .await?
            .ok_or(RegistryError::NotFound)
    }

    fn name_taken(entries: &[LlmEntry], name: &str, except: &str) -> Result<(), RegistryError> {
        if entries.iter().any(|e| e.name == name && e.id != except) {
            return Err(RegistryError::NameTaken(format!(
                "an entry named {name:?} exists already"
            )));
        }
        Ok(())
    }

    async fn commit(
        &self,
        writes: &[RegistryWrite],
        audit: &[AuditEvent],
    ) -> Result<(), RegistryError> {
        self.cache
            .store()
            .write_llms(writes, audit)
            .await
            .map_err(conflict)?;
        if let Err(e) = self.cache.refresh().await {
            // Committed: the next reload after the window shows it.
            tracing::warn!(error = %e, "registry view not refreshed after a change");
        }
        Ok(())
    }

    pub async fn list(&self, q: &ListQuery) -> Result<ListPage, RegistryError> {
        let view = self.cache.view().await;
        let needle = q.search.as_deref().map(str::to_lowercase);
        let mut hits: Vec<&LlmEntry> = view
            .all()
            .iter()
            .map(|r| &r.entry)
            .filter(|e| q.provider.is_none_or(|p| p == e.provider))
            .filter(|e| q.enabled.is_none_or(|v| v == e.enabled))
            .filter(|e| q.scope.as_ref().is_none_or(|s| *s == e.scope))
            .filter(|e| {
                needle.as_ref().is_none_or(|n| {
                    [&e.name, &e.model_name, &e.description]
                        .iter()
                        .any(|f| f.to_lowercase().contains(n.as_str()))
                })
            })
            .collect();
        hits.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        let total = hits.len();
        let llms: Vec<LlmView> = hits
            .into_iter()
            .skip(q.offset)
            .take(q.limit)
            .cloned()
            .map(LlmView::from)
            .collect();
        let next_offset = (q.offset + llms.len() < total).then_some(q.offset + llms.len());
        Ok(ListPage {
            llms,
            total,
            next_offset,
        })
    }

    pub async fn get(&self, id: &str) -> Result<LlmView, RegistryError> {
        Ok(self.get_entry(id).await?.into())
    }

    pub async fn create(&self, body: NewLlm) -> Result<LlmView, RegistryError> {
        let now = chrono::Utc::now();
        let catalog = self.cache.catalog();
        let capabilities = body.capabilities.unwrap_or_else(|| {
            catalog
                .find(Some(body.provider), &body.model_name)
                .map(|m| m.capabilities.clone())
                .unwrap_or_default()
        });
        let entry = LlmEntry {
            id: format!("llm-{}", uuid::Uuid::new_v4().simple()),
            name: body.name,
            provider: body.provider,
            model_name: body.model_name,
            description: body.description,
            config: body.config,
            auth_meta: body.auth_meta,
            enabled: body.enabled,
            default_for: Vec::new(),
            priority: body.priority,
            scope: body.scope,
            capabilities,
            price_override: body.price_override,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        check_entry(&entry, catalog, self.operator)?;
        Self::name_taken(&self.entries().await?, &entry.name, &entry.id)?;
        let audit = self.event(&entry.id, "llm_create", None, Some(&entry));
        let write = RegistryWrite::Put {
            entry: entry.clone(),
            previous: None,
        };
        self.commit(&[write], &[audit]).await?;
        Ok(entry.into())
    }

    /// The next version of `current`, stamped now.
    fn next(current: &LlmEntry, edit: impl FnOnce(&mut LlmEntry)) -> LlmEntry {
        let mut next = current.clone();
        edit(&mut next);
        next.version = current.version + 1;
        next.updated_at = chrono::Utc::now();
        next
    }

    pub async fn update(&self, id: &str, patch: LlmPatch) -> Result<LlmView, RegistryError> {
        let current = self.get_entry(id).await?;
        if let Some(v) = patch.version
            && v != current.version
        {
            return Err(RegistryError::Conflict(format!(
                "version {v} is stale; the current version is {}",
                current.version
            )));
        }
        let next = Self::next(&current, |e| {
            if let Some(v) = patch.name {
                e.name = v;
            }
            if let Some(v) = patch.provider {
                e.provider = v;
            }
            if let Some(v) = patch.model_name {
                e.model_name = v;
            }
            if let Some(v) = patch.description {
                e.description = v;
            }
            if let Some(v) = patch.config {
                e.config = v;
            }
            if let Some(v) = patch.auth_meta {
                e.auth_meta = v;
            }
            if let Some(v) = patch.enabled {
                e.enabled = v;
            }
            if let Some(v) = patch.priority {
                e.priority = v;
            }
            if let Some(v) = patch.scope {
                e.scope = v;
            }
            if let Some(v) = patch.capabilities {
                e.capabilities = v;
            }
            if let Some(v) = patch.price_override {
                e.price_override = v;
            }
        });
        check_entry(&next, self.cache.catalog(), self.operator)?;
        Self::name_taken(&self.entries().await?, &next.name, &next.id)?;
        let audit = self.event(id, "llm_update", Some(&current), Some(&next));
        self.put(current, next.clone(), audit).await?;
        Ok(next.into())
    }

    async fn put(
        &self,
        previous: LlmEntry,
        entry: LlmEntry,
        audit: AuditEvent,
    ) -> Result<(), RegistryError> {
        let write = RegistryWrite::Put {
            entry,
            previous: Some(previous),
        };
        self.commit(&[write], &[audit]).await
    }

    pub async fn toggle(&self, id: &str) -> Result<LlmView, RegistryError> {
        let current = self.get_entry(id).await?;
        self.set_enabled(current, None).await
    }

    /// Flips (`None`) or sets `enabled`; setting it to what it is changes nothing.
    async fn set_enabled(
        &self,
        current: LlmEntry,
        to: Option<bool>,
    ) -> Result<LlmView, RegistryError> {
        let enabled = to.unwrap_or(!current.enabled);
        if enabled == current.enabled {
            return Ok(current.into());
        }
        let next = Self::next(&current, |e| e.enabled = enabled);
        let action = if enabled { "llm_enable" } else { "llm_disable" };
        let audit = self.event(&current.id, action, Some(&current), Some(&next));
        self.put(current, next.clone(), audit).await?;
        Ok(next.into())
    }

    /// Makes the entry the default for an operation type in its scope, clearing the
    /// previous one in the same write.
    pub async fn set_default(&self, id: &str, body: SetDefault) -> Result<LlmView, RegistryError> {
        let op = body
            .operation_type
            .unwrap_or_else(|| ANY_OPERATION.to_owned());
        check_operation("operationType", &op)?;
        let current = self.get_entry(id).await?;
        if !current.enabled {
            return Err(RegistryError::invalid(
                "id",
                "a disabled entry cannot be a default: enable it first",
            ));
        }
        if current.default_for.contains(&op) {
            return Ok(current.into());
        }
        let next = Self::next(&current, |e| e.default_for.push(op.clone()));
        let mut writes = Vec::new();
        let mut audit = vec![self.event(id, "llm_set_default", Some(&current), Some(&next))];
        for holder in self.entries().await? {
            if holder.id != current.id
                && holder.scope == current.scope
                && holder.default_for.contains(&op)
            {
                let cleared = Self::next(&holder, |e| e.default_for.retain(|o| *o != op));
                audit.push(self.event(
                    &holder.id,
                    "llm_clear_default",
                    Some(&holder),
                    Some(&cleared),
                ));
                writes.push(RegistryWrite::Put {
                    entry: cleared,
                    previous: Some(holder),
                });
            }
        }
        writes.push(RegistryWrite::Put {
            entry: next.clone(),
            previous: Some(current),
        });
        self.commit(&writes, &audit).await?;
        Ok(next.into())
    }

    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let current = self.get_entry(id).await?;
        if self.entries().await?.len() <= 1 {
            // An empty registry reads as never seeded (see `cache`): keep one entry.
            return Err(RegistryError::Conflict(
                "the registry keeps at least one entry: disable it instead".into(),
            ));
        }
        let audit = self.event(id, "llm_delete", Some(&current), None);
        self.commit(&[RegistryWrite::Delete { previous: current }], &[audit])
            .await
    }

    /// Applies the action to each id on its own: one failing does not stop the others.
    pub async fn bulk(&self, body: Bulk) -> Result<Vec<BulkResult>, RegistryError> {
        if body.ids.is_empty() || body.ids.len() > MAX_BULK {
            return Err(RegistryError::invalid(
                "ids",
                format!("give 1 to {MAX_BULK} ids"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if !body.ids.iter().all(|id| seen.insert(id)) {
            return Err(RegistryError::invalid("ids", "ids must be unique"));
        }
        let mut results = Vec::with_capacity(body.ids.len());
        for id in body.ids {
            let outcome = match body.action {
                BulkAction::Delete => self.delete(&id).await,
                BulkAction::Enable | BulkAction::Disable => match self.get_entry(&id).await {
                    Ok(current) => self
                        .set_enabled(current, Some(body.action == BulkAction::Enable))
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                },
            };
            results.push(match outcome {
                Ok(()) => BulkResult {
                    id,
                    ok: true,
                    error: None,
                },
                Err(e) => BulkResult {
                    id,
                    ok: false,
                    error: Some(bulk_error(e)),
                },
            });
        }
        Ok(results)
    }
}

fn bulk_error(e: RegistryError) -> BulkError {
    let (code, message) = match &e {
        RegistryError::NotFound => ("not_found", e.to_string()),
        RegistryError::Conflict(m) => ("version_conflict", m.clone()),
        RegistryError::NameTaken(m) => ("name_taken", m.clone()),
        RegistryError::Invalid { .. } => ("invalid_request", e.to_string()),
        RegistryError::Store(inner) => {
            tracing::error!(error = %inner, "bulk registry action failed");
            (
                "internal_error",
                "the change could not be written".to_owned(),
            )
        }
    };
    BulkError { code, message }
}
