//! The reliability run: many payouts through the real function binaries, the moto server and the
//! Vexora sandbox, with faults injected, then a three-way comparison of what clients were told,
//! what DynamoDB holds and what Vexora (the sandbox) did.
//!
//! Faults: every scripted Vexora outcome (timeouts, dropped connections, HTML 502, `5000` with and
//! without a created payout, webhooks out of order and duplicated, query-only payouts); clients
//! that retry the same `tradeNo` after an answer, concurrently, or after giving up waiting;
//! webhook deliveries that are lost on the way there or back; stale and duplicate webhooks
//! replayed after the fact; the moto server stopped and restarted mid-run (its state is kept,
//! as DynamoDB's would be); and a secret rotation mid-run (Vexora first, then Secrets Manager,
//! the documented order).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use payout_core::config;
use payout_core::domain::TradeNo;
use payout_core::order::{Order, OrderStatus};
use payout_core::store::{DynamoOrderStore, OrderStore, schema};
use payout_core::testkit::Moto;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::events::Received;
use crate::local;
use crate::sandbox::{Behaviour, Ledger, SandboxConfig};
use crate::stack::{MERCHANT, Stack, StackConfig};

/// How many times a client sends one request before it stops trying.
const CLIENT_ATTEMPTS: u32 = 40;
/// Canary names: written into every payout, searched for in every log line and answer.
const CANARY_FIRSTNAME: &str = "カナリア";
const CANARY_LASTNAME: &str = "ピーアイアイテスト";
const CANARY_EMAIL_DOMAIN: &str = "pii-canary.example";

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub payouts: usize,
    pub seed: u64,
    /// Payouts in flight at once (each may send several requests).
    pub concurrency: usize,
    /// The functions' `VEXORA_TIMEOUT_MS`; slow answers take three times as long.
    pub vexora_timeout_ms: u64,
    /// Scales Vexora's webhook retry schedule (2 s, 5 s, ... 3 h).
    pub time_scale: f64,
    /// How long the moto server stays down when it is restarted.
    pub moto_down_for: Duration,
    /// Where the report and the captured logs go.
    pub out_dir: PathBuf,
}

impl Plan {
    pub fn new(payouts: usize, out_dir: PathBuf) -> Self {
        Self {
            payouts,
            seed: 20_261_125,
            concurrency: 24,
            vexora_timeout_ms: 1000,
            time_scale: 0.0002,
            moto_down_for: Duration::from_millis(1500),
            out_dir,
        }
    }
}

/// How a client sends one payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Pattern {
    /// Sends until it gets an answer (retrying on errors, 409 and 5xx).
    Once,
    /// As `Once`, then sends the same payout again.
    Repeat,
    /// Three identical requests at the same moment.
    Concurrent,
    /// Gives up waiting after 250 ms and sends again while the first is still running.
    Impatient,
    /// As an item of a batch of up to ten (`POST /batches`, until answered, then the same
    /// batch again), sent by `submit-batch-items`.
    Batch,
}

#[derive(Debug, Clone)]
struct Spec {
    trade_no: String,
    behaviour: Behaviour,
    amount: u64,
    pattern: Pattern,
    failing_deliveries: u32,
    replay: bool,
    bank_number: String,
    mobile: String,
    email: String,
}

impl Spec {
    fn body(&self) -> Value {
        json!({
            "tradeNo": self.trade_no, "amount": self.amount, "bankCode": "0005",
            "bankNumber": self.bank_number, "userId": format!("rel-user-{}", self.trade_no),
            "mobile": self.mobile, "email": self.email,
            "firstname": CANARY_FIRSTNAME, "lastname": CANARY_LASTNAME,
            "remark": "reliability"
        })
    }
}

fn specs(plan: &Plan, rng: &mut StdRng) -> Vec<Spec> {
    // Every outcome equally often, in random order.
    let mut behaviours: Vec<Behaviour> = (0..plan.payouts)
        .map(|i| Behaviour::ALL[i % Behaviour::ALL.len()])
        .collect();
    behaviours.shuffle(rng);
    behaviours
        .into_iter()
        .enumerate()
        .map(|(i, behaviour)| {
            let pattern = match rng.random_range(0..20) {
                0..=8 => Pattern::Once,
                9..=12 => Pattern::Repeat,
                13..=16 => Pattern::Concurrent,
                17 => Pattern::Impatient,
                _ => Pattern::Batch,
            };
            Spec {
                trade_no: format!("REL-{}-{i:05}", plan.seed % 100_000),
                behaviour,
                amount: rng.random_range(1..=500) * 100 + behaviour.amount() % 100,
                pattern,
                failing_deliveries: if rng.random_bool(0.25) {
                    rng.random_range(1..=3)
                } else {
                    0
                },
                replay: rng.random_bool(0.1),
                bank_number: format!("77{:09}", 300_000_000 + i),
                mobile: format!("080{:08}", 60_000_000 + i),
                email: format!("canary-{i}@{CANARY_EMAIL_DOMAIN}"),
            }
        })
        .collect()
}

