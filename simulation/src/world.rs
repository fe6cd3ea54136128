//! The simulated world the real handlers run in: the clock, the gates every port call stops at
//! (so the seed chooses which call goes next and what befalls it), Vexora's ledger and its
//! webhooks, the SQS queue, and the invariants checked on every stored change.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use chrono::{DateTime, TimeZone, Utc};
use payout_domain::order::{Order, OrderStatus};

/// A running invocation (an API request, a webhook delivery, a worker or reconciler run, an
/// operator's write).
pub type TaskId = u64;

thread_local! {
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
}

/// The simulated clock every handler reads (`clock: fn() -> DateTime<Utc>`).
pub fn now() -> DateTime<Utc> {
    let ms = NOW_MS.with(Cell::get);
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn set_now(at: DateTime<Utc>) {
    NOW_MS.with(|c| c.set(at.timestamp_millis()));
}

/// Where a task stopped: the call it is about to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// A DynamoDB call (`operation`, the key it is about).
    Store(&'static str, String),
    /// The SDK's own retry of a write that already landed.
    StoreRetry(&'static str, String),
    /// A payout submit on its way to Vexora.
    VexoraRequest(String),
    /// Vexora's answer to a submit on its way back.
    VexoraAnswer(String),
    /// A payout query.
    VexoraQuery(String),
    /// `SendMessageBatch` to the batch queue.
    Queue,
}

impl Point {
    pub fn label(&self) -> String {
        match self {
            Self::Store(op, key) => format!("dynamodb {op} {key}"),
            Self::StoreRetry(op, key) => format!("dynamodb retry of {op} {key}"),
            Self::VexoraRequest(t) => format!("vexora submit {t} (request)"),
            Self::VexoraAnswer(t) => format!("vexora submit {t} (answer)"),
            Self::VexoraQuery(t) => format!("vexora query {t}"),
            Self::Queue => "sqs send".into(),
        }
    }
}

/// What befalls a DynamoDB call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFate {
    Ok,
    /// Fails; nothing written.
    FailBefore,
    /// The write lands, its answer is lost: an error.
    FailAfter,
    /// The write lands, its answer is lost, and the SDK sends it again later (after other
    /// calls may have run); the second answer is the one returned.
    RetryLater,
}

/// What befalls a submit on its way to Vexora, and what Vexora does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFate {
    /// No connection: certainly not received.
    NotSent,
    /// Lost on the way: the client times out, Vexora never saw it.
    Lost,
    /// Vexora takes it: creates the payout (or refuses it), then answers with `answer`.
    Arrives { create: Create, answer: AnswerKind },
}

/// What Vexora does with a submit it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Creates the payout, processing (`0015`).
    Processing,
    /// Creates the payout and pays it at once (`0000`).
    Paid,
    /// Refuses it (`8000`, nothing created).
    Refused,
    /// Falls over (`5000`, nothing created).
    SystemError,
}

/// How Vexora's answer to a submit comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// `code 0000` with the payout's status (or `8000`/`5000` when nothing was created).
    Plain,
    /// `code 8000` with no data, whatever was created (one Vexora page calls 8000 a system error).
    Code8000,
    /// `code 5000` with the payout in `data`.
    Code5000WithData,
    /// `code 5000`, no data.
    Code5000,
    TimedOut,
    Dropped,
    Http502,
    NotJson,
    /// `0000` stating another amount than the payout's.
    OtherAmount,
}

/// What befalls a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFate {
    Answer,
    TimedOut,
    Code5000,
}

/// The decision the scheduler hands a released task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Store(StoreFate),
    Request(RequestFate),
    /// The answer to a submit comes back (its kind was chosen with the request).
    Answer,
    Query(QueryFate),
    /// The queue takes the messages (`true`) or fails.
    Queue(bool),
}

/// A payout at Vexora.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexoraPayout {
    pub platform: String,
    pub amount: u64,
    pub status: &'static str,
    /// How many times a submit created this `tradeNo` (more than one: paid twice).
    pub created: u32,
}

/// A status notification Vexora still has to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub trade_no: String,
    pub status: &'static str,
    pub attempts: u32,
}

/// An SQS message, visible or in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub body: String,
}

