//! The registry as routing reads it: every entry resolved to a priced model, sorted by
//! priority, with the lookups model choice needs. Built from the store's entries and the
//! catalog; immutable, shared behind an `Arc` by every request until the next change.

use crate::pricing::{Catalog, ModelLookup, ModelPrice};
use crate::provider::Provider;
use crate::store::{ANY_OPERATION, GLOBAL_SCOPE, LlmEntry, PriceOverride};
use std::sync::Arc;

/// The capability that marks an embedding model (catalog and registry entries).
pub const EMBEDDINGS_CAPABILITY: &str = "embeddings";

/// An entry with the model it routes to, priced: the override's rates when it has one,
/// else the catalog's.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub entry: LlmEntry,
    pub model: ModelPrice,
    /// Recorded on usage entries: the catalog version, or `registry:<id>@<version>` for
    /// an entry whose override priced the call.
    pub price_version: String,
}

impl Resolved {
    /// `None` for a model the catalog does not know and no override prices (validation
    /// refuses such entries; one stored before that rule is left out of routing).
    pub fn new(entry: LlmEntry, catalog: &Catalog) -> Option<Resolved> {
        let known = catalog.find(Some(entry.provider), &entry.model_name);
        let (model, price_version) = match (&entry.price_override, known) {
            (Some(p), base) => (
                priced(&entry, base, p),
                format!("registry:{}@{}", entry.id, entry.version),
            ),
            (None, Some(m)) => (m.clone(), catalog.version.clone()),
            (None, None) => return None,
        };
        Some(Resolved {
            entry,
            model,
            price_version,
        })
    }

    /// Whether a caller in `tenant` (none: no tenant) may route a chat to this entry.
    pub fn usable_by(&self, tenant: Option<&str>) -> bool {
        !self.embeds() && self.reachable_by(tenant)
    }

    fn reachable_by(&self, tenant: Option<&str>) -> bool {
        self.entry.enabled
            && (self.entry.scope == GLOBAL_SCOPE || Some(self.entry.scope.as_str()) == tenant)
    }

    /// An embedding model: `POST /v1/embeddings` routes only to these, and chat never
    /// does (an embedding model cannot answer a chat, so it must not be a default or a
    /// failover candidate).
    pub fn embeds(&self) -> bool {
        self.entry
            .capabilities
            .iter()
            .any(|c| c == EMBEDDINGS_CAPABILITY)
    }

    pub fn defaults(&self, operation: &str) -> bool {
        self.entry.default_for.iter().any(|o| o == operation)
    }
}

/// The override's rates on the catalog's model (or on a model the catalog lacks, with
/// limits from the entry's config).
fn priced(entry: &LlmEntry, base: Option<&ModelPrice>, p: &PriceOverride) -> ModelPrice {
    let max_output = entry.config.max_tokens.map_or(4096, u64::from);
    ModelPrice {
        provider: entry.provider,
        id: entry.model_name.clone(),
        display_name: base.map_or_else(|| entry.name.clone(), |m| m.display_name.clone()),
        input: p.input,
        output: p.output,
        cached_read: p.cached_read,
        cache_write: p.cache_write,
        // An override replaces every rate, the long-context tier included.
        long_context: None,
        context_window: base.map_or(128_000, |m| m.context_window),
        max_output_tokens: base.map_or(max_output, |m| m.max_output_tokens),
        capabilities: entry.capabilities.clone(),
        effective_date: entry.updated_at.format("%Y-%m-%d").to_string(),
        source: format!("registry:{}", entry.id),
        default: false,
    }
}

#[derive(Debug, Default)]
pub struct RegistryView {
    /// Every entry, enabled or not, of every scope: by priority, then name.
    entries: Vec<Arc<Resolved>>,
    /// True when the store held no entry yet and the view shows the seed instead.
    pub unseeded: bool,
}

impl RegistryView {
    pub fn build(entries: Vec<LlmEntry>, catalog: &Catalog, unseeded: bool) -> RegistryView {
        let mut resolved: Vec<Arc<Resolved>> = entries
            .into_iter()
            .filter_map(|e| Resolved::new(e, catalog))
            .map(Arc::new)
            .collect();
        resolved.sort_by(|a, b| {
            (a.entry.priority, &a.entry.name).cmp(&(b.entry.priority, &b.entry.name))
        });
        RegistryView {
            entries: resolved,
            unseeded,
        }
    }

