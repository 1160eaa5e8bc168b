//! A ministack of the test's own, which it can stop and start again: on a free loopback
//! port, with `PERSIST_STATE=1` so that what it held is saved to a state directory when
//! it is stopped (SIGTERM: a graceful shutdown) and loaded when it starts again on the
//! same port. Stopped by its PID, and killed if the test ends first.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Ministack {
    port: u16,
    state: tempfile::TempDir,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    std::env::var_os("MINISTACK_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/ministack"),
        PathBuf::from,
    )
}

impl Ministack {
    pub async fn start() -> Ministack {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut m = Ministack {
            port,
            state: tempfile::tempdir().unwrap(),
            child: None,
        };
        m.up().await;
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it on its port, loading the saved state, and waits until it answers.
    pub async fn up(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.state.path().join("ministack.log")).unwrap();
        let child = Command::new(binary())
            .env("BIND_HOST", "127.0.0.1")
            .env("GATEWAY_PORT", self.port.to_string())
            .env("PERSIST_STATE", "1")
            .env("STATE_DIR", self.state.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run tools/venv.sh)", binary().display()));
        self.child = Some(child);
        let health = format!("{}/_ministack/health", self.url());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ministack on port {} did not start", self.port);
    }

    /// Stops it with SIGTERM (it saves its state on the way out) and waits for it.
    pub async fn down(&mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ministack did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
