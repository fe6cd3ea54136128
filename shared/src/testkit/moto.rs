//! A moto server (DynamoDB and Secrets Manager emulator) on a free loopback port, started once
//! per test process and killed with it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// A running moto server.
#[derive(Debug, Clone)]
pub struct Moto {
    pub endpoint: String,
}

/// The moto server: `<workspace>/.venv/bin/python scripts/moto_server.py` (moto, installed by the
/// Makefile, with requests serialized; see that script), unless `MOTO_SERVER` names another
/// executable taking moto_server's arguments.
fn moto_command() -> (PathBuf, Vec<String>) {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return (PathBuf::from(path), Vec::new());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    (
        root.join(".venv/bin/python"),
        vec![root.join("scripts/moto_server.py").display().to_string()],
    )
}

impl Moto {
    /// The process-wide server, started on first use.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| match Self::start() {
            Ok(moto) => moto,
            Err(message) => panic!("{message}"),
        })
    }

    /// Starts a server owned by a thread that lives as long as the test process; the child is
    /// asked to die with that thread (PR_SET_PDEATHSIG), so no server outlives the tests.
    pub fn start() -> Result<Moto, String> {
        let (exe, prefix) = moto_command();
        if !exe.exists() {
            return Err(format!(
                "{} not found: run `make test` (it installs the pinned moto into .venv) or set MOTO_SERVER",
                exe.display()
            ));
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("moto-server".into())
            .spawn(move || {
                let started = (0..3).find_map(|_| spawn_on_free_port(&exe, &prefix).ok());
                match started {
                    Some((child, addr)) => {
                        let _ = tx.send(Ok(addr));
                        // Keep the owning thread (and so the child) alive for the whole process.
                        let _child: Child = child;
                        loop {
                            std::thread::park();
                        }
                    }
                    None => {
                        let _ = tx.send(Err(spawn_on_free_port(&exe, &prefix)
                            .err()
                            .unwrap_or_default()));
                    }
                }
            })
            .map_err(|e| format!("could not start the moto thread: {e}"))?;
        let addr = rx
            .recv()
            .map_err(|_| "the moto thread ended without an answer".to_owned())??;
        Ok(Moto {
            endpoint: format!("http://{addr}"),
        })
    }
}

/// A fault the server injects (`scripts/moto_server.py`): the next `times` requests of the
/// operation `target` (an X-Amz-Target, e.g. `DynamoDB_20120810.PutItem`) whose body contains
/// `contains` answer HTTP 500; with `after_applying` the request is applied first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fault<'a> {
    pub target: &'a str,
    pub contains: &'a str,
    #[serde(rename = "after")]
    pub after_applying: bool,
    pub times: u32,
}

impl Moto {
    pub async fn inject(&self, fault: &Fault<'_>) -> Result<(), String> {
        let answer = reqwest::Client::new()
            .post(format!("{}/_moto_state/faults", self.endpoint))
            .json(fault)
            .send()
            .await
            .map_err(|e| format!("injecting a fault: {e}"))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("injecting a fault: HTTP {}", answer.status()))
        }
    }

    /// Requests per operation the server answered (by X-Amz-Target).
    pub async fn calls(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        reqwest::Client::new()
            .get(format!("{}/_moto_state/calls", self.endpoint))
            .send()
            .await
            .map_err(|e| format!("reading moto's call counts: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading moto's call counts: {e}"))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn spawn_on_free_port(exe: &PathBuf, prefix: &[String]) -> Result<(Child, SocketAddr), String> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(exe);
    command
        .args(prefix)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent_thread(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not run {}: {e}", exe.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Drain stderr in the background so the server never blocks on a full pipe.
            if let Some(mut stderr) = child.stderr.take() {
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = stderr.read_to_end(&mut sink);
                });
            }
            return Ok((child, addr));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            return Err(format!("moto server exited with {status}: {err}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("moto server did not accept connections within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(unsafe_code)]
fn die_with_parent_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own process state.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SDK configuration pointing every client at `endpoint`, with a region and fake credentials.
pub async fn aws_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("ap-northeast-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .load()
        .await
}