    /// Every entry, by priority.
    pub fn all(&self) -> &[Arc<Resolved>] {
        &self.entries
    }

    /// The entries a caller may route to, by priority (the failover chain's order); for
    /// a tenant's member, the tenant's own entries first: they win over global ones.
    /// Embedding models are never among them (see [`Resolved::embeds`]).
    pub fn usable<'a, 't>(
        &'a self,
        tenant: Option<&'t str>,
    ) -> impl Iterator<Item = &'a Arc<Resolved>> + use<'a, 't> {
        self.reachable(tenant).filter(|r| !r.embeds())
    }

    /// The embedding models a caller may route to, in the same order as [`Self::usable`].
    pub fn embedders<'a, 't>(
        &'a self,
        tenant: Option<&'t str>,
    ) -> impl Iterator<Item = &'a Arc<Resolved>> + use<'a, 't> {
        self.reachable(tenant).filter(|r| r.embeds())
    }

    /// The first embedding model serving `model`, optionally of one provider.
    pub fn find_embedder(
        &self,
        tenant: Option<&str>,
        provider: Option<Provider>,
        model: &str,
    ) -> Option<&Arc<Resolved>> {
        self.embedders(tenant)
            .find(|r| r.entry.model_name == model && provider.is_none_or(|p| p == r.entry.provider))
    }

    /// Every enabled entry a caller may reach, chat or embeddings, tenant's first.
    fn reachable<'a, 't>(
        &'a self,
        tenant: Option<&'t str>,
    ) -> impl Iterator<Item = &'a Arc<Resolved>> + use<'a, 't> {
        let own = move |r: &&Arc<Resolved>| tenant.is_some_and(|t| r.entry.scope == t);
        let enabled = |r: &&Arc<Resolved>| r.entry.enabled;
        self.entries.iter().filter(enabled).filter(own).chain(
            self.entries
                .iter()
                .filter(|r| r.entry.enabled && r.entry.scope == GLOBAL_SCOPE),
        )
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Resolved>> {
        self.entries.iter().find(|r| r.entry.id == id)
    }

    /// The first usable entry serving `model`, optionally of one provider; a tenant's
    /// own entry wins over a global one for its members.
    pub fn find(
        &self,
        tenant: Option<&str>,
        provider: Option<Provider>,
        model: &str,
    ) -> Option<&Arc<Resolved>> {
        self.usable(tenant)
            .find(|r| r.entry.model_name == model && provider.is_none_or(|p| p == r.entry.provider))
    }

    /// The registry's default for an operation type: the entry named for it, else the
    /// one for every operation.
    pub fn default_for(&self, tenant: Option<&str>, operation: &str) -> Option<&Arc<Resolved>> {
        self.explicit_default(tenant, operation)
            .or_else(|| self.explicit_default(tenant, ANY_OPERATION))
    }

    /// The entry named the default for exactly this operation type.
    pub fn explicit_default(
        &self,
        tenant: Option<&str>,
        operation: &str,
    ) -> Option<&Arc<Resolved>> {
        // A tenant's own default wins over the global one (`usable` lists it first).
        self.usable(tenant).find(|r| r.defaults(operation))
    }

    /// A provider's model for an operation: the registry default when it is that
    /// provider's, else the provider's first entry by priority.
    pub fn provider_default(
        &self,
        tenant: Option<&str>,
        provider: Provider,
        operation: &str,
    ) -> Option<&Arc<Resolved>> {
        self.default_for(tenant, operation)
            .filter(|r| r.entry.provider == provider)
            .or_else(|| self.usable(tenant).find(|r| r.entry.provider == provider))
    }
}

/// What callers without a tenant may pick.
impl ModelLookup for RegistryView {
    fn find_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.find(None, provider, model).map(|r| &r.model)
    }

    fn find_any_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.find(None, provider, model)
            .or_else(|| self.find_embedder(None, provider, model))
            .map(|r| &r.model)
    }
}

/// What a tenant's members may pick: the global entries and the tenant's own.
pub struct Scoped<'a> {
    pub view: &'a RegistryView,
    pub tenant: Option<&'a str>,
}

