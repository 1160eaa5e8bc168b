//! Helpers shared by the router-level tests: an in-memory deployment and a client that
//! drives a router with `oneshot`, returning status, headers and JSON.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use shared::http::AppState;
use shared::identity::IdentityMode;
use shared::store::sqlite::SqliteStore;
use shared::vault::local::LocalVault;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Deployment {
    pub state: AppState,
    pub db: SqliteStore,
}

/// An in-memory deployment whose identity is local bearer tokens.
pub fn local_deployment() -> Deployment {
    let db = SqliteStore::open_in_memory().unwrap();
    deployment_with(db.clone(), IdentityMode::LocalTokens(Arc::new(db)))
}

/// An in-memory deployment whose identity is API Gateway JWT claims.
pub fn lambda_deployment(identity: IdentityMode) -> Deployment {
    deployment_with(SqliteStore::open_in_memory().unwrap(), identity)
}

fn deployment_with(db: SqliteStore, identity: IdentityMode) -> Deployment {
    let vault = LocalVault::new(db.clone(), &[9u8; 32]).unwrap();
    Deployment {
        state: AppState {
            settings: Arc::new(db.clone()),
            vault: Arc::new(vault),
            catalog: shared::pricing::catalog().unwrap(),
            identity,
            providers: Arc::new(
                shared::providers::Providers::from_env(aws_config::SdkConfig::builder().build())
                    .unwrap(),
            ),
            test_limiter: AppState::default_test_limiter(),
            key_changes: Default::default(),
            registry: Arc::new(shared::registry::RegistryCache::new(
                Arc::new(db.clone()),
                shared::pricing::catalog().unwrap(),
                std::time::Duration::ZERO,
            )),
            operator_keys: Arc::new(shared::vault::operator::EnvOperatorKeys),
            limits: Arc::new(db.clone()),
        },
        db,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the SPEC error shape and returns the code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(
            e["requestId"]
                .as_str()
                .is_some_and(|m| m.starts_with("req-")),
            "{v}"
        );
        e["code"].as_str().unwrap().to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap().to_owned()
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Reply {
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}
