//! `POST /api/llm-settings/{userId}/test`: does this key work? The cheapest call the
//! provider offers (a model listing where there is one) with a saved or an unsaved key.
//! A provider's refusal is an answer (`success: false` and why), not an error.

use super::SettingsRecord;
use super::error::SettingsError;
use super::patch::KeyInput;
use crate::pricing::Catalog;
use crate::provider::Provider;
use crate::providers::{ProviderApi, Route, key_required};
use crate::secret::ApiKey;
use crate::vault::KeyVault;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestRequest {
    pub provider: Provider,
    /// A key to try without saving it; else the saved one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<KeyInput>,
    /// Defaults to the provider's default model; for Azure, the deployment name.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    pub success: bool,
    pub provider: Provider,
    pub message: String,
    pub model: String,
    pub latency_ms: f64,
    /// The failure class (`invalid_key`, `timeout`, ...), for frontends to branch on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error: Option<&'static str>,
}

/// Model names that are not catalog ids (Azure deployments, Ollama's local models) are
/// still restricted to a safe character set, since they go into URLs and bodies.
fn valid_free_model_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
}

fn choose_model(
    catalog: &Catalog,
    provider: Provider,
    model: Option<String>,
) -> Result<String, SettingsError> {
    match (provider, model) {
        (Provider::AzureOpenAi, None) => Err(SettingsError::invalid(
            "model",
            "is required for azure_openai: the deployment name",
        )),
        (Provider::AzureOpenAi | Provider::Ollama, Some(m)) => {
            if valid_free_model_name(&m) {
                Ok(m)
            } else {
                Err(SettingsError::invalid(
                    "model",
                    "must be 1-128 of A-Z a-z 0-9 . _ - : /",
                ))
            }
        }
        (_, Some(m)) => catalog
            .find(Some(provider), &m)
            .map(|found| found.id.clone())
            .ok_or_else(|| {
                SettingsError::invalid("model", format!("unknown model for {provider}"))
            }),
        (_, None) => catalog
            .default_model(provider)
            .map(|m| m.id.clone())
            .ok_or_else(|| {
                SettingsError::invalid(
                    "model",
                    format!("{provider} has no default model; name one"),
                )
            }),
    }
}

/// Resolves the key (unsaved, else saved), then probes.
pub async fn run(
    providers: &dyn ProviderApi,
    vault: &dyn KeyVault,
    catalog: &Catalog,
    settings: &SettingsRecord,
    user_id: &str,
    request: TestRequest,
) -> Result<TestOutcome, SettingsError> {
    let provider = request.provider;
    let model = choose_model(catalog, provider, request.model)?;
    let key: Option<ApiKey> = match request.api_key {
        Some(KeyInput(key)) => {
            provider
                .check_key_shape(key.expose())
                .map_err(|msg| SettingsError::invalid("apiKey", msg))?;
            Some(key)
        }
        None if !provider.takes_key() => None,
        None => {
            // Exactly the version the record names, so the key tested is the one whose
            // hint the settings show.
            let saved = match settings.keys.get(&provider) {
                Some(meta) => {
                    vault
                        .get_key(user_id, provider, meta.version.as_ref())
                        .await?
                }
                None => None,
            };
            if saved.is_none() && key_required(provider) {
                return Err(SettingsError::invalid(
                    "apiKey",
                    format!("no key is saved for {provider}; send one to test it"),
                ));
            }
            saved
        }
    };
    let prefs = &settings.preferences;
    let route = Route {
        provider,
        key: key.as_ref(),
        azure_resource: prefs.azure_resource.as_deref(),
        // The test's `model` is already the deployment name for Azure: probed as typed.
        azure_deployments: None,
    };
    if let Some(field) = providers.missing_preference(&route) {
        return Err(SettingsError::invalid(
            field,
            format!("save your Azure OpenAI resource name before testing {provider}"),
        ));
    }

    let started = Instant::now();
    let result = providers.probe(&route, &model).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    Ok(match result {
        Ok(()) => {
            tracing::info!(provider = %provider, model = %model, latency_ms, "connection test passed");
            TestOutcome {
                success: true,
                provider,
                message: "Connection successful".into(),
                model,
                latency_ms,
                error: None,
            }
        }
        Err(e) => {
            // Provider text may quote what it was sent; never let the key through.
            let detail = key
                .as_ref()
                .map_or_else(|| e.detail.clone(), |k| k.scrub(&e.detail));
            tracing::info!(provider = %provider, model = %model, latency_ms, kind = e.kind.as_str(), detail = %detail, "connection test failed");
            TestOutcome {
                success: false,
                provider,
                message: e.kind.user_message().into(),
                model,
                latency_ms,
                error: Some(e.kind.as_str()),
            }
        }
    })
}
