//! One seeded run: the merchant, Vexora, the functions and an operator take steps chosen by the
//! seed over the real handlers, every port call stopping at a gate where the seed also chooses
//! the fault; the invariants are checked on every stored change, after every step, and once the
//! run has quiesced.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use payout_app::apply::Schedule;
use payout_app::secrets::{DEFAULT_PREVIOUS_SECRET_GRACE, Keyring, MIN_REFRESH_INTERVAL};
use payout_aws::item_failures::{SqsBatchResponse, SqsEvent};
use payout_domain::order::{Order, OrderStatus};
use payout_testkit::{FakeSecretStore, InMemoryStore, NoMetrics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use url::Url;

use crate::ports::{SimQueue, SimStore, SimVexora, writes};
use crate::world::{
    AnswerKind, Create, Grant, Message, Note, Point, QueryFate, RequestFate, Shared, StoreFate,
    TaskId, World, lock, set_now,
};

const SECRET: &str = "SIMULATED-APP-SECRET-5b1e";
const NOTIFY: &str = "https://payouts.example.jp/vexora/notify";
/// How many times Vexora delivers one notification before it gives up (`docs/vexora-api.md` §5:
/// 1 + 8 retries).
const DELIVERIES: u32 = 9;

type Api =
    submit_payout::handler::App<SimStore, SimVexora, FakeSecretStore, NoMetrics, Arc<SimQueue>>;
type Hook = payout_webhook::handler::App<SimStore, FakeSecretStore, NoMetrics>;
type Work = submit_batch_items::handler::Worker<SimStore, SimVexora, FakeSecretStore, NoMetrics>;
type Recon = reconcile_payouts::handler::Reconciler<
    SimStore,
    SimVexora,
    FakeSecretStore,
    NoMetrics,
    Arc<SimQueue>,
>;

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub counts: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub steps: usize,
}

/// How a run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Steps before the world quiesces.
    pub steps: usize,
    /// Keep a readable line per step (for a replay).
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            steps: 160,
            trace: false,
        }
    }
}

/// What a task is; its fields name it in the trace.
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum Kind {
    /// `POST /payouts` of payout `.0` for `.1` yen.
    Post(usize, u64),
    Get(String),
    Batch(usize, String),
    ReadBatch(String),
    Webhook(Note),
    Worker(Message),
    Reconciler,
    Operator(String),
}

impl Kind {
    /// The function's timeout: a task still running this long after it started is ended.
    fn timeout(&self) -> chrono::Duration {
        match self {
            Self::Post(..) | Self::Get(_) | Self::Batch(..) | Self::ReadBatch(_) => {
                chrono::Duration::seconds(20)
            }
            Self::Webhook(_) => chrono::Duration::seconds(9),
            Self::Worker(_) | Self::Reconciler | Self::Operator(_) => chrono::Duration::minutes(5),
        }
    }
}

enum Out {
    Http(u16, serde_json::Value, String),
    Worker(SqsBatchResponse),
    Done,
}

struct Task {
    kind: Kind,
    started: DateTime<Utc>,
    future: Pin<Box<dyn Future<Output = Out>>>,
}

#[derive(Debug, Clone)]
struct Payout {
    trade_no: String,
    amount: u64,
    batch: Option<usize>,
    /// The request the merchant is waiting on.
    waiting: Option<TaskId>,
    attempts: u32,
    accepted: bool,
    /// The amounts the merchant was told were accepted under this `tradeNo` (a merchant with a
    /// bug may send other content under it).
    accepted_amounts: std::collections::BTreeSet<u64>,
}

#[derive(Debug, Clone)]
struct Batch {
    items: Vec<usize>,
    id: String,
    ids: u32,
    /// The request the merchant is waiting on.
    waiting: Option<TaskId>,
    attempts: u32,
    accepted: Vec<String>,
    /// The batchIds answered `202`/`200`.
    accepted_ids: Vec<String>,
}

/// What an operator saw when they looked at an order in review, and what they decided.
#[derive(Debug, Clone)]
struct Look {
    order: Order,
    to: OrderStatus,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Release(u64),
    Crash(TaskId),
    /// The merchant stops waiting for a request that goes on running (a client timeout).
    GiveUp(TaskId),
    Post(usize),
    /// Another amount under the same `tradeNo` (a merchant's bug).
    PostOther(usize),
    Batch(usize),
    Get(usize),
    Deliver(usize),
    Progress(usize),
    Worker(usize),
    Reconcile,
    Tick(i64),
    Look(usize),
    Act(usize),
}

