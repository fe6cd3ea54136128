//! The one moto server launcher (DynamoDB and Secrets Manager emulator, through
//! `scripts/moto_server.py`): on a free loopback port, killed with the test process; shared per
//! process, or a server of its own that keeps its state across a restart (the reliability run).

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};

/// A running moto server.
#[derive(Debug, Clone)]
pub struct Moto {
    pub endpoint: String,
    addr: SocketAddr,
    /// Where the server saves its state on `save-and-exit` and reloads it from at start.
    state_file: Option<PathBuf>,
    pid: u32,
}

/// The moto server: `<workspace>/.venv/bin/python scripts/moto_server.py` (moto, installed by the
/// Makefile, with requests serialized; see that script), unless `MOTO_SERVER` names another
/// executable taking moto_server's arguments.
fn moto_command() -> (PathBuf, Vec<String>) {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return (PathBuf::from(path), Vec::new());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    (
        root.join(".venv/bin/python"),
        vec![root.join("scripts/moto_server.py").display().to_string()],
    )
}

/// What the owner thread does for a [`Moto`].
enum Request {
    Spawn {
        port: u16,
        state_file: Option<PathBuf>,
        reply: mpsc::Sender<Result<u32, String>>,
    },
    /// Waits for a server that is exiting by itself.
    Reap {
        pid: u32,
        within: Duration,
        reply: mpsc::Sender<Result<(), String>>,
    },
}

/// Every server is spawned by one thread that lives as long as the test process; each child is
/// asked to die with that thread (PR_SET_PDEATHSIG), so no server outlives the tests, whichever
/// runtime thread asked for it.
fn owner() -> &'static mpsc::Sender<Request> {
    static OWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    OWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("moto-owner".into())
            .spawn(move || {
                let mut children: HashMap<u32, Child> = HashMap::new();
                while let Ok(request) = rx.recv() {
                    match request {
                        Request::Spawn {
                            port,
                            state_file,
                            reply,
                        } => {
                            let started = spawn_on(port, state_file.as_deref()).map(|child| {
                                let pid = child.id();
                                children.insert(pid, child);
                                pid
                            });
                            let _ = reply.send(started);
                        }
                        Request::Reap { pid, within, reply } => {
                            let _ = reply.send(reap(children.remove(&pid), within));
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            panic!("could not start the moto owner thread: {e}");
        }
        tx
    })
}

fn ask<T>(request: impl FnOnce(mpsc::Sender<Result<T, String>>) -> Request) -> Result<T, String> {
    let (reply, answer) = mpsc::channel();
    owner()
        .send(request(reply))
        .map_err(|_| "the moto owner thread is gone".to_owned())?;
    answer
        .recv()
        .map_err(|_| "the moto owner thread ended without an answer".to_owned())?
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

    /// A server of its own, on a free port.
    pub fn start() -> Result<Moto, String> {
        Self::launch(None)
    }

    /// A server of its own that saves its state to `state_file` on [`Moto::restart`] and loads
    /// it when it starts again (DynamoDB and Secrets Manager do not lose data when a server
    /// restarts; moto, in memory, would).
    pub fn start_keeping_state(state_file: &Path) -> Result<Moto, String> {
        let _ = std::fs::remove_file(state_file);
        Self::launch(Some(state_file.to_owned()))
    }

    fn launch(state_file: Option<PathBuf>) -> Result<Moto, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let state = state_file.clone();
            match ask(|reply| Request::Spawn {
                port,
                state_file: state,
                reply,
            }) {
                Ok(pid) => {
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    return Ok(Moto {
                        endpoint: format!("http://{addr}"),
                        addr,
                        state_file,
                        pid,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Saves the state and stops the server (it exits inside that request, so no request is
    /// applied after the save), keeps it down for `down_for` (clients see refused connections),
    /// then starts it again on the same port with the saved state.
    pub async fn restart(&mut self, down_for: Duration) -> Result<(), String> {
        let Some(state_file) = self.state_file.clone() else {
            return Err(
                "this moto server keeps no state; start it with start_keeping_state".into(),
            );
        };
        // The server exits inside this request, so it gets no answer.
        let _ = http()
            .post(format!("{}/_moto_state/save-and-exit", self.endpoint))
            .send()
            .await;
        let pid = self.pid;
        tokio::task::spawn_blocking(move || {
            ask(|reply| Request::Reap {
                pid,
                within: Duration::from_secs(30),
                reply,
            })
        })
        .await
        .map_err(|e| e.to_string())??;
        if !state_file.exists() {
            return Err("moto exited without writing its state file".into());
        }
        tokio::time::sleep(down_for).await;
        let port = self.addr.port();
        self.pid = tokio::task::spawn_blocking(move || {
            ask(|reply| Request::Spawn {
                port,
                state_file: Some(state_file),
                reply,
            })
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(())
    }

    /// Injects a fault (see [`Fault`]).
    pub async fn inject(&self, fault: &Fault<'_>) -> Result<(), String> {
        let answer = http()
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
        http()
            .get(format!("{}/_moto_state/calls", self.endpoint))
            .send()
            .await
            .map_err(|e| format!("reading moto's call counts: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading moto's call counts: {e}"))
    }
}

/// A fault the server injects (`scripts/moto_server.py`): the next `times` requests of the
/// operation `target` (an X-Amz-Target, e.g. `DynamoDB_20120810.PutItem`) whose body contains
/// `contains` answer HTTP 500; with `after_applying` the request is applied first. With
/// `partial` (PutEvents), only the entries containing `contains` are refused in a 200 answer.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Fault<'a> {
    pub target: &'a str,
    pub contains: &'a str,
    #[serde(rename = "after")]
    pub after_applying: bool,
    pub times: u32,
    pub partial: bool,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn reap(child: Option<Child>, within: Duration) -> Result<(), String> {
    let Some(mut child) = child else {
        return Err("no such moto server".into());
    };
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("moto exited with {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                return Err("moto did not save its state and exit".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn spawn_on(port: u16, state_file: Option<&Path>) -> Result<Child, String> {
    let (exe, prefix) = moto_command();
    if !exe.exists() {
        return Err(format!(
            "{} not found: run `make test` (it installs the pinned moto into .venv) or set MOTO_SERVER",
            exe.display()
        ));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(&exe);
    command
        .args(&prefix)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(state_file) = state_file {
        command.env("MOTO_STATE_FILE", state_file);
    }
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
            return Ok(child);
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
    payout_aws::sdk::sdk_defaults()
        .endpoint_url(endpoint)
        .region(Region::new("ap-northeast-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .load()
        .await
}

/// A plain-HTTP client for the server's own endpoints (rustls' provider installed first, as
/// every process of the workspace does).
fn http() -> reqwest::Client {
    payout_aws::sdk::install_crypto();
    reqwest::Client::new()
}
