//! Orders kept durably: the port the flows use ([`OrderStore`]) and its types. The DynamoDB
//! adapter is `payout_aws::store`; the in-memory one for tests is `payout_testkit::InMemoryStore`.

use std::future::Future;

use chrono::{DateTime, Utc};

use payout_domain::order::{
    Anomaly, HistoryEntry, MAX_ANOMALIES_KEPT, MAX_HISTORY_KEPT, Order, OrderStatus, VexoraAnswer,
};
use payout_domain::{Amount, TradeNo};

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store failed or could not be reached; the adapter's error is kept as the source.
    #[error("the order store failed or could not be reached")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A request to the store could not be built (a bug, not an outage).
    #[error("a request to the order store could not be built")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored item does not read as an order.
    #[error("stored order is unreadable: attribute `{0}`")]
    Corrupt(&'static str),
    /// No order may move to this state (nothing moves to `PENDING`).
    #[error("no state may move to {0}")]
    ImpossibleTransition(OrderStatus),
    /// A guarded write was refused although the order as returned allows it: it changed in
    /// between. Nothing was written; the caller tries again later.
    #[error("the order changed during the write; nothing was written")]
    Conflict,
}

/// The result of a create-if-absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// An order with this `tradeNo` already exists; here it is, from the same round trip.
    AlreadyExists(Box<Order>),
}

/// A move of one order to a new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: OrderStatus,
    /// When set, the move happens only if the order is still at this version.
    pub expected_version: Option<u64>,
    /// Vexora's answer that caused the move, kept on the order.
    pub answer: Option<VexoraAnswer>,
    pub at: DateTime<Utc>,
    /// Next reconciler check for a non-final target; ignored for final ones.
    pub check_after: Option<DateTime<Utc>>,
    /// When set, the move happens only if the order is for this amount.
    pub expected_amount: Option<Amount>,
    /// A report to keep in the order's history in the same write. Transitions append without a
    /// bound: an order moves at most four times, so only [`Annotation`] writes need one.
    pub history: Option<HistoryEntry>,
    /// An anomaly to keep in the same write (an undocumented status moves a `PENDING` order
    /// and is flagged at once).
    pub anomaly: Option<Anomaly>,
    /// Written as the item's `lastWrite`: a retried write that finds its own id knows it landed.
    pub write_id: Option<String>,
    /// When set, the move happens only to the order this submit stored; another intent for the
    /// same `tradeNo` (after ours was withdrawn) is [`Transitioned::NotFound`] to it.
    pub expected_intent: Option<String>,
    /// An operator's resolution ([`crate::review`]): the move happens only if the order is
    /// flagged for manual review, and a move to `FAILED` only if no report ever said it was
    /// paid (`reportedPaidAt` absent), both checked in the write itself.
    pub operator_resolution: bool,
    /// A request-level refusal (a submit `code 8000` without data): the move happens only if
    /// nothing else is known of the order ([`Transition::knows_nothing`]), checked in the write.
    pub refusal: bool,
}

impl Transition {
    /// Whether this move carries a report that says the payout was paid
    /// ([`crate::review::says_paid`]): the store notes it once in `reportedPaidAt`.
    pub fn says_paid(&self) -> bool {
        crate::review::says_paid(self.history.as_ref(), self.anomaly.as_ref())
    }

    /// A move to `to` at `at` with no other guard, answer or history.
    pub fn to(to: OrderStatus, at: DateTime<Utc>) -> Self {
        Self {
            to,
            expected_version: None,
            answer: None,
            at,
            check_after: None,
            expected_amount: None,
            history: None,
            anomaly: None,
            write_id: None,
            expected_intent: None,
            operator_resolution: false,
            refusal: false,
        }
    }

    /// Whether nothing is known of `order` but that its submit was sent: `PENDING`, no platform
    /// order, no earlier report, no report of payment. Only then may a request-level refusal
    /// fail it (docs/contract.md § Evidence ranks).
    pub fn knows_nothing(order: &Order) -> bool {
        order.status == OrderStatus::Pending
            && order.plat_form_trade_no.is_none()
            && order.history.is_empty()
            && order.reported_paid_at.is_none()
    }

