//! Runs a real function binary under a Lambda Runtime API of our own, behind a small HTTP front
//! that turns each HTTP request into an API Gateway HTTP API (v2) event and the function's
//! answer back into HTTP. Several processes can serve one function (like concurrent sandboxes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// How long one invocation may take before the front answers 504.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace's `target/debug/<name>`, built by `make test` before the tests run.
pub fn binary(name: &str) -> PathBuf {
    binary_in("debug", name)
}

/// The workspace's `target/<profile>/<name>`.
pub fn binary_in(profile: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join(profile).join(name)
}

/// Where the function's answer (or its error) goes.
type Reply = oneshot::Sender<Result<Vec<u8>, String>>;

struct Invocation {
    event: Vec<u8>,
    reply: Reply,
}

/// An invocation a process has taken and not answered yet.
struct Taken {
    reply: Reply,
    /// Which process took it (its index among the function's processes).
    instance: usize,
    event: Bytes,
    /// Another invocation with the very same event that a second process had in hand when this
    /// one was taken (a duplicate delivery at once).
    twin: Option<String>,
}

struct RuntimeApi {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pending: Mutex<HashMap<String, Taken>>,
    /// Events two processes had in hand at once, both answered.
    twins_answered: AtomicU64,
    /// How many `next` calls have arrived: the first one means init finished.
    polls: watch::Sender<u64>,
    /// When the first `next` call arrived.
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
}

/// The runtime API as one process sees it: each process has an address of its own, so what it
/// takes is known to be its own (a killed process's invocations stay in its hand).
#[derive(Clone)]
struct Runtime {
    api: Arc<RuntimeApi>,
    instance: usize,
}

/// A function served by one or more processes.
pub struct Function {
    /// The HTTP front, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    logs: Arc<Mutex<Vec<u8>>>,
    sender: mpsc::UnboundedSender<Invocation>,
    children: Vec<Child>,
    spawned: Instant,
    api: Arc<RuntimeApi>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("url", &self.url).finish()
    }
}

impl Function {
    /// Starts `instances` processes of `binary` with `env` and waits until each has finished
    /// init (asked for its first event) or failed.
    pub async fn start(
        binary: PathBuf,
        name: &str,
        env: &[(String, String)],
        instances: usize,
    ) -> Result<Self, String> {
        Self::start_program(binary, &[], name, env, instances).await
    }

    /// [`Function::start`] for a program run with arguments (e.g. an interpreter and a
    /// script: the bench's Python yardstick).
    pub async fn start_program(
        binary: PathBuf,
        args: &[String],
        name: &str,
        env: &[(String, String)],
        instances: usize,
    ) -> Result<Self, String> {
        if !binary.exists() {
            return Err(format!(
                "{} is missing: run `make test` (it builds the function binaries first)",
                binary.display()
            ));
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let (polls, mut polled) = watch::channel(0u64);
        let api = Arc::new(RuntimeApi {
            queue: tokio::sync::Mutex::new(receiver),
            pending: Mutex::default(),
            polls,
            first_poll: Mutex::default(),
            init_error: Mutex::default(),
            twins_answered: AtomicU64::new(0),
        });
        let front_addr = serve(Router::new().fallback(front).with_state(sender.clone())).await?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut children = Vec::new();
        let spawned = Instant::now();
        for instance in 0..instances {
            let runtime_addr = serve(
                Router::new()
                    .route("/2018-06-01/runtime/invocation/next", get(next))
                    .route(
                        "/2018-06-01/runtime/invocation/{id}/response",
                        post(respond),
                    )
                    .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
                    .route("/2018-06-01/runtime/init/error", post(init_error))
                    .with_state(Runtime {
                        api: api.clone(),
                        instance,
                    }),
            )
            .await?;
            let mut command = Command::new(&binary);
            command
                .args(args)
                .env_remove("RUST_LOG")
                .env("AWS_LAMBDA_RUNTIME_API", runtime_addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = command
                .spawn()
                .map_err(|e| format!("could not run {}: {e}", binary.display()))?;
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let logs = logs.clone();
                let name = name.to_owned();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(pipe).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if std::env::var_os("E2E_ECHO_LOGS").is_some() {
                            eprintln!("[{name}] {line}");
                        }
                        let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
                        logs.extend_from_slice(line.as_bytes());
                        logs.push(b'\n');
                    }
                });
            }
            children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(error) = api
                .init_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return Err(format!("{name} failed init: {error}"));
            }
            for child in &mut children {
                if let Ok(Some(status)) = child.try_wait() {
                    let text = String::from_utf8_lossy(
                        &logs.lock().unwrap_or_else(PoisonError::into_inner),
                    )
                    .into_owned();
                    return Err(format!("{name} exited with {status}: {text}"));
                }
            }
            // Each process asks for its first event once init is done.
            if *polled.borrow() >= instances as u64 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not finish init within 30 s"));
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), polled.changed()).await;
        }
        Ok(Self {
            url: format!("http://{front_addr}"),
            logs,
            sender,
            children,
            spawned,
            api,
        })
    }

    /// From starting the first process until a process first asked for an event (its init).
    pub fn init_time(&self) -> Option<Duration> {
        let first = *self
            .api
            .first_poll
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.map(|at| at.duration_since(self.spawned))
    }

    /// The process ids, e.g. to read their CPU time and peak memory from `/proc`.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// The events the process `pid` has taken and not answered: for a process that was killed,
    /// what it held when it died (it never answers them).
    pub fn in_hand(&self, pid: u32) -> Vec<Value> {
        let Some(instance) = self.children.iter().position(|c| c.id() == Some(pid)) else {
            return Vec::new();
        };
        self.api
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|taken| taken.instance == instance)
            .filter_map(|taken| serde_json::from_slice(&taken.event).ok())
            .collect()
    }

    /// How many times two processes had the very same event in hand at once and both answered
    /// it (a duplicate delivered concurrently, as SQS may).
    pub fn twins_answered(&self) -> u64 {
        self.api.twins_answered.load(Ordering::Relaxed)
    }

    /// Everything the processes wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Invokes the function directly with a raw event (e.g. a scheduled event).
    pub async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Invocation {
                event: event.to_string().into_bytes(),
                reply,
            })
            .map_err(|_| "the function is gone".to_owned())?;
        let bytes = tokio::time::timeout(INVOCATION_TIMEOUT, answer)
            .await
            .map_err(|_| "invocation timed out".to_owned())?
            .map_err(|_| "invocation dropped".to_owned())??;
        serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON: {e}"))
    }

    /// Stops every process now.
    pub async fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