struct Sim {
    rng: StdRng,
    world: Shared,
    store: SimStore,
    api: Rc<Api>,
    hook: Rc<Hook>,
    worker: Rc<Work>,
    recon: Rc<Recon>,
    tasks: BTreeMap<TaskId, Task>,
    next_task: TaskId,
    /// Tasks to poll: new, or one of their gates opened.
    fresh: std::collections::BTreeSet<TaskId>,
    payouts: Vec<Payout>,
    batches: Vec<Batch>,
    looks: Vec<Look>,
    in_flight: BTreeMap<u64, Message>,
    /// Fault weight: 0 calm, higher stormier; 0 while quiescing.
    storm: u32,
    step: usize,
    /// Accepted batches and their sizes, read once the world is quiet.
    batch_reads: Vec<(String, usize)>,
    /// Requests whose client stopped waiting: their answer reaches nobody.
    detached: std::collections::BTreeSet<TaskId>,
}

fn api_request(method: &str, path: &str, body: Option<&str>) -> lambda_http::Request {
    let mut e: serde_json::Value = serde_json::from_str(include_str!(
        "../../functions/submit-payout/events/post-payout.json"
    ))
    .unwrap_or_default();
    e["rawPath"] = path.into();
    e["rawQueryString"] = "".into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    e["requestContext"]["stage"] = "$default".into();
    e["routeKey"] = "$default".into();
    e["requestContext"]["routeKey"] = "$default".into();
    e["body"] = body.map_or(serde_json::Value::Null, serde_json::Value::from);
    match lambda_http::request::from_str(&e.to_string()) {
        Ok(request) => request,
        Err(err) => panic!("the API fixture does not parse: {err}"),
    }
}

fn webhook_request(body: &str) -> lambda_http::Request {
    let mut e: serde_json::Value = serde_json::from_str(include_str!(
        "../../functions/payout-webhook/events/notify.json"
    ))
    .unwrap_or_default();
    e["body"] = body.into();
    e["isBase64Encoded"] = false.into();
    match lambda_http::request::from_str(&e.to_string()) {
        Ok(request) => request,
        Err(err) => panic!("the webhook fixture does not parse: {err}"),
    }
}

