//! A moto server the reliability run can restart mid-run on the same port, keeping its state
//! through `scripts/moto_server.py`'s state file (DynamoDB and Secrets Manager do not lose data
//! when a server restarts; moto, in memory, would).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A moto server on a fixed loopback port with a state file.
#[derive(Debug)]
pub struct RestartableMoto {
    pub endpoint: String,
    addr: SocketAddr,
    state_file: PathBuf,
    child: Option<Child>,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl RestartableMoto {
    /// Starts a server on a free port, keeping its state in `state_dir`.
    pub async fn start(state_dir: &Path) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut moto = Self {
            endpoint: format!("http://{addr}"),
            addr,
            state_file: state_dir.join("moto-state.pickle"),
            child: None,
        };
        let _ = std::fs::remove_file(&moto.state_file);
        moto.spawn().await?;
        Ok(moto)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let python = workspace().join(".venv/bin/python");
        if !python.exists() {
            return Err(format!(
                "{} not found: run `make venv` (it installs the pinned moto)",
                python.display()
            ));
        }
        let mut child = Command::new(python)
            .arg(workspace().join("scripts/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .env("MOTO_STATE_FILE", &self.state_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start moto: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("moto exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("moto did not accept connections within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves the state and stops the server, keeps it down for `down_for` (clients see refused
    /// connections), then starts it again on the same port with the saved state.
    pub async fn restart(&mut self, down_for: Duration) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Err("moto is not running".into());
        };
        // The server exits inside this request, so it gets no answer.
        let _ = reqwest::Client::new()
            .post(format!("{}/_moto_state/save-and-exit", self.endpoint))
            .send()
            .await;
        let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        if !matches!(exited, Ok(Ok(status)) if status.success()) {
            let _ = child.kill().await;
            return Err(format!("moto did not save its state and exit: {exited:?}"));
        }
        if !self.state_file.exists() {
            return Err("moto exited without writing its state file".into());
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await
    }
}
