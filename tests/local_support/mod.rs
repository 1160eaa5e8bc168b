//! Running the built `llm-local` binary in tests: start it on a free loopback port,
//! create tokens with its CLI, call it over HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_llm-local");

/// A running server, killed (by its own PID) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(data_dir: &Path, log: &Path) -> Server {
    start_with_env(data_dir, log, &[])
}

pub fn start_with_env(data_dir: &Path, log: &Path, env: &[(&str, String)]) -> Server {
    spawn_serve(Command::new(BIN), data_dir, log, env)
}

/// Runs `command` (the binary itself, or a wrapper that `exec`s it with `$0` = the
/// binary, e.g. under `ulimit`) with `serve` on a free loopback port, and waits for the
/// address it prints.
pub fn spawn_serve(
    mut command: Command,
    data_dir: &Path,
    log: &Path,
    env: &[(&str, String)],
) -> Server {
    let stderr = std::fs::File::create(log).unwrap();
    let mut child = command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("LLM_LOCAL_MASTER_KEY")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let base = line
        .trim()
        .strip_prefix("llm-local listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Server { child, base }
}

pub fn token(data_dir: &Path, user: &str, admin: bool) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["token", "create", "--user", user, "--data-dir"])
        .arg(data_dir);
    if admin {
        cmd.arg("--admin");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "token create prints one line: {stdout:?}");
    assert!(lines[0].starts_with("llmk_"));
    lines[0].to_owned()
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub bodies: Vec<String>,
}

impl Client {
    pub async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.bodies.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