fn http_out(response: lambda_http::Response<lambda_http::Body>) -> Out {
    let status = response.status().as_u16();
    let text = match response.body() {
        lambda_http::Body::Text(t) => t.clone(),
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Out::Http(status, json, text)
}

fn pick<T: Copy>(rng: &mut StdRng, options: &[(u32, T)]) -> Option<T> {
    let total: u32 = options.iter().map(|(w, _)| w).sum();
    if total == 0 {
        return None;
    }
    let mut at = rng.random_range(0..total);
    for (w, v) in options {
        if at < *w {
            return Some(*v);
        }
        at -= w;
    }
    None
}

impl Sim {
    fn new(seed: u64, options: Options) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Utc
            .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        set_now(start);
        let world: Shared = Arc::new(Mutex::new(World {
            tracing: options.trace,
            ..World::default()
        }));
        let store = SimStore {
            inner: Arc::new(InMemoryStore::new()),
            world: world.clone(),
        };
        let vexora = SimVexora {
            world: world.clone(),
        };
        let queue = Arc::new(SimQueue {
            world: world.clone(),
        });
        let notify = Url::parse(NOTIFY).unwrap_or_else(|e| panic!("{e}"));
        let schedule = Schedule {
            processing_age: chrono::Duration::minutes(15),
        };
        let abandoned_after =
            payout_domain::order::pending_abandoned_after(Duration::from_millis(8000));
        let api = Api {
            store: store.clone(),
            gateway: vexora.clone(),
            secrets: payout_testkit::secrets(SECRET),
            metrics: NoMetrics,
            notify_url: notify.clone(),
            abandoned_after,
            schedule,
            clock: crate::world::now,
            balance: payout_app::balance::BalanceCache::default(),
            queue: Some(queue.clone()),
        };
        let hook = Hook {
            store: store.clone(),
            keyring: Keyring::new(
                payout_testkit::secrets(SECRET),
                DEFAULT_PREVIOUS_SECRET_GRACE,
                MIN_REFRESH_INTERVAL,
            ),
            metrics: NoMetrics,
            schedule,
            clock: crate::world::now,
        };
        let worker = Work {
            store: store.clone(),
            gateway: vexora.clone(),
            secrets: payout_testkit::secrets(SECRET),
            metrics: NoMetrics,
            notify_url: notify,
            abandoned_after,
            schedule,
            worst_item: Duration::from_secs(20),
            clock: crate::world::now,
        };
        let recon = Recon {
            store: store.clone(),
            gateway: vexora,
            secrets: payout_testkit::secrets(SECRET),
            metrics: NoMetrics,
            abandoned_after,
            schedule,
            give_up_after: chrono::Duration::hours(72),
            max_orders: 100,
            queue: Some(queue),
        };
        // The merchant's payouts: some alone, some in one or two batches.
        let count = rng.random_range(1..=5usize);
        let mut payouts: Vec<Payout> = (0..count)
            .map(|i| Payout {
                trade_no: format!("T{i}"),
                amount: 100 + 100 * i as u64,
                batch: None,
                waiting: None,
                attempts: 0,
                accepted: false,
                accepted_amounts: std::collections::BTreeSet::new(),
            })
            .collect();
        let mut batches = Vec::new();
        let in_batches = rng.random_range(0..=count);
        let mut i = 0;
        while i < in_batches {
            let size = rng.random_range(1..=(in_batches - i));
            let b = batches.len();
            for p in payouts.iter_mut().skip(i).take(size) {
                p.batch = Some(b);
            }
            batches.push(Batch {
                items: (i..i + size).collect(),
                id: format!("B{b}x0"),
                ids: 1,
                waiting: None,
                attempts: 0,
                accepted: Vec::new(),
                accepted_ids: Vec::new(),
            });
            i += size;
        }
        let storm = [0, 1, 1, 2, 3][rng.random_range(0..5usize)];
        let sim = Self {
            rng,
            world,
            store,
            api: Rc::new(api),
            hook: Rc::new(hook),
            worker: Rc::new(worker),
            recon: Rc::new(recon),
            tasks: BTreeMap::new(),
            next_task: 1,
            fresh: std::collections::BTreeSet::new(),
            payouts,
            batches,
            looks: Vec::new(),
            in_flight: BTreeMap::new(),
            storm,
            step: 0,
            batch_reads: Vec::new(),
            detached: std::collections::BTreeSet::new(),
        };
        sim.note(|| format!("seed {seed}: storm {storm}"));
        sim
    }

    fn note(&self, line: impl FnOnce() -> String) {
        lock(&self.world).note(line);
    }

    fn spawn(&mut self, kind: Kind, future: Pin<Box<dyn Future<Output = Out>>>) -> TaskId {
        let id = self.next_task;
        self.next_task += 1;
        self.note(|| format!("  task {id} starts: {kind:?}"));
        self.fresh.insert(id);
        self.tasks.insert(
            id,
            Task {
                kind,
                started: crate::world::now(),
                future,
            },
        );
        id
    }

    /// Polls every task that can go on until each has finished or stopped at a gate.
    fn run_ready(&mut self) {
        let mut spins = 0;
        loop {
            if !lock(&self.world).violations.is_empty() {
                return;
            }
            let ready: Vec<TaskId> = std::mem::take(&mut self.fresh).into_iter().collect();
            if ready.is_empty() {
                return;
            }
            spins += 1;
            if spins > 10_000 {
                lock(&self.world).violation("a task neither finishes nor waits".into());
                return;
            }
            for id in ready {
                self.poll(id);
            }
        }
    }

    fn poll(&mut self, id: TaskId) {
        lock(&self.world).current = id;
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        match task.future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => {
                if let Some(task) = self.tasks.remove(&id) {
                    self.finished(id, task.kind, out);
                }
            }
            Poll::Pending => {
                let stopped = lock(&self.world).waiting.values().any(|(t, _)| *t == id);
                if !stopped {
                    lock(&self.world).violation(format!("task {id} neither finishes nor waits"));
                }
            }
        }
    }

    fn grant(&mut self, point: &Point) -> Grant {
        let s = self.storm;
        match point {
            Point::Store(op, _) if writes(op) => Grant::Store(
                pick(
                    &mut self.rng,
                    &[
                        (100, StoreFate::Ok),
                        (3 * s, StoreFate::FailBefore),
                        (3 * s, StoreFate::FailAfter),
                        (3 * s, StoreFate::RetryLater),
                    ],
                )
                .unwrap_or(StoreFate::Ok),
            ),
            Point::Store(..) => Grant::Store(
                pick(
                    &mut self.rng,
                    &[(100, StoreFate::Ok), (4 * s, StoreFate::FailBefore)],
                )
                .unwrap_or(StoreFate::Ok),
            ),
            Point::StoreRetry(..) => Grant::Store(StoreFate::Ok),
            Point::VexoraRequest(_) => {
                let create = pick(
                    &mut self.rng,
                    &[
                        (80, Create::Processing),
                        (8 + 2 * s, Create::Paid),
                        (3 * s, Create::Refused),
                        (3 * s, Create::SystemError),
                    ],
                )
                .unwrap_or(Create::Processing);
                let answer = pick(
                    &mut self.rng,
                    &[
                        (60, AnswerKind::Plain),
                        (3 * s, AnswerKind::Code8000),
                        (3 * s, AnswerKind::Code5000WithData),
                        (3 * s, AnswerKind::Code5000),
                        (4 * s, AnswerKind::TimedOut),
                        (2 * s, AnswerKind::Dropped),
                        (2 * s, AnswerKind::Http502),
                        (2 * s, AnswerKind::NotJson),
                        (2 * s, AnswerKind::OtherAmount),
                    ],
                )
                .unwrap_or(AnswerKind::Plain);
                Grant::Request(
                    pick(
                        &mut self.rng,
                        &[
                            (90, RequestFate::Arrives { create, answer }),
                            (3 * s, RequestFate::NotSent),
                            (3 * s, RequestFate::Lost),
                        ],
                    )
                    .unwrap_or(RequestFate::Arrives { create, answer }),
                )
            }
            Point::VexoraAnswer(_) => Grant::Answer,
            Point::VexoraQuery(_) => Grant::Query(
                pick(
                    &mut self.rng,
                    &[
                        (90, QueryFate::Answer),
                        (4 * s, QueryFate::TimedOut),
                        (2 * s, QueryFate::Code5000),
                    ],
                )
                .unwrap_or(QueryFate::Answer),
            ),
            Point::Queue => Grant::Queue(self.rng.random_range(0..100) >= 5 * s),
        }
    }

    fn release(&mut self, gate: u64) {
        let waiting = lock(&self.world).waiting.get(&gate).cloned();
        let Some((id, point)) = waiting else { return };
        let grant = self.grant(&point);
        {
            let mut w = lock(&self.world);
            w.waiting.remove(&gate);
            w.grants.insert(gate, grant);
            w.note(|| format!("  task {id} goes on at {}: {grant:?}", point.label()));
            match grant {
                Grant::Store(StoreFate::Ok) | Grant::Answer | Grant::Query(QueryFate::Answer) => {}
                Grant::Queue(true) => {}
                Grant::Request(RequestFate::Arrives { create, answer }) => {
                    w.count(format!("vexora {create:?}, answers {answer:?}"));
                }
                other => w.count(format!("fault {other:?}")),
            }
        }
        self.fresh.insert(id);
        self.run_ready();
    }

    /// Ends a task between two awaits, as a crash or the function's timeout would.
    fn crash(&mut self, id: TaskId) {
        let Some(task) = self.tasks.remove(&id) else {
            return;
        };
        {
            let mut w = lock(&self.world);
            let gates: Vec<u64> = w
                .waiting
                .iter()
                .filter(|(_, (t, _))| *t == id)
                .map(|(g, _)| *g)
                .collect();
            for g in gates {
                w.waiting.remove(&g);
                w.grants.remove(&g);
            }
            self.fresh.remove(&id);
            w.note(|| format!("  task {id} ends without answering ({:?})", task.kind));
            w.count("task ended between two awaits");
        }
        self.detached.remove(&id);
        match task.kind {
            Kind::Post(i, _) => self.stop_waiting_payout(i, id),
            Kind::Batch(b, _) => self.stop_waiting_batch(b, id),
            Kind::Webhook(note) => self.redeliver(note),
            Kind::Worker(message) => {
                self.in_flight.remove(&message.id);
                lock(&self.world).queue.push(message);
            }
            Kind::Get(_) | Kind::ReadBatch(_) | Kind::Reconciler | Kind::Operator(_) => {}
        }
    }

    fn stop_waiting_payout(&mut self, i: usize, id: TaskId) {
        if self.payouts[i].waiting == Some(id) {
            self.payouts[i].waiting = None;
        }
    }

    fn stop_waiting_batch(&mut self, b: usize, id: TaskId) {
        if self.batches[b].waiting == Some(id) {
            self.batches[b].waiting = None;
        }
    }

    /// The merchant's client times out; the request goes on and its answer reaches nobody.
    fn give_up(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        match task.kind {
            Kind::Post(i, _) => self.stop_waiting_payout(i, id),
            Kind::Batch(b, _) => self.stop_waiting_batch(b, id),
            _ => return,
        }
        self.note(|| format!("  the merchant stops waiting for task {id}"));
        lock(&self.world).count("merchant stopped waiting; the request went on");
        self.detached.insert(id);
    }

    fn redeliver(&mut self, mut note: Note) {
        note.attempts += 1;
        if note.attempts < DELIVERIES {
            lock(&self.world).outbox.push(note);
        }
    }

    fn finished(&mut self, id: TaskId, kind: Kind, out: Out) {
        if let Out::Http(status, _, text) = &out {
            let short: String = text.chars().take(160).collect();
            self.note(|| format!("  task {id} answers {status} {short}"));
        }
        // A 5xx says nothing was sent: never after the request reached Vexora.
        if let (Kind::Post(i, _), Out::Http(status, _, _)) = (&kind, &out)
            && *status >= 500
            && lock(&self.world).sent_by.contains(&id)
        {
            let t = self.payouts[*i].trade_no.clone();
            lock(&self.world).violation(format!("{t}: answered {status} after sending to Vexora"));
        }
        if self.detached.remove(&id) {
            // Nobody hears the answer; a redelivered webhook or message is the world's business.
            if let (Kind::Worker(message), Out::Worker(_)) = (&kind, &out) {
                self.in_flight.remove(&message.id);
            }
            return;
        }
        match (kind, out) {
            (Kind::Post(i, amount), Out::Http(status, body, _)) => {
                self.stop_waiting_payout(i, id);
                if matches!(status, 200..=202) {
                    self.payouts[i].accepted = true;
                    self.payouts[i].accepted_amounts.insert(amount);
                    self.shown(&body);
                }
            }
            (Kind::Get(_), Out::Http(200, body, _)) => self.shown(&body),
            (Kind::ReadBatch(b), Out::Http(status, body, _)) => {
                if let Some((_, items)) = self.batch_reads.iter().find(|(id, _)| *id == b) {
                    let done = status == 200
                        && body["status"] == "DONE"
                        && body["items"].as_array().map(Vec::len) == Some(*items);
                    if !done {
                        lock(&self.world).violation(format!(
                            "batch {b}: accepted, reads {status} {body} after quiescing"
                        ));
                    }
                }
            }
            (Kind::Batch(b, batch_id), Out::Http(status, _, _)) => {
                self.stop_waiting_batch(b, id);
                if status == 200 || status == 202 {
                    if self.batches[b].ids > 1 {
                        lock(&self.world).count("batch accepted under a new batchId");
                    }
                    let items: Vec<String> = self.batches[b]
                        .items
                        .iter()
                        .map(|&i| self.payouts[i].trade_no.clone())
                        .collect();
                    for &i in &self.batches[b].items {
                        self.payouts[i].accepted = true;
                        let amount = self.payouts[i].amount;
                        self.payouts[i].accepted_amounts.insert(amount);
                    }
                    self.batches[b].accepted = items;
                    self.batches[b].accepted_ids.push(batch_id);
                }
            }
            (Kind::Webhook(note), Out::Http(status, _, text)) => {
                if status == 200 && text == "OK" {
                    lock(&self.world).acknowledged.insert(note.trade_no.clone());
                    if self.storm > 0 && self.rng.random_range(0..20) == 0 {
                        self.redeliver(note);
                    }
                } else {
                    self.redeliver(note);
                }
            }
            (Kind::Worker(message), Out::Worker(answer)) => {
                self.in_flight.remove(&message.id);
                let again = answer
                    .batch_item_failures
                    .iter()
                    .any(|f| f.item_identifier == message.id.to_string());
                let duplicate = self.storm > 0 && self.rng.random_range(0..20) == 0;
                if again || duplicate {
                    lock(&self.world).queue.push(message);
                }
            }
            _ => {}
        }
    }

    /// Stored = shown: an order answered is the order stored, or shown `UNCONFIRMED` (when the
    /// handler could not tell: its write's answer was lost), never another definite state.
    fn shown(&mut self, body: &serde_json::Value) {
        let (Some(t), Some(status)) = (body["tradeNo"].as_str(), body["status"].as_str()) else {
            return;
        };
        let stored = self.store.snapshot(t).map(|o| o.status);
        let fine = match stored {
            Some(s) => s.as_str() == status || status == "UNCONFIRMED",
            None => false,
        };
        if !fine {
            lock(&self.world).violation(format!(
                "{t}: shown {status}, stored {}",
                stored.map_or("(nothing)", |s| s.as_str())
            ));
        }
    }

    fn start_post(&mut self, i: usize, other: bool) {
        let p = &mut self.payouts[i];
        p.attempts += 1;
        let amount = if other { p.amount + 1 } else { p.amount };
        let body = payout_testkit::payout_json(&p.trade_no, amount);
        let api = self.api.clone();
        let id = self.spawn(
            Kind::Post(i, amount),
            Box::pin(async move {
                let request = api_request("POST", "/payouts", Some(&body));
                http_out(submit_payout::handler::handle(&api, request).await)
            }),
        );
        self.payouts[i].waiting = Some(id);
    }

    fn start_batch(&mut self, b: usize) {
        // A retry keeps the batchId or, as a client that never saw the generated one would,
        // uses a new one.
        if self.batches[b].attempts > 0 && self.rng.random_bool(0.5) {
            let batch = &mut self.batches[b];
            batch.id = format!("B{b}x{}", batch.ids);
            batch.ids += 1;
        }
        let items: Vec<serde_json::Value> = self.batches[b]
            .items
            .iter()
            .map(|&i| {
                let p = &self.payouts[i];
                serde_json::from_str(&payout_testkit::payout_json(&p.trade_no, p.amount))
                    .unwrap_or_default()
            })
            .collect();
        let batch = &mut self.batches[b];
        batch.attempts += 1;
        let batch_id = batch.id.clone();
        let body = serde_json::json!({"batchId": batch.id, "items": items}).to_string();
        let api = self.api.clone();
        let id = self.spawn(
            Kind::Batch(b, batch_id),
            Box::pin(async move {
                let request = api_request("POST", "/batches", Some(&body));
                http_out(submit_payout::handler::handle(&api, request).await)
            }),
        );
        self.batches[b].waiting = Some(id);
    }

    fn start_get(&mut self, trade_no: String) {
        let api = self.api.clone();
        let path = format!("/payouts/{trade_no}");
        self.spawn(
            Kind::Get(trade_no),
            Box::pin(async move {
                let request = api_request("GET", &path, None);
                http_out(submit_payout::handler::handle(&api, request).await)
            }),
        );
    }

    fn start_read_batch(&mut self, batch_id: String) {
        let api = self.api.clone();
        let path = format!("/batches/{batch_id}");
        self.spawn(
            Kind::ReadBatch(batch_id),
            Box::pin(async move {
                let request = api_request("GET", &path, None);
                http_out(submit_payout::handler::handle(&api, request).await)
            }),
        );
    }

    fn start_delivery(&mut self, index: usize) {
        let note = lock(&self.world).outbox.remove(index);
        let held = lock(&self.world).vexora.get(&note.trade_no).cloned();
        let Some(payout) = held else { return };
        let amount = payout.amount.to_string();
        let timestamp = crate::world::now().timestamp_millis().to_string();
        let mut fields = vec![
            ("tradeNo", note.trade_no.as_str()),
            ("platFormTradeNo", payout.platform.as_str()),
            ("amount", amount.as_str()),
            ("status", note.status),
            ("message", "simulated"),
            ("timestamp", timestamp.as_str()),
        ];
        if note.status == "0000" {
            fields.push(("successTime", "2026-12-01 09:00:00"));
        }
        let body = payout_testkit::signed_json(&fields, SECRET);
        let hook = self.hook.clone();
        self.spawn(
            Kind::Webhook(note),
            Box::pin(async move {
                http_out(payout_webhook::handler::handle(&hook, webhook_request(&body)).await)
            }),
        );
    }

    fn start_worker(&mut self, index: usize) {
        let message = lock(&self.world).queue.remove(index);
        self.in_flight.insert(message.id, message.clone());
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": message.id.to_string(),
            "body": message.body,
            "eventSource": "aws:sqs",
        }]}))
        .unwrap_or_else(|e| panic!("an SQS event: {e}"));
        let worker = self.worker.clone();
        self.spawn(
            Kind::Worker(message),
            Box::pin(async move {
                let deadline = Instant::now() + Duration::from_secs(3600);
                Out::Worker(worker.handle(&event, deadline).await)
            }),
        );
    }

    fn start_reconciler(&mut self) {
        let recon = self.recon.clone();
        self.spawn(
            Kind::Reconciler,
            Box::pin(async move {
                let deadline = Instant::now() + Duration::from_secs(3600);
                let _ = recon.run(crate::world::now(), deadline).await;
                Out::Done
            }),
        );
    }

    /// An operator looks at an order in review and asks Vexora (out of band) what became of it.
    fn look(&mut self, trade_no: &str) {
        let Some(order) = self.store.snapshot(trade_no) else {
            return;
        };
        let at_vexora = lock(&self.world).vexora.get(trade_no).map(|p| p.status);
        let to = match at_vexora {
            None | Some("00029") => OrderStatus::Failed,
            Some("0000") => OrderStatus::Succeeded,
            Some(_) => return,
        };
        self.note(|| {
            format!(
                "  operator looks at {trade_no}: {} (Vexora {at_vexora:?}), decides {to}",
                order.status
            )
        });
        self.looks.push(Look { order, to });
    }

    /// The operator resolves on what they saw when they looked (`payouts-admin resolve`).
    fn act(&mut self, index: usize) {
        let look = self.looks.remove(index);
        let now = crate::world::now();
        let Ok(transition) =
            payout_app::review::resolution(&look.order, look.to, "operator", "ticket 1", now)
        else {
            return;
        };
        let store = self.store.clone();
        let trade_no = look.order.trade_no.clone();
        self.spawn(
            Kind::Operator(trade_no.as_str().to_owned()),
            Box::pin(async move {
                use payout_app::store::OrderStore;
                let _ = store.transition(&trade_no, &transition).await;
                Out::Done
            }),
        );
    }

    fn progress(&mut self, index: usize) {
        let pay = self.rng.random_range(0..4) > 0;
        let mut w = lock(&self.world);
        let processing: Vec<String> = w
            .vexora
            .iter()
            .filter(|(_, p)| p.status == "0015")
            .map(|(t, _)| t.clone())
            .collect();
        let Some(t) = processing.get(index % processing.len().max(1)).cloned() else {
            return;
        };
        let status = if pay { "0000" } else { "00029" };
        if let Some(p) = w.vexora.get_mut(&t) {
            p.status = status;
        }
        w.note(|| format!("  vexora {} {t}", if pay { "pays" } else { "fails" }));
        w.outbox.push(Note {
            trade_no: t,
            status,
            attempts: 0,
        });
    }

    /// Time passes; a task that has run longer than its function's timeout is ended.
    fn tick(&mut self, seconds: i64) {
        let now = crate::world::now() + chrono::Duration::seconds(seconds);
        set_now(now);
        self.note(|| format!("  {seconds} s pass"));
        let late: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| now - t.started > t.kind.timeout())
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.crash(id);
        }
    }

    fn actions(&mut self) -> Vec<(u32, Action)> {
        let mut options = Vec::new();
        let (waiting, outbox, queue, processing) = {
            let w = lock(&self.world);
            (
                w.waiting
                    .iter()
                    .map(|(g, (t, _))| (*g, *t))
                    .collect::<Vec<_>>(),
                w.outbox.len(),
                w.queue.len(),
                w.vexora.values().filter(|p| p.status == "0015").count(),
            )
        };
        if !waiting.is_empty() {
            let (gate, task) = waiting[self.rng.random_range(0..waiting.len())];
            options.push((60, Action::Release(gate)));
            if self.storm > 0 {
                options.push((2 * self.storm, Action::Crash(task)));
            }
        }
        for (i, p) in self.payouts.iter().enumerate() {
            let retry = p.waiting.is_none() && p.attempts < 4 && (!p.accepted || p.attempts < 2);
            if retry && p.batch.is_none() {
                options.push((6, Action::Post(i)));
            }
            // A batch's payout posted alone (its batch failed, or the merchant's two systems).
            if retry && p.batch.is_some() {
                options.push((1, Action::Post(i)));
            }
            if retry && self.storm > 0 {
                options.push((1, Action::PostOther(i)));
            }
        }
        let merchant_waiting: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| {
                matches!(t.kind, Kind::Post(..) | Kind::Batch(..)) && !self.detached.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        if self.storm > 0 && !merchant_waiting.is_empty() {
            let id = merchant_waiting[self.rng.random_range(0..merchant_waiting.len())];
            options.push((2, Action::GiveUp(id)));
        }
        for (b, batch) in self.batches.iter().enumerate() {
            if batch.waiting.is_none() && batch.accepted.is_empty() && batch.attempts < 4 {
                options.push((6, Action::Batch(b)));
            }
        }
        if !self.payouts.is_empty() {
            options.push((2, Action::Get(self.rng.random_range(0..self.payouts.len()))));
        }
        if outbox > 0 {
            options.push((12, Action::Deliver(self.rng.random_range(0..outbox))));
        }
        if processing > 0 {
            options.push((4, Action::Progress(self.rng.random_range(0..processing))));
        }
        let running = |k: fn(&Kind) -> bool| self.tasks.values().filter(|t| k(&t.kind)).count();
        if queue > 0 && running(|k| matches!(k, Kind::Worker(_))) < 2 {
            options.push((8, Action::Worker(self.rng.random_range(0..queue))));
        }
        if running(|k| matches!(k, Kind::Reconciler)) < 2 {
            options.push((3, Action::Reconcile));
        }
        options.push((4, Action::Tick(self.rng.random_range(1..=10))));
        let big = [60, 600, 1800, 3600, 6 * 3600, 25 * 3600][self.rng.random_range(0..6usize)];
        options.push((2, Action::Tick(big)));
        let review: Vec<usize> = (0..self.payouts.len())
            .filter(|&i| {
                self.store
                    .snapshot(&self.payouts[i].trade_no)
                    .is_some_and(|o| o.manual_review && !o.status.is_final())
            })
            .collect();
        if !review.is_empty() {
            options.push((
                3,
                Action::Look(review[self.rng.random_range(0..review.len())]),
            ));
        }
        if !self.looks.is_empty() {
            options.push((3, Action::Act(self.rng.random_range(0..self.looks.len()))));
        }
        options
    }

    fn take(&mut self, action: Action) {
        self.note(|| format!("step {}: {action:?}", self.step));
        match action {
            Action::Release(id) => self.release(id),
            Action::Crash(id) => self.crash(id),
            Action::GiveUp(id) => self.give_up(id),
            Action::Post(i) => self.start_post(i, false),
            Action::PostOther(i) => self.start_post(i, true),
            Action::Batch(b) => self.start_batch(b),
            Action::Get(i) => self.start_get(self.payouts[i].trade_no.clone()),
            Action::Deliver(i) => self.start_delivery(i),
            Action::Progress(i) => self.progress(i),
            Action::Worker(i) => self.start_worker(i),
            Action::Reconcile => self.start_reconciler(),
            Action::Tick(s) => self.tick(s),
            Action::Look(i) => {
                let t = self.payouts[i].trade_no.clone();
                self.look(&t);
            }
            Action::Act(i) => self.act(i),
        }
        self.run_ready();
    }

    /// Runs every started task to its end with no more faults.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            self.run_ready();
            let next = lock(&self.world).waiting.keys().next().copied();
            match next {
                Some(id) => self.release(id),
                None => return,
            }
        }
        lock(&self.world).violation("tasks never finished while quiescing".into());
    }

    /// The world calms down: no more faults or merchant retries; Vexora finishes every payout,
    /// delivers its webhooks, workers take every message, time passes and the reconciler runs.
    fn quiesce(&mut self) {
        self.storm = 0;
        self.note(|| "quiescing".into());
        self.drain();
        for hours in [0, 1, 2, 25, 25, 73, 73] {
            self.tick(hours * 3600 + 60);
            loop {
                let processing = lock(&self.world)
                    .vexora
                    .values()
                    .filter(|p| p.status == "0015")
                    .count();
                if processing == 0 {
                    break;
                }
                self.progress(0);
            }
            for _ in 0..100 {
                let (outbox, queue) = {
                    let w = lock(&self.world);
                    (w.outbox.len(), w.queue.len())
                };
                if outbox > 0 {
                    self.start_delivery(0);
                } else if queue > 0 {
                    self.start_worker(0);
                } else {
                    break;
                }
                self.drain();
            }
            self.start_reconciler();
            self.drain();
        }
    }

    /// The checks once the world is quiet.
    fn check_quiet(&mut self) {
        let mut found = Vec::new();
        for p in &self.payouts {
            let order = self.store.snapshot(&p.trade_no);
            if let Some(o) = &order
                && o.status == OrderStatus::Pending
                && !p.accepted
            {
                found.push(format!(
                    "{}: never accepted, still PENDING after quiescing",
                    p.trade_no
                ));
            }
            if p.accepted {
                match &order {
                    None => found.push(format!("{}: accepted, then lost", p.trade_no)),
                    Some(o) if o.status == OrderStatus::Pending => found.push(format!(
                        "{}: accepted, still PENDING after quiescing",
                        p.trade_no
                    )),
                    Some(o) if !o.status.is_final() && !o.manual_review => found.push(format!(
                        "{}: accepted, {} and not in review after quiescing",
                        p.trade_no, o.status
                    )),
                    Some(_) => {}
                }
            }
        }
        let (ledger, refused) = {
            let w = lock(&self.world);
            (w.vexora.clone(), w.refused_unknown.clone())
        };
        for (t, payout) in ledger.iter().filter(|(t, _)| !refused.contains(*t)) {
            let order = self.store.snapshot(t);
            let expected = match payout.status {
                "0000" => OrderStatus::Succeeded,
                _ => OrderStatus::Failed,
            };
            if let Some(p) = self.payouts.iter().find(|p| &p.trade_no == t)
                && p.accepted
                && !p.accepted_amounts.contains(&payout.amount)
            {
                found.push(format!(
                    "{t}: Vexora paid {} yen; the merchant was told {:?} was accepted",
                    payout.amount, p.accepted_amounts
                ));
            }
            match order {
                None => found.push(format!("{t}: Vexora holds it, we lost it")),
                Some(o) if o.status.is_final() && o.status != expected => found.push(format!(
                    "{t}: {} while Vexora says {}",
                    o.status, payout.status
                )),
                Some(o) if !o.status.is_final() && !o.manual_review => found.push(format!(
                    "{t}: Vexora says {}, order {} after quiescing",
                    payout.status, o.status
                )),
                Some(_) => {}
            }
        }
        let mut w = lock(&self.world);
        for f in found {
            w.violation(f);
        }
    }

    fn run(mut self, options: Options, seed: u64) -> Report {
        while self.step < options.steps {
            self.step += 1;
            let actions = self.actions();
            let Some(action) = pick(&mut self.rng, &actions) else {
                break;
            };
            self.take(action);
            if !lock(&self.world).violations.is_empty() {
                break;
            }
        }
        if lock(&self.world).violations.is_empty() {
            self.quiesce();
            self.check_quiet();
            // Stored = shown, and every accepted batch done.
            let accepted: Vec<String> = self
                .payouts
                .iter()
                .filter(|p| p.accepted)
                .map(|p| p.trade_no.clone())
                .collect();
            for t in accepted {
                self.start_get(t);
            }
            let batches: Vec<(String, usize)> = self
                .batches
                .iter()
                .flat_map(|b| b.accepted_ids.iter().map(|id| (id.clone(), b.items.len())))
                .collect();
            for (id, _) in &batches {
                self.start_read_batch(id.clone());
            }
            self.drain_reads(&batches);
        }
        let w = lock(&self.world);
        Report {
            seed,
            counts: w.counts.clone(),
            violations: w.violations.clone(),
            trace: w.trace.clone(),
            steps: self.step,
        }
    }

    /// Runs the final reads and checks each accepted batch reads `DONE` with all its items.
    fn drain_reads(&mut self, batches: &[(String, usize)]) {
        self.batch_reads = batches.to_vec();
        self.drain();
    }
}

/// Runs one seed.
pub fn run(seed: u64, options: Options) -> Report {
    Sim::new(seed, options).run(options, seed)
}
