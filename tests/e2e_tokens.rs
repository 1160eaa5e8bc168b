//! Local tokens end to end through the `llm-local` binary: tenant tokens, expiry, and
//! `token list` / `token revoke` beside a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_support;

use local_support::{BIN, Client, start, token};
use std::process::Command;

fn cli(args: &[&str], data: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn tokens_carry_tenants_expire_and_are_revoked_beside_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let alice = token(&data, "alice", false);
    let (ok, bob, err) = cli(
        &[
            "token",
            "create",
            "--user",
            "bob",
            "--tenant",
            "acme",
            "--tenant-admin",
            "--expires-in",
            "30d",
        ],
        &data,
    );
    assert!(ok, "{err}");
    let bob = bob.trim().to_owned();
    assert!(bob.starts_with("llmk_"));
    // Refused: a tenant admin without a tenant, a lifetime that is not one.
    let (ok, _, _) = cli(&["token", "create", "--user", "x", "--tenant-admin"], &data);
    assert!(!ok);
    for bad in ["30", "0d", "5y", "3é"] {
        let (ok, _, err) = cli(
            &["token", "create", "--user", "x", "--expires-in", bad],
            &data,
        );
        assert!(!ok && err.contains("--expires-in"), "{bad}: {err}");
    }

    let server = start(&data, &tmp.path().join("server.log"));
    let mut client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        bodies: Vec::new(),
    };
    for t in [&alice, &bob] {
        let (s, _) = client
            .call(reqwest::Method::GET, "/api/llm-models", Some(t), None)
            .await;
        assert_eq!(s, 200);
    }

    let (ok, list, _) = cli(&["token", "list"], &data);
    assert!(ok);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let bob_line = lines.iter().find(|l| l.contains("user=bob")).unwrap();
    assert!(bob_line.contains("tenant=acme") && bob_line.contains("tenant_admin=true"));
    assert!(!bob_line.contains("expires=never") && bob_line.ends_with("valid"));
    assert!(
        !list.contains(&bob) && !list.contains(&alice),
        "tokens are never printed again"
    );

    // Revoked while the server runs: refused within a second.
    let id = bob_line.split_whitespace().next().unwrap();
    let (ok, out, err) = cli(&["token", "revoke", id], &data);
    assert!(ok && out.contains("revoked"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (s, _) = client
        .call(reqwest::Method::GET, "/api/llm-models", Some(&bob), None)
        .await;
    assert_eq!(s, 401, "a revoked token authenticates nobody");
    let (s, _) = client
        .call(reqwest::Method::GET, "/api/llm-models", Some(&alice), None)
        .await;
    assert_eq!(s, 200, "other tokens are untouched");
    let (ok, _, err) = cli(&["token", "revoke", id], &data);
    assert!(!ok && err.contains("no token"), "{err}");
    let (ok, _, _) = cli(&["token", "revoke", "--user", "alice"], &data);
    assert!(ok);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (s, _) = client
        .call(reqwest::Method::GET, "/api/llm-models", Some(&alice), None)
        .await;
    assert_eq!(s, 401);
    drop(server);
}
