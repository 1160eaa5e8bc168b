//! The web dashboard: `GET /` and its scripts and styles under `/assets/`, embedded in
//! the binary at compile time (no build step, no file to deploy beside the function).
//! Served by the `llm-settings` function on AWS and by `llm-local`, same origin as the
//! API the pages call. The pages are public (they hold no data); everything they show
//! comes from the API with the caller's token.
//!
//! The Content-Security-Policy is what keeps "no request to another host" true for any
//! page change: scripts, styles and fetches may only go to this origin, and nothing may
//! frame the pages.

use super::error::ApiError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: &str = include_str!("assets/index.html");

/// Every file under `/assets/`; anything else there is a `404`.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("providers.js", JS),
    asset!("charts.js", JS),
    asset!("settings.js", JS),
    asset!("usage.js", JS),
    asset!("insights.js", JS),
    asset!("test.js", JS),
    asset!("admin.js", JS),
    asset!("tenant.js", JS),
];

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The page routes; stateless, so any router may merge them.
pub fn page_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
}

#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    summary = "The web dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

#[utoipa::path(
    get,
    path = "/assets/{file}",
    tag = "pages",
    summary = "A dashboard asset",
    params(("file" = String, Path, description = "app.css, app.js, ...")),
    responses((status = 200, description = "The asset (CSS or JavaScript)", content_type = "text/javascript", body = String), (status = 404, description = "No such asset", body = crate::http::openapi::ErrorEnvelope))
)]
async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == file)
        .map(|a| page(a.content_type, a.body))
        .ok_or(ApiError::NotFound)
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files, and a new binary may change them: revalidate every time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// This router's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(index, asset))]
pub(crate) struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_served() {
        // An import of a file missing from ASSETS would fail in the browser only.
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split("from '").nth(1) else {
                    continue;
                };
                let file = from.trim_end_matches("';").trim_start_matches("./");
                assert!(names.contains(&file), "{} imports {file}", a.name);
            }
        }
        assert!(INDEX.contains("/assets/app.js") && INDEX.contains("/assets/app.css"));
    }

    #[test]
    fn pages_never_name_another_host() {
        for body in ASSETS.iter().map(|a| a.body).chain([INDEX]) {
            for scheme in ["http://", "https://", "//cdn", "//fonts"] {
                let hits: Vec<&str> = body
                    .lines()
                    .filter(|l| l.contains(scheme) && !l.contains("www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{scheme} in {hits:?}");
            }
        }
    }
}
