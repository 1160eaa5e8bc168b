//! The registry's first content: every model of the compiled-in catalog, enabled, with
//! ids derived from provider and model (so two processes seeding at once write the same
//! entries) and priorities that keep the catalog's behaviour: providers in their
//! built-in order, each provider's catalog default first among its models.

use crate::pricing::Catalog;
use crate::provider::Provider;
use crate::store::{ANY_OPERATION, EntryConfig, GLOBAL_SCOPE, LlmEntry};
use sha2::{Digest, Sha256};

/// The model every operation defaults to, as `Preferences::default` names it.
pub const SEED_DEFAULT: (Provider, &str) = (Provider::Anthropic, "claude-3-5-sonnet-20241022");

/// The id of the seed entry for a catalog model: stable across processes and releases.
pub fn seed_id(provider: Provider, model: &str) -> String {
    let digest = Sha256::digest(format!("{provider}/{model}").as_bytes());
    format!("llm-{}", &hex::encode(digest)[..16])
}

pub fn seed_entries(catalog: &Catalog) -> Vec<LlmEntry> {
    let now = chrono::Utc::now();
    let rank = |p: Provider| Provider::ALL.iter().position(|x| *x == p).unwrap_or(99);
    let mut per_provider = std::collections::HashMap::<Provider, i64>::new();
    catalog
        .models
        .iter()
        .map(|m| {
            let base = i64::try_from(rank(m.provider)).unwrap_or(99) * 100;
            let priority = if m.default {
                base + 10
            } else {
                let n = per_provider.entry(m.provider).or_insert(0);
                *n += 1;
                base + 10 + *n
            };
            LlmEntry {
                id: seed_id(m.provider, &m.id),
                name: format!("{}/{}", m.provider, m.id),
                provider: m.provider,
                model_name: m.id.clone(),
                description: m.display_name.clone(),
                config: EntryConfig::default(),
                auth_meta: None,
                enabled: true,
                default_for: if (m.provider, m.id.as_str()) == SEED_DEFAULT {
                    vec![ANY_OPERATION.to_owned()]
                } else {
                    Vec::new()
                },
                priority,
                scope: GLOBAL_SCOPE.to_owned(),
                capabilities: m.capabilities.clone(),
                price_override: None,
                created_at: now,
                updated_at: now,
                version: 1,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::catalog;

    #[test]
    fn seeds_cover_the_catalog_with_unique_ids_names_and_one_default() {
        let c = catalog().unwrap();
        let seeds = seed_entries(c);
        assert_eq!(seeds.len(), c.models.len());
        let ids: std::collections::HashSet<_> = seeds.iter().map(|e| &e.id).collect();
        let names: std::collections::HashSet<_> = seeds.iter().map(|e| &e.name).collect();
        assert_eq!(ids.len(), seeds.len());
        assert_eq!(names.len(), seeds.len());
        assert_eq!(seeds.iter().filter(|e| e.is_default()).count(), 1);
        // Each provider's catalog default comes first among its models.
        for p in Provider::ALL {
            let first = seeds
                .iter()
                .filter(|e| e.provider == p)
                .min_by_key(|e| e.priority)
                .unwrap();
            assert_eq!(
                Some(first.model_name.as_str()),
                c.default_model(p).map(|m| m.id.as_str())
            );
        }
        assert_eq!(
            seed_id(Provider::OpenAi, "gpt-4o"),
            seed_entries(c)
                .iter()
                .find(|e| e.model_name == "gpt-4o")
                .unwrap()
                .id
        );
    }
}