/// One request a client sent and what it was told.
#[derive(Debug, Clone, Serialize)]
struct Told {
    http: Option<u16>,
    status: Option<String>,
    ms: f64,
}

/// The reliability run's stack: 8 submit, 2 webhook and 1 reconcile process, Vexora's retry
/// schedule scaled down, on a moto server of its own that can be restarted.
async fn stack(plan: &Plan, old_secret: &str, moto: &Moto) -> Result<Stack, String> {
    let mut config = StackConfig::new(moto, old_secret);
    config.table = "payouts-reliability".to_owned();
    config.secret_id = "vexora/reliability".to_owned();
    config.vexora_timeout_ms = plan.vexora_timeout_ms;
    config.sandbox = SandboxConfig {
        time_scale: plan.time_scale,
        processing_time: Duration::from_millis(100),
        slow_answer: Duration::from_millis(plan.vexora_timeout_ms * 3),
        ..SandboxConfig::default()
    };
    config.submit_instances = 8;
    config.webhook_instances = 2;
    config.events = true;
    config.batches = true;
    config.batch_workers = 2;
    config.batch_redeliver_every = Some(5);
    config
        .extra_env
        .push((config::RECONCILE_MAX_ORDERS.to_owned(), "10000".to_owned()));
    Stack::spawn(config).await
}

