//! The OpenAPI document at `/openapi.json` against the routes the server really serves:
//! one list (`shared::http::openapi::ROUTES`) must equal the document's operations, and
//! every route in it must be served by the merged local router (not the "no such route"
//! fallback, not 405). Every operation but the public ones needs the bearer scheme and
//! documents a 4xx with the error envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use shared::http::openapi::{PUBLIC_ROUTES, ROUTES};
use std::collections::BTreeSet;

mod local_support;

use local_support::start;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn concrete(path: &str) -> String {
    path.replace("{userId}", "alice")
        .replace("{tenantId}", "t1")
        .replace("{provider}", "openai")
        .replace("{id}", "some-entry")
        .replace("{file}", "app.css")
}

#[tokio::test]
async fn the_document_covers_every_served_route() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data, &tmp.path().join("server.log"));
    let http = reqwest::Client::new();

    let resp = http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed.len(), ROUTES.len(), "ROUTES has duplicates");
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(
                operation_ids.insert(id),
                "{method} {path}: operationId reused"
            );
            let public = PUBLIC_ROUTES.iter().any(|(m, p)| m == method && p == path);
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let bearer = security.iter().any(|s| s.get("bearer").is_some());
            assert_eq!(bearer, !public, "{method} {path}: bearer iff not public");
            if public && path != "/assets/{file}" {
                continue;
            }
            let has_error = op["responses"].as_object().unwrap().iter().any(|(s, r)| {
                let refs = r["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or("");
                s.starts_with('4')
                    && (refs == "#/components/schemas/ErrorEnvelope"
                        || refs == "#/components/schemas/AnthropicErrorEnvelope")
            });
            assert!(has_error, "{method} {path}: no 4xx with the error envelope");
        }
    }
    assert_eq!(documented, listed, "document operations vs ROUTES");

    // Every listed route is served: no token (so 401 for the guarded ones, 200 for the
    // public ones), never the unknown-route fallback or a 405.
    for (method, path) in ROUTES {
        let url = format!("{}{}", server.base, concrete(path));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = http.request(m, &url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}: 405");
        assert!(
            !(status == 404 && body["error"]["message"] == "no such route"),
            "{method} {path}: not served"
        );
        let public = PUBLIC_ROUTES.iter().any(|(m, p)| m == method && p == path);
        assert_eq!(status == 401, !public, "{method} {path}: {status} {body}");
    }
}
