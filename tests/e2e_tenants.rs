//! Tenants end to end through the `llm-local` binary: the tenant settings routes and who
//! may use them, a member inheriting the tenant's keys and preferences (own key, tenant
//! key, operator entry, none), the tenant budget, and no key in any response or log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{BIN, Client, Server, start_with_env, token};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT_OPENAI_KEY: &str = "sk-proj-TNTACMEOPENAIMARKER-0123456789abcdefghijklmnop";
const TENANT_ANTHROPIC_KEY: &str = "sk-ant-api03-TNTACMEANTHROPICMARKER-0123456789abcdefghijkl";
const GLOBEX_OPENAI_KEY: &str = "sk-proj-TNTGLOBEXOPENAIMARKER-0123456789abcdefghijklmnop";
const MEMBER_OPENAI_KEY: &str = "sk-proj-TNTMEMBEROPENAIMARKER-0123456789abcdefghijklmnop";
const OPERATOR_KEY: &str = "sk-proj-TNTOPERATORMARKER-0123456789abcdefghijklmnop";
const MARKERS: [&str; 5] = [
    "TNTACMEOPENAIMARKER",
    "TNTACMEANTHROPICMARKER",
    "TNTGLOBEXOPENAIMARKER",
    "TNTMEMBEROPENAIMARKER",
    "TNTOPERATORMARKER",
];

fn openai_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1677858242, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "answer"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
}

fn anthropic_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "answer"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}}))
}

/// An OpenAI upstream that answers only the given key.
async fn openai_for(server: &MockServer, key: &str) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {key}").as_str()))
        .respond_with(openai_ok())
        .mount(server)
        .await;
}