async fn serve(router: Router) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("no free loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

async fn next(State(Runtime { api, instance }): State<Runtime>) -> Response {
    api.first_poll
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(Instant::now);
    api.polls.send_modify(|n| *n += 1);
    let invocation = api.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let id = uuid::Uuid::new_v4().to_string();
    let event = Bytes::from(invocation.event);
    {
        let mut pending = api.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let twin = pending
            .iter_mut()
            .find(|(_, other)| other.instance != instance && other.event == event)
            .map(|(other_id, other)| {
                other.twin = Some(id.clone());
                other_id.clone()
            });
        pending.insert(
            id.clone(),
            Taken {
                reply: invocation.reply,
                instance,
                event: event.clone(),
                twin,
            },
        );
    }
    let deadline = chrono::Utc::now().timestamp_millis() + INVOCATION_TIMEOUT.as_millis() as i64;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("lambda-runtime-aws-request-id", id);
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:ap-northeast-1:123456789012:function:local".into(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    put("content-type", "application/json".into());
    (headers, event).into_response()
}

fn settle(api: &RuntimeApi, id: &str, result: Result<Vec<u8>, String>) -> StatusCode {
    let mut pending = api.pending.lock().unwrap_or_else(PoisonError::into_inner);
    match pending.remove(id) {
        Some(taken) => {
            // The second of two twins to be answered counts the pair.
            if taken.twin.is_some_and(|twin| !pending.contains_key(&twin)) {
                api.twins_answered.fetch_add(1, Ordering::Relaxed);
            }
            drop(pending);
            let _ = taken.reply.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn respond(
    State(Runtime { api, .. }): State<Runtime>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&api, &id, Ok(body.to_vec()))
}

async fn fail(
    State(Runtime { api, .. }): State<Runtime>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&api, &id, Err(String::from_utf8_lossy(&body).into_owned()))
}

async fn init_error(State(Runtime { api, .. }): State<Runtime>, body: Bytes) -> StatusCode {
    *api.init_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) =
        Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// The API Gateway front: HTTP request → v2 event → function → HTTP response.
async fn front(
    State(sender): State<mpsc::UnboundedSender<Invocation>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 10 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let event = api_gateway_event(&parts, &body);
    let (reply, answer) = oneshot::channel();
    if sender
        .send(Invocation {
            event: event.to_string().into_bytes(),
            reply,
        })
        .is_err()
    {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let bytes = match tokio::time::timeout(INVOCATION_TIMEOUT, answer).await {
        Ok(Ok(Ok(bytes))) => bytes,
        Ok(Ok(Err(_))) | Ok(Err(_)) => return StatusCode::BAD_GATEWAY.into_response(),
        Err(_) => return StatusCode::GATEWAY_TIMEOUT.into_response(),
    };
    http_response(&bytes)
}

/// `queryStringParameters` as API Gateway's HTTP API gives them: names and values
/// percent-decoded (`+` stays a plus), a name given twice holding its values joined by commas.
fn query_parameters(query: &str) -> serde_json::Map<String, Value> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        let joined = match params.get(&k).and_then(Value::as_str) {
            Some(earlier) => format!("{earlier},{v}"),
            None => v,
        };
        params.insert(k, Value::from(joined));
    }
    params
}

fn api_gateway_event(parts: &axum::http::request::Parts, body: &[u8]) -> Value {
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_owned(), Value::from(v));
        }
    }
    let params = query_parameters(&query);
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (Value::from(text), false),
        Err(_) => (
            Value::from(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("")
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": encoded
    });
    if !params.is_empty() {
        event["queryStringParameters"] = Value::Object(params);
    }
    if !body.as_str().is_some_and(str::is_empty) {
        event["body"] = body;
    }
    event
}

fn http_response(bytes: &[u8]) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let text = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for source in ["headers", "multiValueHeaders"] {
        if let Some(map) = answer[source].as_object() {
            for (name, value) in map {
                let values: Vec<&str> = match value {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if let (Ok(name), Some(first)) =
                    (HeaderName::from_bytes(name.as_bytes()), values.first())
                    && let Ok(v) = HeaderValue::from_str(first)
                {
                    response.headers_mut().insert(name, v);
                }
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_as_api_gateway_decodes_them() {
        let params = query_parameters("refresh=true&note=a%20b%2Bc+d&x=1&x=2&empty");
        assert_eq!(params["refresh"], "true");
        assert_eq!(params["note"], "a b+c+d");
        assert_eq!(params["x"], "1,2");
        assert_eq!(params["empty"], "");
    }
}