impl ModelLookup for Scoped<'_> {
    fn find_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.view
            .find(self.tenant, provider, model)
            .map(|r| &r.model)
    }

    fn find_any_model(&self, provider: Option<Provider>, model: &str) -> Option<&ModelPrice> {
        self.view
            .find(self.tenant, provider, model)
            .or_else(|| self.view.find_embedder(self.tenant, provider, model))
            .map(|r| &r.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;
    use crate::registry::seed::seed_entries;

    fn view(edit: impl FnOnce(&mut Vec<LlmEntry>)) -> RegistryView {
        let c = catalog().unwrap();
        let mut entries = seed_entries(c);
        edit(&mut entries);
        RegistryView::build(entries, c, false)
    }

    #[test]
    fn embedding_models_are_seeded_but_never_chat_candidates() {
        let embedding = "text-embedding-3-small";
        // Even made the top-priority entry and every operation's default.
        let v = view(|entries| {
            for e in entries.iter_mut() {
                e.default_for.clear();
                if e.model_name == embedding {
                    e.priority = -1;
                    e.default_for = vec![ANY_OPERATION.to_owned()];
                }
            }
        });
        assert!(v.all().iter().any(|r| r.entry.model_name == embedding));
        assert!(v.usable(None).all(|r| !r.embeds()));
        assert!(v.find(None, None, embedding).is_none());
        assert!(v.default_for(None, "conversation").is_none());
        assert!(
            v.provider_default(None, Provider::OpenAi, "conversation")
                .is_some_and(|r| !r.embeds())
        );
        let r = v
            .find_embedder(None, Some(Provider::OpenAi), embedding)
            .unwrap();
        assert!(!r.usable_by(None), "an llmId cannot route a chat to it");
        assert!(v.find_embedder(None, None, "gpt-4o-mini").is_none());
        let mut embedders: Vec<String> = v
            .embedders(None)
            .map(|r| format!("{}/{}", r.entry.provider, r.entry.model_name))
            .collect();
        embedders.sort();
        assert_eq!(
            embedders,
            [
                "azure_openai/text-embedding-3-large",
                "azure_openai/text-embedding-3-small",
                "bedrock/amazon.titan-embed-text-v2:0",
                "openai/text-embedding-3-large",
                "openai/text-embedding-3-small",
                "openai/text-embedding-ada-002",
            ]
        );
    }

    #[test]
    fn seeded_view_keeps_the_catalog_defaults() {
        let v = view(|_| {});
        let id = |p| {
            v.provider_default(None, p, "conversation")
                .unwrap()
                .entry
                .model_name
                .clone()
        };
        assert_eq!(id(Provider::Google), "gemini-1.5-pro");
        assert_eq!(id(Provider::OpenAi), "gpt-4-turbo");
        assert_eq!(
            v.default_for(None, "query_generation")
                .unwrap()
                .entry
                .model_name,
            "claude-3-5-sonnet-20241022"
        );
        let r = v.find(None, Some(Provider::OpenAi), "gpt-4o").unwrap();
        assert_eq!(r.price_version, catalog().unwrap().version);
    }

    #[test]
    fn disabled_entries_are_not_usable_and_overrides_price_the_model() {
        let v = view(|e| {
            let m = e.iter_mut().find(|e| e.model_name == "gpt-4o").unwrap();
            m.enabled = false;
            let m = e
                .iter_mut()
                .find(|e| e.model_name == "gpt-4o-mini")
                .unwrap();
            m.price_override = Some(PriceOverride {
                input: "1".parse().unwrap(),
                output: "2".parse().unwrap(),
                cached_read: None,
                cache_write: None,
            });
        });
        assert!(v.find(None, Some(Provider::OpenAi), "gpt-4o").is_none());
        assert!(
            v.by_id(&crate::registry::seed::seed_id(Provider::OpenAi, "gpt-4o"))
                .is_some()
        );
        let mini = v.find(None, None, "gpt-4o-mini").unwrap();
        assert_eq!(mini.model.input, "1".parse().unwrap());
        assert!(mini.price_version.starts_with("registry:"));
    }

    #[test]
    fn an_unpriced_model_outside_the_catalog_is_left_out() {
        let v = view(|e| {
            let mut x = e[0].clone();
            x.id = "x".into();
            x.name = "x".into();
            x.model_name = "not-in-catalog".into();
            e.push(x);
        });
        assert!(v.by_id("x").is_none());
    }
}
