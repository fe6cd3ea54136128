//! `make bench`: init time, warm CPU per request, AWS calls per operation, peak memory and
//! deployment zip sizes of the three functions, printed as a table against the targets.
//!
//! Expects `cargo build --release --bins` (x86-64 binaries for timing) and
//! `cargo lambda build --release --arm64 --output-format zip` (the deployment zips) to have run:
//! `make bench` does both.

// A command-line tool: the table goes to standard output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lambda_http::Request;
use payout_app::apply::Schedule;
use payout_app::secrets::{DEFAULT_PREVIOUS_SECRET_GRACE, Keyring, MIN_REFRESH_INTERVAL};
use payout_domain::order::{Order, OrderStatus};
use payout_domain::{PayoutRequest, TradeNo};
use payout_e2e::lambda::{Function, binary_in};
use payout_e2e::stack::{Stack, StackConfig};
use payout_testkit::{EchoGateway, InMemoryStore, Moto, NoMetrics, payout_json, signed_json};
use serde_json::Value;

const FUNCTIONS: [&str; 3] = ["submit-payout", "payout-webhook", "reconcile-payouts"];
const SECRET: &str = "bench-app-secret";
const INIT_STARTS: usize = 21;
const CPU_REQUESTS: usize = 10_000;
const WARM_REQUESTS: usize = 1_000;

type Result<T> = std::result::Result<T, String>;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One row of the table.
struct Row {
    what: String,
    measured: String,
    target: String,
    verdict: String,
}

