//! Every route's JSON body, through the decoder the routes use (`parse_json`) and, where
//! it needs no store, the validation after it. Whatever the bytes, the answer is the body
//! or a 4xx naming what is wrong: never a panic, never a 5xx.

use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use shared::ApiError;
use shared::generate::request::GenerateBody;
use shared::http::embeddings::EmbeddingsBody;
use shared::http::extract::parse_json;
use shared::http::messages::{MessagesBody, to_generate};
use shared::http::openai::ChatCompletionBody;
use shared::registry::input::{Bulk, LlmPatch, NewLlm};
use shared::registry::view::RegistryView;
use shared::settings::SettingsUpdate;
use shared::settings::connection_test::TestRequest;
use shared::settings::limits::LimitsBody;
use std::sync::LazyLock;

static VIEW: LazyLock<RegistryView> = LazyLock::new(|| match shared::pricing::catalog() {
    Ok(catalog) => {
        RegistryView::build(shared::registry::seed::seed_entries(catalog), catalog, true)
    }
    Err(e) => panic!("the compiled-in catalog does not parse: {e}"),
});

fn client_error(route: &str, e: ApiError) {
    let status = e.into_response().status();
    if !status.is_client_error() {
        panic!("{route}: a body answered {status}, not a 4xx");
    }
}

fn decode<T: DeserializeOwned>(route: &str, data: &[u8]) -> Option<T> {
    parse_json::<T>(data)
        .map_err(|e| client_error(route, e))
        .ok()
}

pub fn route_bodies(data: &[u8]) {
    let view = &*VIEW;
    if let Some(b) = decode::<GenerateBody>("generate", data) {
        b.validate(view)
            .map(drop)
            .unwrap_or_else(|e| client_error("generate", e.into()));
    }
    if let Some(b) = decode::<ChatCompletionBody>("chat completions", data) {
        b.into_generate(view, None)
            .map(drop)
            .unwrap_or_else(|e| client_error("chat completions", e));
    }
    if let Some(b) = decode::<MessagesBody>("messages", data) {
        to_generate(b, view, None)
            .map(drop)
            .unwrap_or_else(|e| client_error("messages", e));
    }
    if let Some(b) = decode::<EmbeddingsBody>("embeddings", data) {
        b.validate()
            .map(drop)
            .unwrap_or_else(|e| client_error("embeddings", e));
    }
    decode::<SettingsUpdate>("settings", data);
    decode::<TestRequest>("connection test", data);
    decode::<LimitsBody>("admin limits", data);
    decode::<NewLlm>("registry create", data);
    decode::<LlmPatch>("registry update", data);
    decode::<Bulk>("registry bulk", data);
}
