//! A tenant member's effective preferences: each field the member saved, else the
//! tenant's, else the default.

use super::{Preferences, SettingsRecord};
use serde_json::Value;

/// Fields a member never inherits: a tenant's budget caps the tenant's total (enforced
/// on its own, together with the member's), it is not each member's own budget.
const OWN_ONLY: [&str; 3] = ["monthlyBudgetUsd", "budgetAction", "alertThresholds"];

/// The member's preferences with every field they have not saved taken from the tenant
/// (when the tenant saved it).
pub fn effective(member: &SettingsRecord, tenant: &SettingsRecord) -> Preferences {
    let mine = member.saved();
    let theirs = tenant.saved();
    let (Ok(Value::Object(mut merged)), Ok(Value::Object(from_tenant))) = (
        serde_json::to_value(&member.preferences),
        serde_json::to_value(&tenant.preferences),
    ) else {
        return member.preferences.clone();
    };
    for (field, value) in from_tenant {
        if !mine.contains(&field) && theirs.contains(&field) && !OWN_ONLY.contains(&field.as_str())
        {
            merged.insert(field, value);
        }
    }
    serde_json::from_value(Value::Object(merged)).unwrap_or_else(|e| {
        // Both halves are valid preferences, so this cannot fail; if it ever did, the
        // member's own settings are the safe answer.
        tracing::error!(error = %e, "merged tenant preferences did not parse");
        member.preferences.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;
    use crate::provider::Provider;
    use crate::settings::PreferencesPatch;

    fn saved(prefs: Preferences, fields: &[&str]) -> SettingsRecord {
        SettingsRecord {
            preferences: prefs,
            saved_fields: Some(fields.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn own_fields_then_the_tenants_then_defaults() {
        let member = saved(
            Preferences {
                max_tokens: 300,
                ..Default::default()
            },
            &["maxTokens"],
        );
        let tenant = saved(
            Preferences {
                max_tokens: 900,
                default_provider: Provider::OpenAi,
                fallback_providers: vec![Provider::Google],
                monthly_budget_usd: Some(NanoUsd(5_000_000_000)),
                ..Default::default()
            },
            &[
                "maxTokens",
                "defaultProvider",
                "fallbackProviders",
                "monthlyBudgetUsd",
            ],
        );
        let p = effective(&member, &tenant);
        assert_eq!(p.max_tokens, 300, "the member's own field wins");
        assert_eq!(p.default_provider, Provider::OpenAi, "inherited");
        assert_eq!(p.fallback_providers, vec![Provider::Google]);
        assert_eq!(
            p.monthly_budget_usd, None,
            "the tenant's budget is not the member's"
        );
        assert_eq!(p.temperature, Preferences::default().temperature);
    }

    #[test]
    fn a_field_the_tenant_never_saved_stays_the_default() {
        let tenant = saved(
            Preferences {
                temperature: 1.5,
                ..Default::default()
            },
            &[],
        );
        let p = effective(&SettingsRecord::default(), &tenant);
        assert_eq!(p, Preferences::default());
    }

    #[test]
    fn a_legacy_record_counts_what_differs_from_the_defaults_as_saved() {
        let member = SettingsRecord {
            preferences: Preferences {
                auto_failover: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let tenant = saved(
            Preferences {
                auto_failover: true,
                max_tokens: 64,
                ..Default::default()
            },
            &["autoFailover", "maxTokens"],
        );
        let p = effective(&member, &tenant);
        assert!(!p.auto_failover, "saved before saved_fields existed");
        assert_eq!(p.max_tokens, 64);
    }

    #[test]
    fn every_patch_field_names_a_preference() {
        let patch: PreferencesPatch = serde_json::from_value(serde_json::json!({
            "defaultProvider": "openai", "queryModel": "gpt-4o", "detectionModel": "gpt-4o",
            "models": {}, "fallbackProviders": [], "autoFailover": true, "maxTokens": 1,
            "temperature": 0.0, "enableCaching": true, "trackUsage": true,
            "monthlyBudgetUsd": null, "budgetAction": "block", "alertThresholds": [],
            "azureResource": null, "azureDeployments": {}
        }))
        .unwrap();
        let Value::Object(fields) = serde_json::to_value(Preferences::default()).unwrap() else {
            panic!("preferences serialise as an object");
        };
        let given = patch.given();
        assert_eq!(given.len(), fields.len(), "every preference can be patched");
        for g in given {
            assert!(fields.contains_key(g), "{g}");
        }
    }
}