fn row(
    what: impl Into<String>,
    measured: impl Into<String>,
    target: &str,
    met: Option<bool>,
) -> Row {
    Row {
        what: what.into(),
        measured: measured.into(),
        target: target.into(),
        verdict: match met {
            Some(true) => "met".into(),
            Some(false) => "MISSED".into(),
            None => String::new(),
        },
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

// ---- warm CPU, in process ------------------------------------------------------------------

/// CPU time of the calling thread (excludes time blocked on I/O, and other threads).
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn event(fixture: &str, body: &str) -> Result<String> {
    let mut e: Value = serde_json::from_str(fixture).map_err(|e| e.to_string())?;
    e["body"] = body.into();
    Ok(e.to_string())
}

/// Median and p99 CPU µs over `events`, each parsed as API Gateway would hand it over and
/// answered by `handle`.
fn cpu_per_request<F, Fut>(events: &[String], mut handle: F) -> Result<(f64, f64)>
where
    F: FnMut(Request) -> Fut,
    Fut: std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut micros = Vec::with_capacity(events.len());
    for event in events {
        let started = thread_cpu();
        let request =
            lambda_http::request::from_str(event).map_err(|e| format!("bad event: {e}"))?;
        let response = runtime.block_on(handle(request));
        let status = response.status().as_u16();
        std::hint::black_box(response.body().as_ref().len());
        micros.push((thread_cpu() - started).as_secs_f64() * 1e6);
        if !(200..300).contains(&status) {
            return Err(format!("the benchmark request was answered {status}"));
        }
    }
    micros.sort_by(f64::total_cmp);
    Ok((percentile(&micros, 0.5), percentile(&micros, 0.99)))
}

fn submit_cpu() -> Result<(f64, f64)> {
    let fixture = include_str!("../../../functions/submit-payout/events/post-payout.json");
    let app = submit_payout::handler::App {
        store: InMemoryStore::new(),
        gateway: EchoGateway,
        secrets: payout_testkit::secrets(SECRET),
        metrics: NoMetrics,
        notify_url: url::Url::parse("https://api.example.jp/vexora/notify")
            .map_err(|e| e.to_string())?,
        abandoned_after: chrono::Duration::seconds(28),
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        clock: chrono::Utc::now,
        balance: payout_app::balance::BalanceCache::default(),
        queue: None::<payout_testkit::MemoryQueue>,
    };
    let events = (0..CPU_REQUESTS)
        .map(|i| event(fixture, &payout_json(&format!("BENCH-{i:06}"), 1500)))
        .collect::<Result<Vec<_>>>()?;
    cpu_per_request(&events, |r| submit_payout::handler::handle(&app, r))
}

fn webhook_cpu() -> Result<(f64, f64)> {
    let fixture = include_str!("../../../functions/payout-webhook/events/notify.json");
    let store = InMemoryStore::new();
    let payout = PayoutRequest::from_json(payout_json("BENCH", 1500).as_bytes())
        .map_err(|e| format!("{e:?}"))?;
    let now = chrono::Utc::now();
    let mut events = Vec::with_capacity(CPU_REQUESTS);
    for i in 0..CPU_REQUESTS {
        let trade_no = format!("BENCH-{i:06}");
        let mut order = Order::pending(
            TradeNo::parse(&trade_no).map_err(|e| format!("{e:?}"))?,
            &payout,
            now,
            now,
        );
        order.status = OrderStatus::Processing;
        store.insert(order);
        let body = signed_json(
            &[
                ("tradeNo", trade_no.as_str()),
                ("platFormTradeNo", &format!("PF-{trade_no}")),
                ("amount", "1500.00"),
                ("status", "0000"),
                ("message", "success"),
                ("successTime", "2026-11-25 12:00:00"),
                ("timestamp", &now.timestamp_millis().to_string()),
            ],
            SECRET,
        );
        events.push(event(fixture, &body)?);
    }
    let keyring = Keyring::new(
        payout_testkit::secrets(SECRET),
        DEFAULT_PREVIOUS_SECRET_GRACE,
        MIN_REFRESH_INTERVAL,
    );
    let app = payout_webhook::handler::App {
        store,
        keyring,
        metrics: NoMetrics,
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        clock: chrono::Utc::now,
    };
    cpu_per_request(&events, |r| payout_webhook::handler::handle(&app, r))
}

// ---- the release binaries against moto and the sandbox -------------------------------------

/// AWS calls made on `moto` while `work` ran, by operation.
async fn count<F: std::future::Future<Output = Result<()>>>(
    moto: &Moto,
    work: F,
) -> Result<BTreeMap<String, u64>> {
    let before = moto.calls().await?;
    work.await?;
    let after = moto.calls().await?;
    Ok(after
        .into_iter()
        .map(|(k, v)| {
            let d = v - before.get(&k).copied().unwrap_or(0);
            (k.rsplit('.').next().unwrap_or(&k).to_owned(), d)
        })
        .filter(|(_, d)| *d > 0)
        .collect())
}

fn describe(calls: &BTreeMap<String, u64>) -> (u64, String) {
    let total = calls.values().sum();
    let text = if calls.is_empty() {
        "0".to_owned()
    } else {
        format!(
            "{total} ({})",
            calls
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    (total, text)
}

/// CPU seconds (user + system) and peak RSS (kB) of a process, from `/proc`.
fn proc_usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .ok_or("short /proc stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    #[allow(unsafe_code)]
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmHWM")?;
    Ok((ticks as f64 / hz, hwm))
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<u16> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// CPU per request of the whole process and client-side latency over a warm phase.
#[derive(Debug, Clone, Copy)]
struct Warm {
    cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `one(i)` for `i` in `0..WARM_REQUESTS`, one after another, measuring the process `pid`.
async fn phase<F, Fut>(pid: u32, mut one: F) -> Result<Warm>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (before, _) = proc_usage(pid)?;
    let mut millis = Vec::with_capacity(WARM_REQUESTS);
    for i in 0..WARM_REQUESTS {
        let started = Instant::now();
        one(i).await?;
        millis.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (after, _) = proc_usage(pid)?;
    millis.sort_by(f64::total_cmp);
    Ok(Warm {
        cpu_us: (after - before) / WARM_REQUESTS as f64 * 1e6,
        p50_ms: percentile(&millis, 0.5),
        p99_ms: percentile(&millis, 0.99),
    })
}

async fn webhook_acknowledged(stack: &Stack, trade_no: &str) -> Result<()> {
    match stack.sandbox.send_webhook(trade_no, "0000").await {
        Some(d) if d.acknowledged => Ok(()),
        other => Err(format!(
            "webhook for {trade_no} not acknowledged: {other:?}"
        )),
    }
}

/// New payouts through `submit`, their success notifications to `webhook` (sent by the
/// sandbox to the notify URL `submit` gave), then the same notifications again.
async fn warm_run(
    stack: &Stack,
    http: &reqwest::Client,
    submit: &Function,
    webhook: &Function,
    prefix: &str,
) -> Result<Vec<Warm>> {
    let submit_url = format!("{}/payouts", submit.url);
    let trade_no = |i: usize| format!("{prefix}{i:05}");
    let new = phase(submit.pids()[0], |i| {
        let body = payout_json(&trade_no(i), 1500);
        let url = submit_url.clone();
        async move {
            match post(http, &url, body).await? {
                201 => Ok(()),
                other => Err(format!("warm submit answered {other}")),
            }
        }
    })
    .await?;
    let success = phase(webhook.pids()[0], |i| {
        let t = trade_no(i);
        async move { webhook_acknowledged(stack, &t).await }
    })
    .await?;
    let duplicate = phase(webhook.pids()[0], |i| {
        let t = trade_no(i);
        async move { webhook_acknowledged(stack, &t).await }
    })
    .await?;
    Ok(vec![new, success, duplicate])
}

const PYTHON_INIT_STARTS: usize = 5;

/// The Python + boto3 implementation (`bench/payouts.py`) on the same harness, moto and
/// sandbox.
struct Yardstick {
    warm: Vec<Warm>,
    rss_mb: [f64; 2],
    init_ms: [f64; 2],
}

async fn python_yardstick(stack: &Stack, http: &reqwest::Client) -> Result<Yardstick> {
    let python = workspace().join(".venv/bin/python");
    let script = workspace().join("bench/payouts.py").display().to_string();
    let start = |name: &'static str, notify: String| {
        let env = stack.env(&notify);
        let (python, script) = (python.clone(), script.clone());
        async move { Function::start_program(python, &[script, name.to_owned()], name, &env, 1).await }
    };
    let mut init_ms = [0.0; 2];
    for (i, name) in ["submit-payout", "payout-webhook"].into_iter().enumerate() {
        let mut times = Vec::new();
        for _ in 0..PYTHON_INIT_STARTS {
            let mut f = start(name, "http://127.0.0.1/n".into()).await?;
            times.push(f.init_time().ok_or("no init time")?.as_secs_f64() * 1000.0);
            f.stop().await;
        }
        times.sort_by(f64::total_cmp);
        init_ms[i] = percentile(&times, 0.5);
    }
    let mut webhook = start("payout-webhook", "http://127.0.0.1/unused".into()).await?;
    let mut submit = start("submit-payout", format!("{}/vexora/notify", webhook.url)).await?;
    // Warm up as the Rust functions were.
    post(
        http,
        &format!("{}/payouts", submit.url),
        payout_json("PY-WARMUP", 1500),
    )
    .await?;
    webhook_acknowledged(stack, "PY-WARMUP").await?;
    let warm = warm_run(stack, http, &submit, &webhook, "PY-W").await?;
    let rss_mb = [
        proc_usage(submit.pids()[0])?.1 as f64 / 1024.0,
        proc_usage(webhook.pids()[0])?.1 as f64 / 1024.0,
    ];
    submit.stop().await;
    webhook.stop().await;
    Ok(Yardstick {
        warm,
        rss_mb,
        init_ms,
    })
}

#[allow(clippy::too_many_lines)] // the table, top to bottom
async fn bench() -> Result<Vec<Row>> {
    for name in FUNCTIONS {
        if !binary_in("release", name).exists() {
            return Err(format!(
                "target/release/{name} is missing: run `make bench`"
            ));
        }
    }
    let mut rows = Vec::new();
    // The release binaries against a moto server of their own and the sandbox; webhooks are sent
    // by the benchmark itself, never by the sandbox's schedule. JSON log lines go to a pipe, as
    // in Lambda; debug lines stay off.
    let moto = Moto::start()?;
    let mut config = StackConfig::new(&moto, SECRET);
    config.profile = "release";
    config.sandbox.processing_time = Duration::from_secs(24 * 3600);
    let stack = Stack::spawn(config).await?;

    // Init: process start until the first request for an event.
    for name in FUNCTIONS {
        let mut times = Vec::new();
        for _ in 0..INIT_STARTS {
            let mut f = Function::start(
                binary_in("release", name),
                name,
                &stack.env("http://127.0.0.1/n"),
                1,
            )
            .await?;
            times.push(f.init_time().ok_or("no init time")?.as_secs_f64() * 1000.0);
            f.stop().await;
        }
        times.sort_by(f64::total_cmp);
        let median = percentile(&times, 0.5);
        rows.push(row(
            format!("init, {name} (median of {INIT_STARTS} starts)"),
            format!(
                "{median:.1} ms (min {:.1}, max {:.1})",
                times[0],
                times[times.len() - 1]
            ),
            "≤ 25 ms",
            Some(median <= 25.0),
        ));
    }

    // The release binaries, warm.
    let (webhook, submit) = (&stack.webhook, &stack.submit);
    let http = reqwest::Client::new();
    let submit_url = format!("{}/payouts", submit.url);
    // Warm up: the first request opens connections.
    post(&http, &submit_url, payout_json("BENCH-WARMUP", 1500)).await?;
    stack.sandbox.send_webhook("BENCH-WARMUP", "0000").await;

    let new_calls = count(&moto, async {
        match post(&http, &submit_url, payout_json("BENCH-CALLS", 1500)).await? {
            201 => Ok(()),
            other => Err(format!("new submit answered {other}")),
        }
    })
    .await?;
    let duplicate_calls = count(&moto, async {
        match post(&http, &submit_url, payout_json("BENCH-CALLS", 1500)).await? {
            200 => Ok(()),
            other => Err(format!("duplicate submit answered {other}")),
        }
    })
    .await?;
    let webhook_calls = count(&moto, webhook_acknowledged(&stack, "BENCH-CALLS")).await?;
    let duplicate_webhook_calls = count(&moto, webhook_acknowledged(&stack, "BENCH-CALLS")).await?;
    for (what, calls, target) in [
        ("AWS calls, new submit", &new_calls, 2),
        ("AWS calls, duplicate submit", &duplicate_calls, 1),
        ("AWS calls, webhook", &webhook_calls, 1),
        ("AWS calls, duplicate webhook", &duplicate_webhook_calls, 1),
    ] {
        let (total, text) = describe(calls);
        rows.push(row(what, text, &target.to_string(), Some(total == target)));
    }

    // A warm run of each: new payouts, their success notifications, the same notifications
    // again (duplicates); then the same three with the Python + boto3 yardstick.
    let mut rust = Vec::new();
    let warm_calls = count(&moto, async {
        rust = warm_run(&stack, &http, submit, webhook, "BENCH-W").await?;
        Ok(())
    })
    .await?;
    let secrets = warm_calls.get("GetSecretValue").copied().unwrap_or(0);
    rows.push(row(
        format!("Secrets Manager calls, {} warm requests", 3 * WARM_REQUESTS),
        secrets.to_string(),
        "0",
        Some(secrets == 0),
    ));
    let python = python_yardstick(&stack, &http).await?;
    for (i, (what, cpu_target)) in [
        ("submit-payout, new payout", Some(400.0)),
        ("payout-webhook, success notification", Some(400.0)),
        ("payout-webhook, duplicate notification", None),
    ]
    .into_iter()
    .enumerate()
    {
        let (r, py) = (&rust[i], &python.warm[i]);
        rows.push(row(
            format!("CPU per request, whole process, {what} (mean of {WARM_REQUESTS})"),
            format!(
                "{:.0} µs; Python + boto3 {:.0} µs ({:.1}× less)",
                r.cpu_us,
                py.cpu_us,
                py.cpu_us / r.cpu_us
            ),
            if cpu_target.is_some() {
                "≤ 400 µs"
            } else {
                ""
            },
            cpu_target.map(|t| r.cpu_us <= t),
        ));
        rows.push(row(
            format!("latency through the runtime API, {what} (of {WARM_REQUESTS})"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms; Python + boto3 p50 {:.2} ms, p99 {:.2} ms",
                r.p50_ms, r.p99_ms, py.p50_ms, py.p99_ms
            ),
            "reported",
            None,
        ));
    }
    for (name, pid, py_rss) in [
        ("submit-payout", submit.pids()[0], python.rss_mb[0]),
        ("payout-webhook", webhook.pids()[0], python.rss_mb[1]),
    ] {
        let (_, rss) = proc_usage(pid)?;
        let mb = rss as f64 / 1024.0;
        rows.push(row(
            format!(
                "peak RSS, {name} (after {} warm requests)",
                2 * WARM_REQUESTS
            ),
            format!("{mb:.1} MB; Python + boto3 {py_rss:.1} MB"),
            "≤ 30 MB",
            Some(mb <= 30.0),
        ));
    }
    for (i, name) in ["submit-payout", "payout-webhook"].into_iter().enumerate() {
        let py = python.init_ms[i];
        rows.push(row(
            format!("init, {name}, Python + boto3 (median of {PYTHON_INIT_STARTS} starts)"),
            format!("{py:.0} ms"),
            "reported",
            None,
        ));
    }
    let reconcile = &stack.reconcile;
    let event: Value = serde_json::from_str(include_str!(
        "../../../functions/reconcile-payouts/events/schedule.json"
    ))
    .map_err(|e| e.to_string())?;
    reconcile.invoke(&event).await?;
    let (_, rss) = proc_usage(reconcile.pids()[0])?;
    let mb = rss as f64 / 1024.0;
    rows.push(row(
        "peak RSS, reconcile-payouts (after a run)",
        format!("{mb:.1} MB"),
        "≤ 30 MB",
        Some(mb <= 30.0),
    ));

    // Deployment zips.
    for name in FUNCTIONS {
        let zip = workspace().join(format!("target/lambda/{name}/bootstrap.zip"));
        let Ok(meta) = std::fs::metadata(&zip) else {
            rows.push(row(
                format!("zip, {name} (arm64)"),
                "not built (`make bench` builds it)",
                "≤ 3.3 MB",
                Some(false),
            ));
            continue;
        };
        let size = meta.len();
        let mb = size as f64 / 1e6;
        rows.push(row(
            format!("zip, {name} (arm64)"),
            format!("{size} B ({mb:.2} MB)"),
            "≤ 3.3 MB",
            Some(mb <= 3.3),
        ));
    }
    Ok(rows)
}

/// Warm CPU in process, on this thread (before any async runtime exists).
fn cpu_rows() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (median, p99) = submit_cpu()?;
    rows.push(row(
        format!("CPU per submit, in process ({CPU_REQUESTS} new payouts)"),
        format!("median {median:.1} µs, p99 {p99:.1} µs"),
        "≤ 120 µs",
        Some(median <= 120.0),
    ));
    let (median, p99) = webhook_cpu()?;
    rows.push(row(
        format!("CPU per webhook, in process ({CPU_REQUESTS} success notifications)"),
        format!("median {median:.1} µs, p99 {p99:.1} µs"),
        "≤ 50 µs",
        Some(median <= 50.0),
    ));

    Ok(rows)
}

fn main() -> std::process::ExitCode {
    let cpu = match cpu_rows() {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench()) {
        Ok(mut rows) => {
            rows.splice(3..3, cpu);
            println!("| Measure | Result | Target | |\n|---|---|---|---|");
            for r in &rows {
                println!(
                    "| {} | {} | {} | {} |",
                    r.what, r.measured, r.target, r.verdict
                );
            }
            println!(
                "\nThe emulator (moto) {} connections.",
                if std::env::var("MOTO_KEEP_ALIVE").is_ok_and(|v| v == "1") {
                    "keeps HTTP/1.1"
                } else {
                    "closes (werkzeug's default) its"
                }
            );
            let missed = rows.iter().filter(|r| r.verdict == "MISSED").count();
            println!("\n{missed} target(s) missed");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