    /// Whether the guard of this transition lets `order` move (state, version, amount, evidence).
    /// Nothing moves to `FAILED` once a report said the payout was paid.
    pub fn allows(&self, order: &Order) -> bool {
        order.status.may_move_to(self.to)
            && self.expected_version.is_none_or(|v| v == order.version)
            && self.expected_amount.is_none_or(|a| a == order.amount)
            && (self.to != OrderStatus::Failed || order.reported_paid_at.is_none())
            && (!self.refusal || Self::knows_nothing(order))
            && (!self.operator_resolution || order.manual_review)
    }

    /// Whether `order` is another intent than the one this transition is for.
    pub fn is_for_another_intent(&self, order: &Order) -> bool {
        self.expected_intent
            .as_ref()
            .is_some_and(|id| order.intent_id.as_ref() != Some(id))
    }
}

/// What a guarded transition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// Moved; the order as stored now.
    Applied(Order),
    /// The guard failed; the order as it stands (so the caller can tell duplicate from stale).
    Rejected(Order),
    NotFound,
}

/// An annotation: a report kept on an order without changing its state (its history entry and,
/// when it is an anomaly, the anomaly), both in one write. Built from the order as last read, so each
/// bounded list is appended to only while it has room (the counts go on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub history: Option<HistoryEntry>,
    pub anomaly: Option<Anomaly>,
    /// Whether each list still has room, from the order as last read.
    pub history_room: bool,
    pub anomalies_room: bool,
    /// Written as `lastWrite` (see [`Transition::write_id`]).
    pub write_id: String,
}

impl Annotation {
    /// Whether this annotation carries a report that says the payout was paid
    /// ([`crate::review::says_paid`]): the store notes it once in `reportedPaidAt`.
    pub fn says_paid(&self) -> bool {
        crate::review::says_paid(self.history.as_ref(), self.anomaly.as_ref())
    }

    pub fn new(
        known: &Order,
        history: Option<HistoryEntry>,
        anomaly: Option<Anomaly>,
        write_id: String,
    ) -> Self {
        Self {
            history,
            anomaly,
            history_room: known.history.len() < MAX_HISTORY_KEPT,
            anomalies_room: known.anomalies.len() < MAX_ANOMALIES_KEPT,
            write_id,
        }
    }
}

/// The reconciler's claim on an order's next check: `checkAfter` moves from the value the caller
/// read (`seen`) to `next`, the attempt is counted, the query time noted, and the order is
/// optionally marked for manual review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckClaim {
    pub seen: DateTime<Utc>,
    pub next: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub manual_review: bool,
}

/// One page of unresolved orders due for a check.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePage {
    pub trade_nos: Vec<TradeNo>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<DueCursor>,
}

/// A position in the unresolved orders, due-first: after the order `trade_no` due at
/// `check_after_ms` (epoch milliseconds). Each adapter turns it into its own paging key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    pub check_after_ms: i64,
    pub trade_no: String,
}

/// The port the flows use to keep orders.
pub trait OrderStore: Send + Sync {
    /// Stores a new order unless its `tradeNo` exists; never overwrites.
    fn create(&self, order: &Order) -> impl Future<Output = Result<Created, StoreError>> + Send;

    fn get(
        &self,
        trade_no: &TradeNo,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Moves an order in one conditional write guarded by the allowed previous states
    /// (and the version when given).
    fn transition(
        &self,
        trade_no: &TradeNo,
        transition: &Transition,
    ) -> impl Future<Output = Result<Transitioned, StoreError>> + Send;

    /// Removes the order stored by the intent `intent_id` while it is still `PENDING`, and only
    /// then: for a submit that certainly never reached Vexora, so that a retry starts afresh.
    /// `false` when it was not removed (it moved on, is gone, or is another intent's).
    fn delete_pending(
        &self,
        trade_no: &TradeNo,
        intent_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the next check of an unresolved order ([`CheckClaim`]). `false` when another run
    /// took it first (so overlapping runs never query or apply twice).
    fn claim_check(
        &self,
        trade_no: &TradeNo,
        claim: &CheckClaim,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a merchant-requested refresh: at most one query per `min_interval` per order.
    fn claim_refresh(
        &self,
        trade_no: &TradeNo,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Annotates an order: keeps a report (history, anomaly) on it without changing its state,
    /// in one write, once: a retry of an annotation that landed (whatever was written since)
    /// writes nothing.
    /// The order as stored after it; `None` when the order does not exist.
    fn annotate(
        &self,
        trade_no: &TradeNo,
        annotation: &Annotation,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Unresolved orders whose next check is at or before `now`, oldest first.
    fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> impl Future<Output = Result<DuePage, StoreError>> + Send;
}