/// Everything the ports and the scheduler share.
#[derive(Debug, Default)]
pub struct World {
    pub current: TaskId,
    /// Gates closed, by gate id: the task stopped there and the call it is about to make.
    pub waiting: BTreeMap<u64, (TaskId, Point)>,
    /// Gates opened, with the decision, not yet seen by their task.
    pub grants: BTreeMap<u64, Grant>,
    pub next_gate: u64,
    /// Submit answers chosen with the request, by task.
    pub answers: BTreeMap<TaskId, AnswerKind>,
    pub vexora: BTreeMap<String, VexoraPayout>,
    pub outbox: Vec<Note>,
    pub queue: Vec<Message>,
    pub next_message: u64,
    /// The last event version published per order.
    pub events: BTreeMap<String, u64>,
    /// The final state each order first reached.
    pub finals: BTreeMap<String, OrderStatus>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    /// Whether step lines are kept (off when only counting seeds).
    pub tracing: bool,
    pub submits: BTreeMap<String, u32>,
    /// Orders failed on a submit `8000` while nothing else was known
    /// (docs/contract.md § Evidence ranks).
    pub refused_unknown: BTreeSet<String>,
    /// How often each kind of event happened (what the seeds explored).
    pub counts: BTreeMap<String, u64>,
    /// Orders of which the webhook acknowledged a notification (`200 OK`: durably applied):
    /// after that, no request-level refusal may fail them. The world's own record, independent
    /// of how the code decides what is known.
    pub acknowledged: BTreeSet<String>,
    /// Tasks whose submit reached Vexora (so a `5xx` from them would be a lie).
    pub sent_by: BTreeSet<TaskId>,
}

impl World {
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            self.trace.push(line());
        }
    }

    pub fn count(&mut self, what: impl Into<String>) {
        *self.counts.entry(what.into()).or_default() += 1;
    }

    pub fn violation(&mut self, what: String) {
        self.trace.push(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// The checks on every stored change of an order: final states never change, nothing is
    /// `FAILED` that Vexora created and did not fail, an order with events is never removed,
    /// and its events are numbered without gaps or reuse.
    pub fn stored(&mut self, key: &str, old: Option<&Order>, new: Option<&Order>) {
        if old == new {
            return;
        }
        match (old, new) {
            (Some(o), None) if o.queued => self.count("half-stored item withdrawn"),
            (Some(_), None) => self.count("unsent intent withdrawn"),
            (Some(o), Some(n)) if o.status != n.status => {
                self.count(format!("move {} -> {}", o.status, n.status));
            }
            (Some(o), Some(n)) if n.anomaly_count > o.anomaly_count => {
                let reason = n.last_anomaly.as_ref().map_or("?", |a| a.reason.label());
                self.count(format!("anomaly kept: {reason}"));
            }
            (Some(o), Some(n)) if n.batch_ids.len() > o.batch_ids.len() => {
                self.count("queued item listed by another batch");
            }
            _ => {}
        }
        if let Some(old) = old
            && old.status.is_final()
            && new.is_none_or(|n| n.status != old.status)
        {
            self.violation(format!(
                "{key}: final {} changed to {}",
                old.status,
                new.map_or("(removed)", |n| n.status.as_str())
            ));
        }
        if let Some(new) = new {
            if new.status.is_final() {
                self.finals.entry(key.to_owned()).or_insert(new.status);
            }
            if new.status == OrderStatus::Failed
                && old.is_some_and(|o| o.status == OrderStatus::Pending)
                && new.vexora.as_ref().and_then(|v| v.code.as_deref()) == Some("8000")
                && !self.acknowledged.contains(key)
            {
                // The contract's one decision on an answer alone
                // (docs/contract.md § Evidence ranks): a submit `8000` without data about an
                // order of which nothing else is known. A Vexora that answers so for a payout it
                // created defeats it; counted, not a violation.
                self.refused_unknown.insert(key.to_owned());
            } else if new.status == OrderStatus::Failed
                && !self.refused_unknown.contains(key)
                && let Some(p) = self.vexora.get(key)
                && p.status != "00029"
            {
                let status = p.status;
                self.violation(format!(
                    "{key}: FAILED while Vexora created it (status {status})"
                ));
            }
        }
        match new {
            None => {
                if old.is_some_and(|o| o.event_count() > 0) {
                    self.violation(format!("{key}: an order with events was removed"));
                }
                self.events.remove(key);
            }
            Some(_) => {
                for event in payout_domain::events::for_change(old, new) {
                    let last = self.events.get(key).copied().unwrap_or(0);
                    if event.detail.version != last + 1 {
                        self.violation(format!(
                            "{key}: event {} published after event {last}",
                            event.detail.event_id
                        ));
                    }
                    self.events.insert(key.to_owned(), event.detail.version);
                }
            }
        }
    }
}

/// The world as the ports hold it.
pub type Shared = Arc<Mutex<World>>;

pub fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stops the calling task at `point` until the scheduler releases it with a grant.
pub fn gate(world: &Shared, point: Point) -> Gate {
    Gate {
        world: world.clone(),
        point: Some(point),
        id: 0,
    }
}

/// One call's stop (a task may wait at several at once, e.g. writes sent together).
#[derive(Debug)]
pub struct Gate {
    world: Shared,
    point: Option<Point>,
    id: u64,
}

impl Future for Gate {
    type Output = Grant;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Grant> {
        let point = self.point.take();
        let world = self.world.clone();
        let mut world = lock(&world);
        if let Some(point) = point {
            let me = world.current;
            world.next_gate += 1;
            let id = world.next_gate;
            world.waiting.insert(id, (me, point));
            self.id = id;
            return Poll::Pending;
        }
        match world.grants.remove(&self.id) {
            Some(grant) => Poll::Ready(grant),
            None => Poll::Pending,
        }
    }
}