/// Sends one request, retrying on transport errors, 409, 429 and 5xx like a careful merchant.
async fn send_until_answered(
    http: &reqwest::Client,
    url: &str,
    body: Option<&Value>,
    first_timeout: Duration,
    told: &mut Vec<Told>,
) {
    for attempt in 0..CLIENT_ATTEMPTS {
        let timeout = if attempt == 0 {
            first_timeout
        } else {
            Duration::from_secs(25)
        };
        let request = match body {
            Some(body) => http.post(url).json(body),
            None => http.get(url),
        };
        let started = Instant::now();
        let answer = request.timeout(timeout).send().await;
        let (code, status) = match answer {
            Ok(response) => {
                let code = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (Some(code), body["status"].as_str().map(str::to_owned))
            }
            Err(_) => (None, None),
        };
        told.push(Told {
            http: code,
            status,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        match code {
            Some(c) if !(c == 409 || c == 429 || c >= 500) => return,
            _ => {
                let pause = 50 * u64::from(attempt + 1).min(10);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

/// A batch of items: sent until answered, then the same batch again (a replay: `200`, nothing
/// sent twice). Every item is told what the batch was told.
async fn batch_client(s: &Stack, specs: &[Spec]) -> Vec<Told> {
    let url = format!("{}/batches", s.submit.url);
    let body = json!({
        "batchId": format!("RELB_{}", specs[0].trade_no.replace('-', "_")),
        "items": specs.iter().map(Spec::body).collect::<Vec<_>>(),
    });
    let mut told = Vec::new();
    for _ in 0..2 {
        send_until_answered(
            &s.http,
            &url,
            Some(&body),
            Duration::from_secs(25),
            &mut told,
        )
        .await;
    }
    told
}

async fn client(s: &Stack, spec: &Spec) -> Vec<Told> {
    let url = format!("{}/payouts", s.submit.url);
    let body = spec.body();
    let normal = Duration::from_secs(25);
    match spec.pattern {
        Pattern::Once => {
            let mut told = Vec::new();
            send_until_answered(&s.http, &url, Some(&body), normal, &mut told).await;
            told
        }
        Pattern::Repeat => {
            let mut told = Vec::new();
            send_until_answered(&s.http, &url, Some(&body), normal, &mut told).await;
            send_until_answered(&s.http, &url, Some(&body), normal, &mut told).await;
            told
        }
        Pattern::Concurrent => {
            let one = || async {
                let mut told = Vec::new();
                send_until_answered(&s.http, &url, Some(&body), normal, &mut told).await;
                told
            };
            let (a, b, c) = tokio::join!(one(), one(), one());
            [a, b, c].concat()
        }
        Pattern::Batch => batch_client(s, std::slice::from_ref(spec)).await,
        Pattern::Impatient => {
            let mut told = Vec::new();
            send_until_answered(
                &s.http,
                &url,
                Some(&body),
                Duration::from_millis(250),
                &mut told,
            )
            .await;
            told
        }
    }
}

/// The faults that happened, and when.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    pub moto_restarted_after_payouts: usize,
    pub moto_down_ms: u128,
    pub secret_rotated_after_payouts: usize,
    pub payouts_by_client_pattern: BTreeMap<String, usize>,
    pub payouts_by_vexora_outcome: BTreeMap<String, usize>,
    pub payouts_with_lost_deliveries: usize,
    pub replayed_webhooks: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if values.is_empty() {
                0.0
            } else {
                let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
                (values[i] * 10.0).round() / 10.0
            }
        };
        Self {
            count: values.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// One broken promise.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub trade_no: String,
    pub kind: &'static str,
    pub detail: String,
}

/// An order that ended the run without a final state, and why that is right.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NonFinal {
    pub trade_no: String,
    pub status: String,
    pub reason: String,
}

/// The run's findings; `violations` empty means every promise held.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub payouts: usize,
    pub seed: u64,
    pub seconds: f64,
    pub faults: Faults,
    /// Client requests by HTTP answer (`error` = no answer).
    pub client_answers: BTreeMap<String, usize>,
    /// Payouts whose clients ran out of attempts without an answer.
    pub clients_unanswered: usize,
    pub submit_latency_ms: Percentiles,
    pub first_answer_latency_ms: Percentiles,
    /// DynamoDB's orders by status.
    pub dynamodb: BTreeMap<String, usize>,
    /// Vexora's view: payouts created by final status, submit calls, queries.
    pub vexora_orders: BTreeMap<String, usize>,
    pub vexora_submit_calls: u64,
    pub vexora_queries: u64,
    pub vexora_rejected_requests: usize,
    /// Webhook delivery attempts by the receiver's answer (`lost` = injected or unreachable).
    pub webhook_deliveries: BTreeMap<String, usize>,
    /// Deliveries signed with the rotated secret that the receiver acknowledged.
    pub webhooks_acknowledged_after_rotation: usize,
    pub reconcile_runs: u32,
    pub reconcile_resolved: u64,
    pub anomalies_recorded: usize,
    pub non_final: Vec<NonFinal>,
    pub canaries_checked: usize,
    pub log_lines_scanned: usize,
    pub events: EventsReport,
    pub violations: Vec<Violation>,
}

/// Status events against the order histories in DynamoDB: every order's versions
/// `1..=event_count` published, nothing else.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsReport {
    /// Events the stored orders stand for.
    pub expected: usize,
    /// Distinct events received (by `eventId`).
    pub received: usize,
    /// Deliveries beyond the first of an event (at least once; consumers deduplicate).
    pub redelivered: usize,
    pub missing: usize,
    pub extra: usize,
    /// Stream records handed back by the publisher and delivered again.
    pub records_handed_back: u64,
}

/// Runs the plan and compares the ledgers. `Err` means the run itself could not be carried out.
pub async fn run(plan: &Plan) -> Result<Report, String> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let old_secret = format!("rel-old-secret-{}", uuid::Uuid::new_v4().simple());
    let new_secret = format!("rel-new-secret-{}", uuid::Uuid::new_v4().simple());
    let specs = specs(plan, &mut rng);
    std::fs::create_dir_all(&plan.out_dir).map_err(|e| e.to_string())?;
    let mut moto = Moto::start_keeping_state(&plan.out_dir.join("moto-state.pickle"))?;
    let s = Arc::new(stack(plan, &old_secret, &moto).await?);
    for spec in &specs {
        if spec.failing_deliveries > 0 {
            s.sandbox
                .fail_deliveries(&spec.trade_no, spec.failing_deliveries);
        }
    }
    let mut faults = Faults {
        moto_restarted_after_payouts: plan.payouts * 35 / 100,
        secret_rotated_after_payouts: plan.payouts * 65 / 100,
        payouts_with_lost_deliveries: specs.iter().filter(|s| s.failing_deliveries > 0).count(),
        ..Faults::default()
    };
    for spec in &specs {
        *faults
            .payouts_by_client_pattern
            .entry(format!("{:?}", spec.pattern))
            .or_default() += 1;
        *faults
            .payouts_by_vexora_outcome
            .entry(format!("{:?}", spec.behaviour))
            .or_default() += 1;
    }

    // The load, with the faults fired when enough payouts have finished.
    let (finished, watch_finished) = watch::channel(0usize);
    let faults_task = {
        let s = s.clone();
        let mut watch_finished = watch_finished.clone();
        let (restart_at, rotate_at) = (
            faults.moto_restarted_after_payouts,
            faults.secret_rotated_after_payouts,
        );
        let down_for = plan.moto_down_for;
        let new_secret = new_secret.clone();
        tokio::spawn(async move {
            let _ = watch_finished.wait_for(|n| *n >= restart_at).await;
            let down = Instant::now();
            moto.restart(down_for).await?;
            let down_ms = down.elapsed().as_millis();
            let _ = watch_finished.wait_for(|n| *n >= rotate_at).await;
            // Vexora's console first, then Secrets Manager: the documented order.
            s.sandbox.rotate(&new_secret);
            let value = local::secret_json(MERCHANT, &new_secret);
            let mut stored = Err(String::new());
            for _ in 0..50 {
                stored = local::put_secret(&s.sdk, &s.config.secret_id, &value).await;
                if stored.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stored.map(|()| (moto, down_ms))
        })
    };
    let told: Vec<Vec<Told>> = {
        // Single payouts one client each; batch items ten to a batch, in plan order.
        let mut jobs: Vec<Vec<usize>> = Vec::new();
        let mut open_batch: Vec<usize> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if spec.pattern == Pattern::Batch {
                open_batch.push(i);
                if open_batch.len() == 10 {
                    jobs.push(std::mem::take(&mut open_batch));
                }
            } else {
                jobs.push(vec![i]);
            }
        }
        if !open_batch.is_empty() {
            jobs.push(open_batch);
        }
        let limit = Arc::new(Semaphore::new(plan.concurrency));
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let (s, limit, finished) = (s.clone(), limit.clone(), finished.clone());
                let job_specs: Vec<Spec> = job.iter().map(|&i| specs[i].clone()).collect();
                tokio::spawn(async move {
                    let _permit = limit.acquire().await;
                    let told = if job_specs[0].pattern == Pattern::Batch {
                        batch_client(&s, &job_specs).await
                    } else {
                        client(&s, &job_specs[0]).await
                    };
                    finished.send_modify(|n| *n += job.len());
                    job.into_iter()
                        .map(|i| (i, told.clone()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut told = vec![Vec::new(); specs.len()];
        for task in tasks {
            for (i, answers) in task
                .await
                .map_err(|e| format!("a client task failed: {e}"))?
            {
                told[i] = answers;
            }
        }
        told
    };
    // The server stays up (owned here) until the run ends.
    let (_moto, down_ms) = faults_task
        .await
        .map_err(|e| format!("the fault task failed: {e}"))??;
    faults.moto_down_ms = down_ms;

    // Stale and duplicate webhooks for some payouts Vexora holds.
    let ledger = s.sandbox.ledger();
    for spec in specs.iter().filter(|spec| spec.replay) {
        if let Some(order) = ledger.orders.get(&spec.trade_no) {
            for status in ["0015", order.status.as_str()] {
                s.sandbox.send_webhook(&spec.trade_no, status).await;
                faults.replayed_webhooks += 1;
            }
        }
    }
    let settle = Duration::from_secs_f64((plan.time_scale * 40_000.0).max(10.0) + 20.0);
    if !s.sandbox.deliveries_settled(settle).await {
        return Err(format!("webhook deliveries still running after {settle:?}"));
    }
    let (reconcile_runs, reconcile_resolved) = reconcile_until_quiet(&s, plan).await?;

    // The clients' last look, then the three ledgers.
    let mut final_view = Vec::new();
    for spec in &specs {
        let mut seen = Vec::new();
        let url = format!("{}/payouts/{}", s.submit.url, spec.trade_no);
        send_until_answered(&s.http, &url, None, Duration::from_secs(25), &mut seen).await;
        final_view.push(seen.pop());
    }
    let store = DynamoOrderStore::new(s.dynamodb.clone(), &s.config.table);
    let mut stored = Vec::new();
    for spec in &specs {
        let trade_no = TradeNo::parse(&spec.trade_no).map_err(|e| format!("{e:?}"))?;
        stored.push(store.get(&trade_no).await.map_err(|e| e.to_string())?);
    }
    let item_count = count_items(&s).await?;
    let events = events_settled(&s, &stored).await;
    let ledger = s.sandbox.ledger();
    let logs = format!(
        "{}\n{}\n{}\n{}",
        s.submit.logs(),
        s.webhook.logs(),
        s.reconcile.logs(),
        s.events
            .as_ref()
            .map(|e| e.publisher.logs())
            .unwrap_or_default()
    ) + &s
        .batches
        .as_ref()
        .map(|b| format!("\n{}", b.worker.logs()))
        .unwrap_or_default();
    std::fs::write(plan.out_dir.join("function-logs.jsonl"), &logs).map_err(|e| e.to_string())?;

    let mut report = Report {
        payouts: plan.payouts,
        seed: plan.seed,
        faults,
        reconcile_runs,
        reconcile_resolved,
        ..Report::default()
    };
    compare(
        &mut report,
        &specs,
        &told,
        &final_view,
        &stored,
        item_count,
        &ledger,
    );
    compare_events(&mut report, &stored, &events);
    if let Some(e) = &s.events {
        report.events.records_handed_back = e
            .pump
            .stats
            .handed_back
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    let answers = told
        .iter()
        .flatten()
        .chain(final_view.iter().flatten())
        .map(|t| format!("{t:?}"))
        .chain(events.iter().map(|e| e.detail.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    scan_canaries(
        &mut report,
        &specs,
        &[&old_secret, &new_secret],
        &format!("{logs}\n{answers}"),
    );
    report.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(plan.out_dir.join("report.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(plan.out_dir.join("report.md"), report.summary()).map_err(|e| e.to_string())?;
    Ok(report)
}

/// The events the collector received once every stored order's are in, or once nothing new has
/// arrived for 30 s (then what is missing is reported).
async fn events_settled(s: &Stack, stored: &[Option<Order>]) -> Vec<Received> {
    let Some(events) = &s.events else {
        return Vec::new();
    };
    let expected: usize = stored
        .iter()
        .flatten()
        .map(|o| usize::try_from(o.event_count()).unwrap_or(usize::MAX))
        .sum();
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    loop {
        let received = events.collector.received();
        let distinct: BTreeSet<&str> = received.iter().map(Received::event_id).collect();
        if distinct.len() >= expected || last_progress.elapsed() > Duration::from_secs(30) {
            return received;
        }
        if received.len() != last_count {
            last_count = received.len();
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Events against the stored orders: versions `1..=event_count` of each, once or more, every
/// delivery of one id alike; as many status events as the order made moves (`version - 1`) and
/// as many anomaly events as it recorded anomalies; the status events chain (each one's
/// `previousStatus` is the status of the one before, the first's `PENDING`) and end at the
/// order's status.
fn compare_events(report: &mut Report, stored: &[Option<Order>], events: &[Received]) {
    let mut by_id: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for event in events {
        by_id.entry(event.event_id()).or_default().push(event);
    }
    let mut expected_ids = BTreeSet::new();
    for order in stored.iter().flatten() {
        let t = order.trade_no.as_str();
        let mut last_status: Option<(u64, &str)> = None;
        let mut moves = 0u64;
        let mut anomalies = 0u64;
        for version in 1..=order.event_count() {
            let id = format!("{t}#{version}");
            match by_id.get(id.as_str()) {
                None => {
                    report.events.missing += 1;
                    report.violations.push(Violation {
                        trade_no: t.to_owned(),
                        kind: "event_missing",
                        detail: format!(
                            "no event {id} (the order stands at {} events)",
                            order.event_count()
                        ),
                    });
                }
                Some(copies) => {
                    let first = copies[0];
                    if copies.iter().any(|c| c.detail != first.detail) {
                        report.violations.push(Violation {
                            trade_no: t.to_owned(),
                            kind: "event_inconsistent",
                            detail: format!("deliveries of {id} differ"),
                        });
                    }
                    if first.detail_type == payout_core::events::DetailType::StatusChanged.as_str()
                    {
                        moves += 1;
                        let before = last_status.map_or("PENDING", |(_, s)| s);
                        let previous = first.detail["previousStatus"].as_str().unwrap_or("");
                        if previous != before {
                            report.violations.push(Violation {
                                trade_no: t.to_owned(),
                                kind: "event_inconsistent",
                                detail: format!(
                                    "{id} moves from {previous}, the status before was {before}"
                                ),
                            });
                        }
                        last_status = Some((version, first.status()));
                    } else {
                        anomalies += 1;
                    }
                }
            }
            expected_ids.insert(id);
        }
        if moves + anomalies == order.event_count()
            && (moves != order.version - 1 || anomalies != order.anomaly_count)
        {
            report.violations.push(Violation {
                trade_no: t.to_owned(),
                kind: "event_inconsistent",
                detail: format!(
                    "{moves} status and {anomalies} anomaly events for {} moves and {} anomalies",
                    order.version - 1,
                    order.anomaly_count
                ),
            });
        }
        if let Some((version, status)) = last_status
            && status != order.status.as_str()
        {
            report.violations.push(Violation {
                trade_no: t.to_owned(),
                kind: "event_wrong_status",
                detail: format!(
                    "last status event (#{version}) says {status}, the order is {}",
                    order.status.as_str()
                ),
            });
        }
    }
    report.events.expected = expected_ids.len();
    report.events.received = by_id.len();
    report.events.redelivered = events.len() - by_id.len();
    for (id, _) in by_id.iter().filter(|(id, _)| !expected_ids.contains(**id)) {
        report.events.extra += 1;
        report.violations.push(Violation {
            trade_no: id.split('#').next().unwrap_or_default().to_owned(),
            kind: "event_extra",
            detail: format!("event {id} stands for no stored change"),
        });
    }
}

/// Lets time pass for the reconciler (every unresolved order becomes due, as it would after its
/// back-off) and runs it until a run resolves nothing and skips nothing.
async fn reconcile_until_quiet(s: &Stack, plan: &Plan) -> Result<(u32, u64), String> {
    let event: Value = serde_json::from_str(include_str!(
        "../../functions/reconcile-payouts/events/schedule.json"
    ))
    .map_err(|e| e.to_string())?;
    // A PENDING order is left alone until its submit can no longer be running.
    let deadline =
        Instant::now() + Duration::from_millis(plan.vexora_timeout_ms) + Duration::from_secs(90);
    let (mut runs, mut resolved) = (0u32, 0u64);
    loop {
        make_unresolved_due(s).await?;
        let answer = s.reconcile.invoke(&event).await?;
        runs += 1;
        resolved += answer["resolved"].as_u64().unwrap_or(0);
        if answer["resolved"] == 0 && answer["skipped"] == 0 {
            return Ok((runs, resolved));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the reconciler is not quiet after {runs} runs: {answer}"
            ));
        }
        if answer["resolved"] == 0 {
            // Only young PENDING orders are left: wait for them to age.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn unresolved_trade_nos(s: &Stack) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let page = s
            .dynamodb
            .scan()
            .table_name(&s.config.table)
            .filter_expression("attribute_exists(#u)")
            .expression_attribute_names("#u", schema::UNRESOLVED_KEY)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("scanning the table: {e:?}"))?;
        for item in page.items() {
            if let Some(AttributeValue::S(t)) = item.get(schema::PARTITION_KEY) {
                found.push(t.clone());
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(found),
        }
    }
}

async fn make_unresolved_due(s: &Stack) -> Result<(), String> {
    for trade_no in unresolved_trade_nos(s).await? {
        let updated = s
            .dynamodb
            .update_item()
            .table_name(&s.config.table)
            .key(schema::PARTITION_KEY, AttributeValue::S(trade_no))
            .update_expression("SET #c = :past")
            .condition_expression("attribute_exists(#u)")
            .expression_attribute_names("#c", schema::CHECK_AFTER)
            .expression_attribute_names("#u", schema::UNRESOLVED_KEY)
            .expression_attribute_values(":past", AttributeValue::N("1".into()))
            .send()
            .await;
        if let Err(e) = updated {
            let resolved_meanwhile = e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception());
            if !resolved_meanwhile {
                return Err(format!("making an order due: {e:?}"));
            }
        }
    }
    Ok(())
}

async fn count_items(s: &Stack) -> Result<usize, String> {
    let mut count = 0;
    let mut start = None;
    loop {
        let page = s
            .dynamodb
            .scan()
            .table_name(&s.config.table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            // Orders only: a batch's own record shares the table.
            .filter_expression("NOT begins_with(#k, :batch)")
            .expression_attribute_names("#k", schema::PARTITION_KEY)
            .expression_attribute_values(
                ":batch",
                AttributeValue::S(payout_core::batch::RECORD_PREFIX.to_owned()),
            )
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("counting the table: {e:?}"))?;
        count += page.count as usize;
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(count),
        }
    }
}

fn is_accepted(code: Option<u16>) -> bool {
    matches!(code, Some(200..=202))
}

#[allow(clippy::too_many_lines)] // one pass over the three ledgers reads best in one place
fn compare(
    report: &mut Report,
    specs: &[Spec],
    told: &[Vec<Told>],
    final_view: &[Option<Told>],
    stored: &[Option<Order>],
    item_count: usize,
    ledger: &Ledger,
) {
    let mut violation = |trade_no: &str, kind: &'static str, detail: String| {
        report.violations.push(Violation {
            trade_no: trade_no.to_owned(),
            kind,
            detail,
        });
    };
    let mut submit_ms = Vec::new();
    let mut first_ms = Vec::new();
    for (((spec, told), seen), order) in specs.iter().zip(told).zip(final_view).zip(stored) {
        let t = spec.trade_no.as_str();
        for answer in told {
            let key = answer.http.map_or("error".to_owned(), |c| c.to_string());
            *report.client_answers.entry(key).or_default() += 1;
            submit_ms.push(answer.ms);
        }
        if let Some(first) = told.first() {
            first_ms.push(first.ms);
        }
        let answered = told.iter().any(|a| is_accepted(a.http));
        if !answered {
            report.clients_unanswered += 1;
        }
        for answer in told {
            match answer.http {
                Some(422) => {
                    violation(t, "refused_identical_retry", "422 for the same body".into())
                }
                Some(c) if (400..500).contains(&c) && c != 409 && c != 429 => {
                    violation(t, "refused_valid_payout", format!("HTTP {c}"));
                }
                _ => {}
            }
        }
        let calls = ledger.submits.get(t).copied().unwrap_or(0);
        if calls > 1 {
            violation(
                t,
                "paid_twice_risk",
                format!("{calls} submit calls reached Vexora"),
            );
        }
        let vexora = ledger.orders.get(t).map(|o| o.status.as_str());
        let paid = vexora == Some("0000");
        let status = order.as_ref().map(|o| o.status);
        if let Some(order) = order {
            *report
                .dynamodb
                .entry(order.status.as_str().to_owned())
                .or_default() += 1;
            report.anomalies_recorded += order.anomalies.len();
        }
        match (vexora, status) {
            (Some(_), None) => violation(
                t,
                "lost",
                "Vexora holds the payout; DynamoDB does not".into(),
            ),
            (None, None) if answered => violation(
                t,
                "lost",
                "the client was told it was accepted; DynamoDB has nothing".into(),
            ),
            (Some("0000"), Some(OrderStatus::Succeeded))
            | (Some("00029"), Some(OrderStatus::Failed))
            | (None, None) => {}
            (Some("0000"), Some(OrderStatus::Failed)) => {
                violation(
                    t,
                    "failed_but_paid",
                    "DynamoDB says FAILED; Vexora paid".into(),
                );
            }
            (Some(v), Some(s)) if !s.is_final() => violation(
                t,
                "left_unresolved",
                format!("{} although Vexora's query answers {v}", s.as_str()),
            ),
            (Some(v), Some(s)) => violation(
                t,
                "wrong_final_state",
                format!("{} but Vexora says {v}", s.as_str()),
            ),
            (None, Some(OrderStatus::Succeeded)) => violation(
                t,
                "wrong_final_state",
                "SUCCEEDED but Vexora has no such payout".into(),
            ),
            (None, Some(OrderStatus::Failed)) if spec.behaviour == Behaviour::Rejected => {}
            (None, Some(OrderStatus::Failed)) => violation(
                t,
                "wrong_final_state",
                format!("FAILED after {:?}, which is not a refusal", spec.behaviour),
            ),
            (None, Some(s)) => report.non_final.push(NonFinal {
                trade_no: t.to_owned(),
                status: s.as_str().to_owned(),
                reason: if calls == 0 {
                    "never reached Vexora".into()
                } else {
                    format!(
                        "Vexora answered {:?} and its query finds no payout: kept (never failed \
                         automatically), flagged for manual review at the give-up age",
                        spec.behaviour
                    )
                },
            }),
        }
        for answer in told.iter().chain(seen.iter()) {
            match answer.status.as_deref() {
                Some("FAILED") if paid => {
                    violation(t, "client_told_failed_but_paid", format!("{answer:?}"));
                }
                Some("SUCCEEDED") if !paid => {
                    violation(t, "client_told_succeeded_but_unpaid", format!("{answer:?}"));
                }
                _ => {}
            }
        }
        let last = seen.as_ref().and_then(|a| a.status.clone());
        let expected = status.map(|s| s.as_str().to_owned());
        if seen.as_ref().is_some_and(|a| is_accepted(a.http)) && last != expected {
            violation(
                t,
                "client_view_differs",
                format!("GET shows {last:?}, DynamoDB holds {expected:?}"),
            );
        }
    }
    let planned: HashSet<&str> = specs.iter().map(|s| s.trade_no.as_str()).collect();
    let known = stored.iter().flatten().count();
    if item_count != known {
        violation(
            "-",
            "unexpected_orders",
            format!("DynamoDB holds {item_count} orders; the run made {known}"),
        );
    }
    for t in ledger
        .orders
        .keys()
        .filter(|t| !planned.contains(t.as_str()))
    {
        violation(
            t,
            "unexpected_vexora_payout",
            "Vexora holds a payout nobody asked for".into(),
        );
    }
    report.submit_latency_ms = Percentiles::of(submit_ms);
    report.first_answer_latency_ms = Percentiles::of(first_ms);
    for order in ledger.orders.values() {
        *report
            .vexora_orders
            .entry(order.status.clone())
            .or_default() += 1;
    }
    report.vexora_submit_calls = ledger.submits.values().map(|n| u64::from(*n)).sum();
    report.vexora_queries = ledger.queries.values().map(|n| u64::from(*n)).sum();
    report.vexora_rejected_requests = ledger.rejections.len();
    for d in &ledger.deliveries {
        let key = match (d.http_status, d.acknowledged) {
            (_, true) => "200 OK".to_owned(),
            (Some(code), false) => code.to_string(),
            (None, false) => "lost".to_owned(),
        };
        *report.webhook_deliveries.entry(key).or_default() += 1;
        if d.acknowledged && d.rotated_secret {
            report.webhooks_acknowledged_after_rotation += 1;
        }
    }
}

/// Looks for every payout's personal data and both app secrets in `text`.
fn scan_canaries(report: &mut Report, specs: &[Spec], secrets: &[&str], text: &str) {
    let numbers: HashSet<&str> = specs
        .iter()
        .flat_map(|s| [s.bank_number.as_str(), s.mobile.as_str()])
        .collect();
    report.canaries_checked = numbers.len() + specs.len() + 2 + secrets.len();
    report.log_lines_scanned = text.lines().count();
    let mut leak = |what: String| {
        report.violations.push(Violation {
            trade_no: "-".into(),
            kind: "canary_leaked",
            detail: what,
        });
    };
    // Every run of digits as long as a canary is looked up (timestamps are longer runs).
    for run in text.split(|c: char| !c.is_ascii_digit()) {
        if numbers.contains(run) {
            leak(format!(
                "a bank account or mobile number ({} digits)",
                run.len()
            ));
        }
    }
    for (canary, what) in [
        (CANARY_EMAIL_DOMAIN, "an email address"),
        (CANARY_FIRSTNAME, "a first name"),
        (CANARY_LASTNAME, "a last name"),
    ] {
        if text.contains(canary) {
            leak(what.into());
        }
    }
    for secret in secrets {
        if text.contains(secret) {
            leak("an app secret".into());
        }
    }
}

impl Report {
    /// The report as Markdown, for the terminal and the README.
    pub fn summary(&self) -> String {
        let map = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let p = |p: &Percentiles| {
            format!(
                "p50 {} / p90 {} / p99 {} / max {} ms ({} requests)",
                p.p50, p.p90, p.p99, p.max, p.count
            )
        };
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for n in &self.non_final {
            *reasons
                .entry(format!("{} — {}", n.status, n.reason))
                .or_default() += 1;
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            *kinds.entry(v.kind).or_default() += 1;
        }
        let mut out = format!(
            "# Reliability run: {} payouts, seed {}, {} s\n\n\
             | | |\n|---|---|\n\
             | Vexora outcomes | {} |\n\
             | Client patterns | {} |\n\
             | Faults | moto restarted after {} payouts (down {} ms); secret rotated after {} payouts; {} payouts with lost webhook deliveries; {} stale/duplicate webhooks replayed |\n\
             | Client answers (HTTP) | {} |\n\
             | Clients left without an answer | {} |\n\
             | Submit latency, every request | {} |\n\
             | Submit latency, first request | {} |\n\
             | DynamoDB orders | {} |\n\
             | Vexora payouts (final status) | {} |\n\
             | Vexora submit calls / queries / refused | {} / {} / {} |\n\
             | Webhook deliveries (receiver's answer) | {}; acknowledged with the rotated secret: {} |\n\
             | Reconciler runs / resolved | {} / {} |\n\
             | Anomalies recorded | {} |\n\
             | Canaries checked / log lines and answers scanned | {} / {} |\n\
             | Status events (expected / received / missing / extra) | {} / {} / **{}** / **{}**; redelivered {}; stream records handed back {} |\n\
             | **Violations** | **{}** {} |\n",
            self.payouts,
            self.seed,
            self.seconds,
            map(&self.faults.payouts_by_vexora_outcome),
            map(&self.faults.payouts_by_client_pattern),
            self.faults.moto_restarted_after_payouts,
            self.faults.moto_down_ms,
            self.faults.secret_rotated_after_payouts,
            self.faults.payouts_with_lost_deliveries,
            self.faults.replayed_webhooks,
            map(&self.client_answers),
            self.clients_unanswered,
            p(&self.submit_latency_ms),
            p(&self.first_answer_latency_ms),
            map(&self.dynamodb),
            map(&self.vexora_orders),
            self.vexora_submit_calls,
            self.vexora_queries,
            self.vexora_rejected_requests,
            map(&self.webhook_deliveries),
            self.webhooks_acknowledged_after_rotation,
            self.reconcile_runs,
            self.reconcile_resolved,
            self.anomalies_recorded,
            self.canaries_checked,
            self.log_lines_scanned,
            self.events.expected,
            self.events.received,
            self.events.missing,
            self.events.extra,
            self.events.redelivered,
            self.events.records_handed_back,
            self.violations.len(),
            if kinds.is_empty() {
                String::new()
            } else {
                format!("({kinds:?})")
            },
        );
        out.push_str("\nOrders left non-final, by reason:\n\n");
        if reasons.is_empty() {
            out.push_str("- none\n");
        }
        for (reason, n) in reasons {
            out.push_str(&format!("- {n} × {reason}\n"));
        }
        for v in self.violations.iter().take(50) {
            out.push_str(&format!(
                "\nVIOLATION {} {}: {}",
                v.kind, v.trade_no, v.detail
            ));
        }
        out
    }
}
