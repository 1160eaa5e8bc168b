//! Key rotation end to end through the `llm-local` binary: concurrent `PUT`s of different
//! keys, and `DELETE`s racing `PUT`s, each round followed by a generate call to a mock
//! Anthropic upstream. Whatever the interleaving, the key generate sends upstream is the
//! one whose hint `GET` shows, and when `GET` shows no key the vault holds none (the
//! server's SQLite file is opened read-only to check).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{Client, Server, start_with_env, token};
use reqwest::Method as M;
use serde_json::{Value, json};
use std::path::PathBuf;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROUNDS: usize = 40;

fn anthropic_body() -> Value {
    json!({"id": "msg_01", "type": "message", "role": "assistant",
           "model": "claude-3-5-sonnet-20241022",
           "content": [{"type": "text", "text": "SELECT 1"}],
           "stop_reason": "end_turn", "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 5}})
}

/// A valid Anthropic-shaped key whose last four characters (the hint) are `tail`.
fn key(tail: &str) -> String {
    format!("sk-ant-api03-KEYSMARKER-{}{tail}", "x".repeat(40))
}

struct Gateway {
    _server: Server,
    upstream: MockServer,
    data: PathBuf,
    client: Client,
    token: String,
    _tmp: tempfile::TempDir,
}

async fn gateway() -> Gateway {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_body()))
        .mount(&upstream)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let token = token(&data, "alice", false);
    let server = start_with_env(
        &data,
        &log,
        &[
            ("LLM_PROVIDER_URL_ANTHROPIC", upstream.uri()),
            ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
            ("LLM_MAX_RETRIES", "0".to_string()),
        ],
    );
    let mut client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    // No fallback and no response cache: every generate call that has a key goes
    // upstream with it.
    let (s, v) = client
        .call(
            M::PUT,
            "/api/llm-settings/alice",
            Some(&token),
            Some(
                json!({"preferences": {"defaultProvider": "anthropic", "fallbackProviders": [],
                                        "enableCaching": false}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    Gateway {
        _server: server,
        upstream,
        data,
        client,
        token,
        _tmp: tmp,
    }
}

impl Gateway {
    /// Sends a request on its own connection, so concurrent ones really overlap.
    fn send(
        &self,
        m: M,
        path: &str,
        body: Option<Value>,
    ) -> impl Future<Output = (u16, Value)> + use<> {
        let req = reqwest::Client::new()
            .request(m, format!("{}{path}", self.client.base))
            .bearer_auth(&self.token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(!text.contains("KEYSMARKER"), "a key reached a response");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    }

    fn put_key(&self, k: &str) -> impl Future<Output = (u16, Value)> + use<> {
        self.send(
            M::PUT,
            "/api/llm-settings/alice",
            Some(json!({"apiKeys": {"anthropic": k}})),
        )
    }

    fn delete_key(&self) -> impl Future<Output = (u16, Value)> + use<> {
        self.send(M::DELETE, "/api/llm-settings/alice/keys/anthropic", None)
    }

    /// The Anthropic hint `GET` shows, without its ellipsis, or `None` for no key.
    async fn hint(&self) -> Option<String> {
        let (s, v) = self.send(M::GET, "/api/llm-settings/alice", None).await;
        assert_eq!(s, 200, "{v}");
        match v["hasApiKeys"]["anthropic"].as_bool().unwrap() {
            true => Some(
                v["keyHints"]["anthropic"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('…')
                    .to_owned(),
            ),
            false => None,
        }
    }

    async fn generate(&self, round: usize) -> (u16, Value) {
        self.send(
            M::POST,
            "/api/llm-generate/alice",
            Some(
                json!({"prompt": format!("round {round}: show me failed logins"),
                        "provider": "anthropic"}),
            ),
        )
        .await
    }

    async fn upstream_keys(&self) -> Vec<String> {
        self.upstream
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                r.headers
                    .get("x-api-key")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// How many rows the vault table holds for alice's Anthropic key (every version).
    fn vault_rows(&self) -> i64 {
        let db = rusqlite::Connection::open_with_flags(
            self.data.join("gateway.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM secrets WHERE name = 'users/alice/llm/anthropic'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// The round's invariant: generate uses exactly the hinted key, or, with no key
    /// shown, answers without calling upstream and the vault holds nothing.
    async fn check(&self, round: usize, candidates: &[String]) {
        let before = self.upstream_keys().await.len();
        let hint = self.hint().await;
        let (s, v) = self.generate(round).await;
        let sent = self.upstream_keys().await;
        match hint {
            Some(hint) => {
                assert_eq!(s, 200, "round {round}: {v}");
                assert_eq!(sent.len(), before + 1, "round {round}");
                let used = sent.last().unwrap();
                assert!(
                    candidates.contains(used),
                    "round {round}: an old key went upstream"
                );
                assert!(
                    used.ends_with(&hint),
                    "round {round}: GET shows …{hint}, but generate sent another key"
                );
                assert_eq!(
                    self.vault_rows(),
                    1,
                    "round {round}: the vault holds a key the settings do not name"
                );
            }
            None => {
                assert_eq!(s, 400, "round {round}: {v}");
                assert_eq!(sent.len(), before, "round {round}: upstream was called");
                assert_eq!(
                    self.vault_rows(),
                    0,
                    "round {round}: GET says no key, the vault still holds one"
                );
            }
        }
    }
}

fn accepted(round: usize, (s, v): &(u16, Value)) {
    // A write without `version` that loses the race is applied again on the fresh
    // record, so both succeed; `409` would still be a consistent answer.
    assert!(matches!(s, 200 | 204 | 409), "round {round}: {s} {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_then_generate_uses_the_hinted_key() {
    let g = gateway().await;
    for round in 0..ROUNDS {
        let a = key(&format!("{round:02}aA"));
        let b = key(&format!("{round:02}bB"));
        let (ra, rb) = tokio::join!(g.put_key(&a), g.put_key(&b));
        accepted(round, &ra);
        accepted(round, &rb);
        assert!(g.hint().await.is_some(), "round {round}");
        g.check(round, &[a, b]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_put_never_leaves_a_hidden_key() {
    let g = gateway().await;
    for round in 0..ROUNDS {
        let before = key(&format!("{round:02}oO"));
        let (s, v) = g.put_key(&before).await;
        assert_eq!(s, 200, "round {round}: {v}");
        let after = key(&format!("{round:02}nN"));
        let (rd, rp) = tokio::join!(g.delete_key(), g.put_key(&after));
        accepted(round, &rd);
        accepted(round, &rp);
        g.check(round, &[after]).await;
    }
}