fn tenant_token(data: &Path, user: &str, tenant: &str, admin: bool) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "token",
        "create",
        "--user",
        user,
        "--tenant",
        tenant,
        "--data-dir",
    ])
    .arg(data);
    if admin {
        cmd.arg("--tenant-admin");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct People {
    root: String,
    acme_admin: String,
    acme_member: String,
    acme_other: String,
    globex_admin: String,
    loner: String,
}

struct Gateway {
    _server: Server,
    data: PathBuf,
    log: PathBuf,
    client: Client,
    p: People,
    _tmp: tempfile::TempDir,
}

async fn gateway(openai: &MockServer, anthropic: &MockServer) -> Gateway {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let p = People {
        root: token(&data, "root", true),
        acme_admin: tenant_token(&data, "ada", "acme", true),
        acme_member: tenant_token(&data, "max", "acme", false),
        acme_other: tenant_token(&data, "mia", "acme", false),
        globex_admin: tenant_token(&data, "gus", "globex", true),
        loner: token(&data, "lou", false),
    };
    let env = vec![
        ("LLM_PROVIDER_URL_OPENAI", format!("{}/v1", openai.uri())),
        ("LLM_PROVIDER_URL_ANTHROPIC", anthropic.uri()),
        ("LLM_PROVIDER_TIMEOUT_SECS", "2".to_string()),
        ("LLM_MAX_RETRIES", "0".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "100000".to_string()),
        ("OPERATOR_OPENAI_KEY", OPERATOR_KEY.to_string()),
        ("RUST_LOG", "info,access=debug".to_string()),
    ];
    let server = start_with_env(&data, &log, &env);
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    Gateway {
        _server: server,
        data,
        log,
        client,
        p,
        _tmp: tmp,
    }
}

impl Gateway {
    async fn call(&mut self, who: &str, m: Method, p: &str, body: Option<Value>) -> (u16, Value) {
        self.client.call(m, p, Some(who), body).await
    }

    async fn generate(&mut self, who: &str, user: &str, body: Value) -> (u16, Value) {
        self.call(
            who,
            Method::POST,
            &format!("/api/llm-generate/{user}"),
            Some(body),
        )
        .await
    }

    /// The newest usage entry of `user`, read as `user`.
    async fn last_entry(&mut self, who: &str, user: &str) -> Value {
        let (s, v) = self
            .call(who, Method::GET, &format!("/api/llm-usage/{user}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["entries"][0].clone()
    }

    fn assert_no_key_leaked(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        for m in MARKERS {
            assert!(!log.contains(m), "a key reached the log: {m}");
            for b in &self.client.bodies {
                assert!(!b.contains(m), "a key reached a response: {m}");
            }
        }
        // The vault holds the tenant's keys sealed: not even the data directory has one
        // in the clear.
        for entry in std::fs::read_dir(&self.data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                for m in MARKERS {
                    assert!(!text.contains(m), "{m} in clear in {}", path.display());
                }
            }
        }
    }
}

#[tokio::test]
async fn tenant_settings_are_read_by_members_written_by_admins_and_closed_to_others() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    let mut g = gateway(&o, &a).await;
    let acme = "/api/tenants/acme/llm-settings";
    let globex = "/api/tenants/globex/llm-settings";

    let (s, v) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            acme,
            Some(json!({"preferences": {"defaultProvider": "openai", "maxTokens": 77},
                        "apiKeys": {"openai": TENANT_OPENAI_KEY, "anthropic": TENANT_ANTHROPIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hasApiKeys"]["openai"], true);
    assert_eq!(v["keyHints"]["openai"], "…mnop");
    assert_eq!(v["version"], 1);
    let (s, v) = g
        .call(
            &g.p.globex_admin.clone(),
            Method::PUT,
            globex,
            Some(json!({"apiKeys": {"openai": GLOBEX_OPENAI_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Reads: the tenant's members and admins, and global admins; nobody else.
    for (who, want) in [
        (g.p.acme_admin.clone(), 200),
        (g.p.acme_member.clone(), 200),
        (g.p.root.clone(), 200),
        (g.p.globex_admin.clone(), 403),
        (g.p.loner.clone(), 403),
    ] {
        let (s, v) = g.call(&who, Method::GET, acme, None).await;
        assert_eq!(s, want, "{v}");
        if s == 200 {
            assert_eq!(v["preferences"]["maxTokens"], 77);
            assert_eq!(v["hasApiKeys"]["anthropic"], true);
        }
    }
    let (s, v) = g
        .call(&g.p.acme_member.clone(), Method::GET, globex, None)
        .await;
    assert_eq!(s, 403, "{v}");

    // Writes: members, other tenants' admins and tenantless users are refused, and
    // nothing changes.
    for who in [
        g.p.acme_member.clone(),
        g.p.globex_admin.clone(),
        g.p.loner.clone(),
    ] {
        let (s, _) = g
            .call(
                &who,
                Method::PUT,
                acme,
                Some(json!({"preferences": {"maxTokens": 5}})),
            )
            .await;
        assert_eq!(s, 403);
        let (s, _) = g
            .call(&who, Method::DELETE, &format!("{acme}/keys/openai"), None)
            .await;
        assert_eq!(s, 403);
        let (s, _) = g
            .call(
                &who,
                Method::POST,
                &format!("{acme}/test"),
                Some(json!({"provider": "openai"})),
            )
            .await;
        assert_eq!(s, 403);
    }
    let (_, v) = g.call(&g.p.root.clone(), Method::GET, acme, None).await;
    assert_eq!(
        (v["version"].clone(), v["preferences"]["maxTokens"].clone()),
        (json!(1), json!(77))
    );

    // A tenant admin has no access to a member's own settings.
    let (s, _) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::GET,
            "/api/llm-settings/max",
            None,
        )
        .await;
    assert_eq!(s, 403);

    // The connection test runs on the tenant's saved key (the upstream accepts only it).
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header(
            "authorization",
            format!("Bearer {TENANT_OPENAI_KEY}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [
                {"id": "gpt-4o", "object": "model"}, {"id": "gpt-4-turbo", "object": "model"},
                {"id": "gpt-4o-mini", "object": "model"}]})),
        )
        .mount(&o)
        .await;
    let (s, v) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::POST,
            &format!("{acme}/test"),
            Some(json!({"provider": "openai"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");

    // A stale version is refused; a global admin may write; the admin deletes a key.
    let (s, _) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            acme,
            Some(json!({"version": 0, "preferences": {"maxTokens": 9}})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, v) = g
        .call(
            &g.p.root.clone(),
            Method::PUT,
            acme,
            Some(json!({"preferences": {"temperature": 0.5}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::DELETE,
            &format!("{acme}/keys/anthropic"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = g
        .call(&g.p.acme_member.clone(), Method::GET, acme, None)
        .await;
    assert_eq!(v["hasApiKeys"]["anthropic"], false);
    assert_eq!(v["hasApiKeys"]["openai"], true);
    // Globex's settings are its own.
    let (_, v) = g
        .call(&g.p.globex_admin.clone(), Method::GET, globex, None)
        .await;
    assert_eq!(v["hasApiKeys"]["openai"], true);
    assert_eq!(v["hasApiKeys"]["anthropic"], false);
    assert_eq!(v["preferences"]["maxTokens"], 2000);

    // Bad ids are 400, not a lookup.
    let (s, _) = g
        .call(
            &g.p.root.clone(),
            Method::GET,
            "/api/tenants/global/llm-settings",
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = g.client.call(Method::GET, acme, None, None).await;
    assert_eq!(s, 401);
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_member_uses_their_own_key_else_the_tenants_else_an_operator_entry() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    // The tenant's preference (maxTokens 77) reaches the upstream when the member set
    // none; the member's own (55) when they did.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {TENANT_OPENAI_KEY}").as_str(),
        ))
        .and(body_partial_json(json!({"max_completion_tokens": 77})))
        .respond_with(openai_ok())
        .expect(2)
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {MEMBER_OPENAI_KEY}").as_str(),
        ))
        .and(body_partial_json(json!({"max_completion_tokens": 55})))
        .respond_with(openai_ok())
        .expect(1)
        .mount(&o)
        .await;
    openai_for(&o, OPERATOR_KEY).await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(anthropic_ok())
        .mount(&a)
        .await;
    let mut g = gateway(&o, &a).await;
    let (s, v) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            "/api/tenants/acme/llm-settings",
            Some(
                json!({"preferences": {"defaultProvider": "openai", "maxTokens": 77,
                                        "models": {"conversation": "gpt-4o"}},
                        "apiKeys": {"openai": TENANT_OPENAI_KEY}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // 1. No key of their own: the tenant's key, the tenant's preferences.
    let member = g.p.acme_member.clone();
    let (s, v) = g
        .generate(&member, "max", json!({"prompt": "hi", "cache": false}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "openai");
    let e = g.last_entry(&member, "max").await;
    assert_eq!(e["key_source"], "tenant");
    assert_eq!(e["tenant_id"], "acme");

    // 2. Their own key and their own maxTokens win.
    let (s, v) = g
        .call(
            &member,
            Method::PUT,
            "/api/llm-settings/max",
            Some(
                json!({"preferences": {"maxTokens": 55}, "apiKeys": {"openai": MEMBER_OPENAI_KEY}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = g
        .generate(&member, "max", json!({"prompt": "hi", "cache": false}))
        .await;
    assert_eq!(s, 200, "{v}");
    let e = g.last_entry(&member, "max").await;
    assert_eq!(e["key_source"], "user");
    assert_eq!(e["tenant_id"], "acme");

    // 3. Neither the member nor the tenant holds an anthropic key: no key.
    let other = g.p.acme_other.clone();
    let (s, v) = g
        .generate(
            &other,
            "mia",
            json!({"prompt": "hi", "provider": "anthropic", "cache": false}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no API key"),
        "{v}"
    );

    // 4. An operator entry serves where neither has a key: globex has no key for it.
    let (s, entry) = g
        .call(
            &g.p.root.clone(),
            Method::POST,
            "/api/admin/llms",
            Some(
                json!({"name": "Team mini", "provider": "openai", "model_name": "gpt-4o-mini",
                        "auth_meta": {"api_key_env": "OPERATOR_OPENAI_KEY"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{entry}");
    let id = entry["id"].as_str().unwrap().to_owned();
    let gus = g.p.globex_admin.clone();
    let (s, v) = g
        .generate(
            &gus,
            "gus",
            json!({"prompt": "hi", "llmId": id, "cache": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let e = g.last_entry(&gus, "gus").await;
    assert_eq!(e["key_source"], "operator");
    assert_eq!(e["tenant_id"], "globex");
    // Acme's member asking for that entry uses the tenant's key before the operator's.
    let (s, _) = g
        .generate(
            &other,
            "mia",
            json!({"prompt": "hi", "llmId": id, "cache": false}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(g.last_entry(&other, "mia").await["key_source"], "tenant");

    // 5. A user with no tenant inherits nothing: no key at all.
    let lou = g.p.loner.clone();
    let (s, v) = g
        .generate(
            &lou,
            "lou",
            json!({"prompt": "hi", "provider": "openai", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no API key"),
        "{v}"
    );
    // A global admin generating for a member acts without the member's tenant.
    let (s, v) = g
        .generate(
            &g.p.root.clone(),
            "mia",
            json!({"prompt": "hi", "provider": "openai", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_tenant_budget_refuses_every_member_once_spent_and_only_that_tenant() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    openai_for(&o, TENANT_OPENAI_KEY).await;
    openai_for(&o, GLOBEX_OPENAI_KEY).await;
    let mut g = gateway(&o, &a).await;
    // A budget below one request's worst case: every member is refused up front.
    for (who, tenant, key) in [
        (g.p.acme_admin.clone(), "acme", TENANT_OPENAI_KEY),
        (g.p.globex_admin.clone(), "globex", GLOBEX_OPENAI_KEY),
    ] {
        let budget = if tenant == "acme" {
            json!(0.00001)
        } else {
            json!(null)
        };
        let (s, v) = g
            .call(
                &who,
                Method::PUT,
                &format!("/api/tenants/{tenant}/llm-settings"),
                Some(
                    json!({"preferences": {"defaultProvider": "openai", "monthlyBudgetUsd": budget},
                            "apiKeys": {"openai": key}}),
                ),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let body = json!({"prompt": "hi", "provider": "openai", "model": "gpt-4o", "maxTokens": 100, "cache": false});
    for (who, user) in [
        (g.p.acme_member.clone(), "max"),
        (g.p.acme_other.clone(), "mia"),
    ] {
        let (s, v) = g.generate(&who, user, body.clone()).await;
        assert_eq!(s, 402, "{v}");
        assert_eq!(v["error"]["code"], "budget_exceeded");
        // The member's own settings name no budget: the tenant's is not copied to them.
        let (_, mine) = g
            .call(
                &who,
                Method::GET,
                &format!("/api/llm-settings/{user}"),
                None,
            )
            .await;
        assert_eq!(mine["preferences"]["monthlyBudgetUsd"], Value::Null);
    }
    let (s, v) = g
        .generate(&g.p.globex_admin.clone(), "gus", body.clone())
        .await;
    assert_eq!(s, 200, "{v}");
    // Raised: the members are served again.
    let (s, _) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            "/api/tenants/acme/llm-settings",
            Some(json!({"preferences": {"monthlyBudgetUsd": 10}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = g
        .generate(&g.p.acme_member.clone(), "max", body.clone())
        .await;
    assert_eq!(s, 200, "{v}");

    // The members' spend together stays under the tenant's budget. In nano-USD at gpt-4o's
    // $2.50 / $10 per 1M: a request reserves its worst case, 6 prompt bytes and 100
    // output tokens = 1,015,000, and settles at 10 in + 5 out = 75,000. Spent so far:
    // 75,000. Under 1,200,000: 75,000 + 1,015,000 fits, so does 150,000 + 1,015,000; at
    // 225,000 the next does not, whichever member sends it.
    let (s, _) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            "/api/tenants/acme/llm-settings",
            Some(json!({"preferences": {"monthlyBudgetUsd": 0.0012}})),
        )
        .await;
    assert_eq!(s, 200);
    let mut served = 0;
    for (who, user) in [
        (g.p.acme_member.clone(), "max"),
        (g.p.acme_other.clone(), "mia"),
        (g.p.acme_member.clone(), "max"),
        (g.p.acme_other.clone(), "mia"),
    ] {
        let (s, _) = g.generate(&who, user, body.clone()).await;
        served += u32::from(s == 200);
        assert!(s == 200 || s == 402);
    }
    assert_eq!(served, 2);
    let (_, summary) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::GET,
            "/api/tenants/acme/llm-usage/summary",
            None,
        )
        .await;
    assert_eq!(summary["total_cost_usd"], json!(0.000225), "{summary}");
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn tenant_analytics_count_every_members_requests_and_only_the_tenants() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    // Acme's key reports its rate limits on every answer.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {TENANT_OPENAI_KEY}").as_str(),
        ))
        .respond_with(
            openai_ok()
                .insert_header("x-ratelimit-limit-requests", "60")
                .insert_header("x-ratelimit-remaining-requests", "42")
                .insert_header("x-ratelimit-reset-requests", "30s")
                .insert_header("x-ratelimit-remaining-tokens", "149000")
                .insert_header("x-ratelimit-reset-tokens", "6m0s"),
        )
        .mount(&o)
        .await;
    openai_for(&o, GLOBEX_OPENAI_KEY).await;
    // Anthropic fails with a server error: an error class in last24h.
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "type": "error", "error": {"type": "api_error", "message": "Internal server error"}})))
        .mount(&a)
        .await;
    let mut g = gateway(&o, &a).await;
    for (who, tenant, keys) in [
        (
            g.p.acme_admin.clone(),
            "acme",
            json!({"openai": TENANT_OPENAI_KEY, "anthropic": TENANT_ANTHROPIC_KEY}),
        ),
        (
            g.p.globex_admin.clone(),
            "globex",
            json!({"openai": GLOBEX_OPENAI_KEY}),
        ),
    ] {
        let (s, v) = g
            .call(
                &who,
                Method::PUT,
                &format!("/api/tenants/{tenant}/llm-settings"),
                Some(json!({"preferences": {"autoFailover": false}, "apiKeys": keys})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let ok = json!({"prompt": "hi", "provider": "openai", "model": "gpt-4o", "cache": false});
    let failing = json!({"prompt": "hi", "provider": "anthropic", "cache": false});
    let sent = [
        (g.p.acme_member.clone(), "max", ok.clone(), 200),
        (g.p.acme_member.clone(), "max", ok.clone(), 200),
        (g.p.acme_other.clone(), "mia", ok.clone(), 200),
        (g.p.acme_other.clone(), "mia", failing, 502),
        (g.p.acme_admin.clone(), "ada", ok.clone(), 200),
        (g.p.globex_admin.clone(), "gus", ok.clone(), 200),
    ];
    for (who, user, body, want) in &sent {
        let (s, v) = g.generate(who, user, body.clone()).await;
        assert_eq!(s, *want, "{v}");
    }

    // Every tenant usage route: acme's people and global admins read acme's; globex's
    // admin and a tenantless user get 403.
    let routes = ["summary", "daily?days=7", "last24h"];
    for r in routes {
        let p = format!("/api/tenants/acme/llm-usage/{r}");
        for (who, want) in [
            (g.p.acme_member.clone(), 200),
            (g.p.acme_admin.clone(), 200),
            (g.p.root.clone(), 200),
            (g.p.globex_admin.clone(), 403),
            (g.p.loner.clone(), 403),
        ] {
            let (s, v) = g.call(&who, Method::GET, &p, None).await;
            assert_eq!(s, want, "{p}: {v}");
        }
    }

    // The tenant's totals are the sum of its members' entries, read from each member.
    let mut requests = 0;
    let mut tokens = 0;
    let mut cost = 0.0;
    for (who, user) in [
        (g.p.acme_member.clone(), "max"),
        (g.p.acme_other.clone(), "mia"),
        (g.p.acme_admin.clone(), "ada"),
    ] {
        let (_, v) = g
            .call(&who, Method::GET, &format!("/api/llm-usage/{user}"), None)
            .await;
        for e in v["entries"].as_array().unwrap() {
            assert_eq!(e["tenant_id"], "acme");
            requests += 1;
            tokens += e["total_tokens"].as_u64().unwrap();
            cost += e["cost_usd"].as_f64().unwrap_or(0.0);
        }
    }
    assert_eq!(requests, 5);
    let (_, s) = g
        .call(
            &g.p.acme_member.clone(),
            Method::GET,
            "/api/tenants/acme/llm-usage/summary",
            None,
        )
        .await;
    assert_eq!(s["total_requests"], requests, "{s}");
    assert_eq!(s["total_tokens"], tokens, "{s}");
    assert!(
        (s["total_cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{s}"
    );
    assert_eq!(s["by_provider"]["openai"]["requests"], 4);
    assert_eq!(s["by_provider"]["anthropic"]["requests"], 1);
    let (_, d) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::GET,
            "/api/tenants/acme/llm-usage/daily?days=7",
            None,
        )
        .await;
    let days = d["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = days.last().unwrap();
    assert_eq!(
        (today["requests"].clone(), today["errors"].clone()),
        (json!(5), json!(1)),
        "{d}"
    );
    let (_, l) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::GET,
            "/api/tenants/acme/llm-usage/last24h",
            None,
        )
        .await;
    let models = l["models"].as_array().unwrap();
    let gpt = models.iter().find(|m| m["model"] == "gpt-4o").unwrap();
    assert_eq!(
        (gpt["requests"].clone(), gpt["success_rate"].clone()),
        (json!(4), json!(1.0)),
        "{l}"
    );
    let claude = models
        .iter()
        .find(|m| m["provider"] == "anthropic")
        .unwrap();
    assert_eq!(claude["success_rate"], 0.0, "{l}");
    assert_eq!(claude["errors"]["server_error"], 1, "{l}");
    // The rate-limit state acme's key last reported; globex's key reported none.
    let limits = l["rate_limits"].as_array().unwrap();
    assert_eq!(limits.len(), 1, "{l}");
    assert_eq!(limits[0]["provider"], "openai");
    assert_eq!(limits[0]["requests_remaining"], 42);
    assert_eq!(limits[0]["tokens_remaining"], 149000);
    assert!(limits[0]["requests_reset"].is_string() && limits[0]["observed_at"].is_string());
    // Globex sees only its one request.
    let (_, s) = g
        .call(
            &g.p.globex_admin.clone(),
            Method::GET,
            "/api/tenants/globex/llm-usage/summary",
            None,
        )
        .await;
    assert_eq!(s["total_requests"], 1, "{s}");
    let (_, l) = g
        .call(
            &g.p.globex_admin.clone(),
            Method::GET,
            "/api/tenants/globex/llm-usage/last24h",
            None,
        )
        .await;
    assert_eq!(l["rate_limits"], json!([]), "{l}");
    g.assert_no_key_leaked();
}

#[tokio::test]
async fn a_tenants_registry_entry_is_its_members_alone_and_wins_over_the_global_one() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    openai_for(&o, TENANT_OPENAI_KEY).await;
    openai_for(&o, GLOBEX_OPENAI_KEY).await;
    let mut g = gateway(&o, &a).await;
    for (who, tenant, key) in [
        (g.p.acme_admin.clone(), "acme", TENANT_OPENAI_KEY),
        (g.p.globex_admin.clone(), "globex", GLOBEX_OPENAI_KEY),
    ] {
        let (s, _) = g
            .call(
                &who,
                Method::PUT,
                &format!("/api/tenants/{tenant}/llm-settings"),
                Some(json!({"apiKeys": {"openai": key}})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, entry) = g
        .call(
            &g.p.root.clone(),
            Method::POST,
            "/api/admin/llms",
            Some(
                json!({"name": "Acme mini", "provider": "openai", "model_name": "gpt-4o-mini",
                        "scope": "acme", "price_override": {"input": "1", "output": "2"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{entry}");
    let id = entry["id"].as_str().unwrap().to_owned();
    let listed = |v: &Value| {
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["llm_id"] == json!(id))
    };
    let (_, v) = g
        .call(
            &g.p.acme_member.clone(),
            Method::GET,
            "/api/llm-models",
            None,
        )
        .await;
    assert!(listed(&v), "acme's members see their entry");
    let (_, v) = g
        .call(
            &g.p.globex_admin.clone(),
            Method::GET,
            "/api/llm-models",
            None,
        )
        .await;
    assert!(!listed(&v), "other tenants never see it");

    let body =
        json!({"prompt": "hi", "provider": "openai", "model": "gpt-4o-mini", "cache": false});
    let (s, v) = g
        .generate(&g.p.acme_member.clone(), "max", body.clone())
        .await;
    assert_eq!(s, 200, "{v}");
    // 10 in at $1 and 5 out at $2 per 1M: the tenant entry's price, so its entry served.
    assert_eq!(v["usage"]["cost_usd"], 0.00002);
    let e = g.last_entry(&g.p.acme_member.clone(), "max").await;
    assert_eq!(e["price_version"], json!(format!("registry:{id}@1")));
    let (s, v) = g.generate(&g.p.globex_admin.clone(), "gus", body).await;
    assert_eq!(s, 200, "{v}");
    let e = g.last_entry(&g.p.globex_admin.clone(), "gus").await;
    assert_ne!(e["price_version"], json!(format!("registry:{id}@1")));
    // Naming the entry itself is acme's alone.
    let (s, _) = g
        .generate(
            &g.p.globex_admin.clone(),
            "gus",
            json!({"prompt": "hi", "llmId": id}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_tenant_key_one_member_exhausted_is_skipped_for_every_member() {
    let (o, a) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {TENANT_OPENAI_KEY}").as_str(),
        ))
        .respond_with(
            openai_ok()
                .insert_header("x-ratelimit-remaining-requests", "0")
                .insert_header("x-ratelimit-reset-requests", "30s"),
        )
        .expect(1)
        .mount(&o)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", TENANT_ANTHROPIC_KEY))
        .respond_with(anthropic_ok())
        .expect(1)
        .mount(&a)
        .await;
    let mut g = gateway(&o, &a).await;
    let (s, v) = g
        .call(
            &g.p.acme_admin.clone(),
            Method::PUT,
            "/api/tenants/acme/llm-settings",
            Some(json!({"preferences": {"defaultProvider": "openai", "models": {"conversation": "gpt-4o"},
                                        "fallbackProviders": ["anthropic"], "autoFailover": true},
                        "apiKeys": {"openai": TENANT_OPENAI_KEY, "anthropic": TENANT_ANTHROPIC_KEY}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let body = json!({"prompt": "hi", "cache": false});
    let (s, v) = g
        .generate(&g.p.acme_member.clone(), "max", body.clone())
        .await;
    assert_eq!((s, v["provider"].clone()), (200, json!("openai")), "{v}");
    // The answer said no requests remain on the tenant's key: mia's request skips it.
    let (s, v) = g.generate(&g.p.acme_other.clone(), "mia", body).await;
    assert_eq!((s, v["provider"].clone()), (200, json!("anthropic")), "{v}");
    assert_eq!(v["attempts"][0]["provider"], "openai");
    assert_eq!(v["attempts"][0]["error"], "rate_limited");
    assert_eq!(v["attempts"][0]["latency_ms"], 0.0);
    g.assert_no_key_leaked();
}
