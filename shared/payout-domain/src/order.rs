//! The payout order state machine (docs/contract.md § States): which moves are allowed, and
//! what a report about an order does to it. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::{Amount, PayoutRequest, TradeNo};

/// At most this many anomalies are kept on an order; the count goes on.
pub const MAX_ANOMALIES_KEPT: usize = 20;
/// At most this many reports are kept in an order's history by an annotation (a report kept without
/// a move); the count goes on.
pub const MAX_HISTORY_KEPT: usize = 50;

/// Where a payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Intent stored; Vexora has not answered yet.
    Pending,
    /// Vexora's answer is unknown; resolved later by query or webhook.
    Unconfirmed,
    /// Vexora accepted the payout (`0015`).
    Processing,
    /// Money sent (`0000`). Final.
    Succeeded,
    /// No money sent (`00029`, or a submit `code 8000` with no platform order). Final.
    Failed,
}

impl OrderStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Unconfirmed,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn is_final(self) -> bool {
        match self {
            Self::Succeeded | Self::Failed => true,
            Self::Pending | Self::Unconfirmed | Self::Processing => false,
        }
    }

    /// The table of docs/contract.md § States, verbatim.
    pub fn may_move_to(self, to: Self) -> bool {
        use OrderStatus::*;
        match (self, to) {
            (Pending, Unconfirmed | Processing | Succeeded | Failed) => true,
            (Unconfirmed, Processing | Succeeded | Failed) => true,
            (Processing, Succeeded | Failed) => true,
            (Pending, Pending)
            | (Unconfirmed, Pending | Unconfirmed)
            | (Processing, Pending | Unconfirmed | Processing)
            | (Succeeded, _)
            | (Failed, _) => false,
        }
    }

    /// The states from which a move to `to` is allowed: the guard of a conditional write.
    pub fn allowed_sources(to: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|from| from.may_move_to(to))
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Unconfirmed => "UNCONFIRMED",
            Self::Processing => "PROCESSING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What a report (a submit answer, a webhook, a query answer) says about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Processing,
    Succeeded,
    Failed,
    /// The report says nothing certain (timeout, `code 5000`, an undocumented status, ...).
    Unknown,
}

impl Reported {
    /// The state this report would put an order in.
    pub fn target(self) -> OrderStatus {
        match self {
            Self::Processing => OrderStatus::Processing,
            Self::Succeeded => OrderStatus::Succeeded,
            Self::Failed => OrderStatus::Failed,
            Self::Unknown => OrderStatus::Unconfirmed,
        }
    }
}

/// What to do with a report, given the order's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move the order to this state.
    Move(OrderStatus),
    /// The order is already where the report says: nothing to do.
    Duplicate,
    /// The report is older than what we know (e.g. `0015` after `0000`), or carries no
    /// information: nothing changes and nothing is wrong.
    Stale,
    /// The report contradicts a final state (success after failure or the reverse). Nothing
    /// changes; the report is kept on the order and raises an alarm.
    Anomaly,
}

/// The single rule for applying a report to an order, every case spelled out.
pub fn decide(current: OrderStatus, reported: Reported) -> Decision {
    use OrderStatus::{Failed, Pending, Processing, Succeeded, Unconfirmed};
    match (current, reported) {
        (Pending, Reported::Processing) => Decision::Move(Processing),
        (Pending, Reported::Succeeded) | (Unconfirmed | Processing, Reported::Succeeded) => {
            Decision::Move(Succeeded)
        }
        (Pending | Unconfirmed | Processing, Reported::Failed) => Decision::Move(Failed),
        (Pending, Reported::Unknown) => Decision::Move(Unconfirmed),
        (Unconfirmed, Reported::Processing) => Decision::Move(Processing),
        (Unconfirmed, Reported::Unknown)
        | (Processing, Reported::Processing)
        | (Succeeded, Reported::Succeeded)
        | (Failed, Reported::Failed) => Decision::Duplicate,
        (Succeeded, Reported::Failed) | (Failed, Reported::Succeeded) => Decision::Anomaly,
        (Processing, Reported::Unknown)
        | (Succeeded | Failed, Reported::Processing | Reported::Unknown) => Decision::Stale,
    }
}

/// A payout order as stored and shown. It holds only the last 4 digits of the account number
/// and no mobile, e-mail or names: nothing after the submit needs them, so nothing keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub trade_no: TradeNo,
    pub status: OrderStatus,
    /// Increases by one with every stored change; guards read-modify-write updates.
    pub version: u64,
    pub amount: Amount,
    pub bank_code: String,
    /// `****` + last 4 digits ([`crate::BankNumber::masked`]).
    pub bank_number_masked: String,
    pub user_id: String,
    pub remark: Option<String>,
    /// [`PayoutRequest::fingerprint`]: tells a retry from a different payout on the same key.
    pub fingerprint: String,
    pub plat_form_trade_no: Option<String>,
    /// Vexora's last answer about this order.
    pub vexora: Option<VexoraAnswer>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the reconciler should next look at this order; `None` once final.
    pub check_after: Option<DateTime<Utc>>,
    pub anomalies: Vec<Anomaly>,
    /// How many anomalies were seen, including any beyond the stored ones.
    pub anomaly_count: u64,
    /// The notifications received for this order, oldest first (bounded; see the store).
    pub history: Vec<HistoryEntry>,
    /// How many times the reconciler has taken this order for a check.
    pub check_attempts: u32,
    /// When Vexora was last queried about this order (reconciler or refresh).
    pub last_query_at: Option<DateTime<Utc>>,
    /// Unresolved past the reconciler's age limit: a person must look at it.
    pub manual_review: bool,
    /// The id of the last write to this item: a write retried after it landed (the SDK retries
    /// when an answer is lost) recognizes itself instead of mistaking its own item for another.
    pub last_write: Option<String>,
    /// The id of the submit that stored this order, never changed: tells this intent from a later
    /// one for the same `tradeNo` (both `PENDING`, version 1) (`payout_app::intent`).
    pub intent_id: Option<String>,
    /// The last anomaly recorded, kept even when [`Order::anomalies`] is full.
    pub last_anomaly: Option<Anomaly>,
    /// When a report first said this payout was paid, kept or not, moved or not
    /// (`payout_app::review::says_paid`): an operator may never resolve it `FAILED`.
    pub reported_paid_at: Option<DateTime<Utc>>,
    /// The batch this payout came in (`payout_app::batch`).
    pub batch_id: Option<String>,
    /// A batch item waiting in the queue: stored, never sent, its request kept (apart from the
    /// order) until a worker takes it (`payout_app::batch`). Never abandoned while queued.
    pub queued: bool,
    /// When a worker took a batch item to send it: its submit's start (the signature's
    /// timestamp and the abandoned clock); `None` for a `POST /payouts` order, whose submit
    /// starts at `created_at`.
    pub sent_at: Option<DateTime<Utc>>,
    /// Every batch that listed this payout while it was queued: it is sent if any of them was
    /// accepted, withdrawn if none ever was (docs/contract.md § Half-stored batches).
    pub batch_ids: Vec<String>,
}

/// One Vexora report as received (PII-free): the order's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub source: ReportSource,
    pub status: String,
    pub plat_form_trade_no: Option<String>,
    pub amount: Option<String>,
    /// An operator's decision (`payout_app::review`): who decided and on what evidence.
    pub decision: Option<OperatorDecision>,
}

/// An operator's resolution of an order in manual review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorDecision {
    /// The caller's identity (an IAM ARN).
    pub operator: String,
    /// What Vexora confirmed, as the operator recorded it.
    pub evidence: String,
}

/// Where a report about an order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    /// Vexora's answer to our submit.
    Submit,
    /// A signed status notification.
    Webhook,
    /// Vexora's answer to our query.
    Query,
    /// An operator's decision (`payouts-admin resolve`), never Vexora's.
    Operator,
}

impl ReportSource {
    pub const ALL: [Self; 4] = [Self::Submit, Self::Webhook, Self::Query, Self::Operator];

    pub fn label(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Webhook => "webhook",
            Self::Query => "query",
            Self::Operator => "operator",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.label() == label)
    }
}

/// What Vexora last said about an order, as kept on it: `{code, status, message}` plus the
/// platform order number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VexoraAnswer {
    pub code: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
    pub plat_form_trade_no: Option<String>,
}

/// How long after its creation a `PENDING` order is abandoned: its submit function has
/// certainly ended (the function timeout is set below this; see `payout_aws::time_budget` and the SAM
/// template), so nobody will record Vexora's answer. Readers and the reconciler then store it
/// as `UNCONFIRMED`.
pub fn pending_abandoned_after(vexora_timeout: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(vexora_timeout).unwrap_or(chrono::Duration::MAX)
        + chrono::Duration::seconds(20)
}

impl Order {
    /// The batches that listed this order (the first one included, for items stored before
    /// `batchIds` was kept).
    pub fn listed_by(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.batch_ids.iter().map(String::as_str).collect();
        if let Some(first) = self.batch_id.as_deref()
            && !ids.contains(&first)
        {
            ids.push(first);
        }
        ids
    }

    /// How many status events this order stands for ([`crate::events`]): one per move out of a
    /// state (counted in `version`, which is 1 while `PENDING`) and one per recorded anomaly
    /// (`anomaly_count`, counted also when the list is full), each counted by the very write
    /// that makes it. Derived from counters every write has always kept, so an order written
    /// before events existed, or by an older build mid-deploy, numbers its events the same way.
    pub fn event_count(&self) -> u64 {
        self.version.saturating_sub(1) + self.anomaly_count
    }

    /// Whether this order is `PENDING` past the moment its submit has certainly ended
    /// ([`pending_abandoned_after`]): nobody will record Vexora's answer, so it is to be stored
    /// as `UNCONFIRMED` (`payout_app::apply::settle_abandoned`).
    pub fn is_abandoned(&self, now: DateTime<Utc>, abandoned_after: chrono::Duration) -> bool {
        self.status == OrderStatus::Pending
            && !self.queued
            && now - self.submit_started() >= abandoned_after
    }

    /// When this order's submit started: when a worker took it, or when it was created.
    pub fn submit_started(&self) -> DateTime<Utc> {
        self.sent_at.unwrap_or(self.created_at)
    }

    /// A new order for a validated request, `PENDING`, version 1.
    pub fn pending(
        trade_no: TradeNo,
        request: &PayoutRequest,
        now: DateTime<Utc>,
        check_after: DateTime<Utc>,
    ) -> Self {
        Self {
            trade_no,
            status: OrderStatus::Pending,
            version: 1,
            amount: request.amount,
            bank_code: request.bank_code.as_str().to_owned(),
            bank_number_masked: request.bank_number.masked(),
            user_id: request.user_id.as_str().to_owned(),
            remark: request.remark.as_ref().map(|r| r.as_str().to_owned()),
            fingerprint: request.fingerprint(),
            plat_form_trade_no: None,
            vexora: None,
            created_at: now,
            updated_at: now,
            check_after: Some(check_after),
            anomalies: Vec::new(),
            anomaly_count: 0,
            history: Vec::new(),
            check_attempts: 0,
            last_query_at: None,
            manual_review: false,
            last_write: None,
            intent_id: None,
            last_anomaly: None,
            reported_paid_at: None,
            batch_id: None,
            queued: false,
            sent_at: None,
            batch_ids: Vec::new(),
        }
    }
}

/// A report that contradicted what we know, kept on the order. `report` holds only PII-free
/// fields of the report (codes, status, amounts, platform number), never names or accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub at: DateTime<Utc>,
    pub source: ReportSource,
    pub reason: AnomalyReason,
    pub report: BTreeMap<String, String>,
}

/// Why a report was kept as an anomaly instead of moving the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyReason {
    /// A final state contradicted (success after failure or the reverse).
    ContradictsFinalState,
    /// The reported amount is not the order's.
    AmountMismatch,
    /// A status Vexora does not document for payouts.
    UndocumentedStatus,
    /// An answer outside Vexora's documented codes, or without a status.
    UndocumentedAnswer,
    /// An answer about another `tradeNo` than the one asked about.
    TradeNoMismatch,
    /// A report of failure against stronger evidence (docs/contract.md § Evidence ranks): a
    /// request-level refusal about an order Vexora already reported on, or any failure of an
    /// order a report said was paid. Kept; the order does not move.
    OutrankedFailure,
}

impl AnomalyReason {
    pub const ALL: [Self; 6] = [
        Self::ContradictsFinalState,
        Self::AmountMismatch,
        Self::UndocumentedStatus,
        Self::UndocumentedAnswer,
        Self::TradeNoMismatch,
        Self::OutrankedFailure,
    ];

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.label() == label)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::ContradictsFinalState => "contradicts_final_state",
            Self::AmountMismatch => "amount_mismatch",
            Self::UndocumentedStatus => "undocumented_status",
            Self::UndocumentedAnswer => "undocumented_answer",
            Self::TradeNoMismatch => "trade_no_mismatch",
            Self::OutrankedFailure => "outranked_failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;
    use chrono::Utc;

    #[test]
    fn the_transition_table_is_exactly_the_contracts() {
        let allowed = [
            (Pending, Unconfirmed),
            (Pending, Processing),
            (Pending, Succeeded),
            (Pending, Failed),
            (Unconfirmed, Processing),
            (Unconfirmed, Succeeded),
            (Unconfirmed, Failed),
            (Processing, Succeeded),
            (Processing, Failed),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.may_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn final_states_never_move() {
        for from in [Succeeded, Failed] {
            assert!(from.is_final());
            for to in OrderStatus::ALL {
                assert!(!from.may_move_to(to), "{from} -> {to}");
            }
            for reported in [
                Reported::Processing,
                Reported::Succeeded,
                Reported::Failed,
                Reported::Unknown,
            ] {
                assert!(
                    !matches!(decide(from, reported), Decision::Move(_)),
                    "{from} moved on {reported:?}"
                );
            }
        }
    }

    #[test]
    fn every_state_and_report_has_the_expected_decision() {
        use Decision::*;
        let table = [
            (Pending, Reported::Processing, Move(Processing)),
            (Pending, Reported::Succeeded, Move(Succeeded)),
            (Pending, Reported::Failed, Move(Failed)),
            (Pending, Reported::Unknown, Move(Unconfirmed)),
            (Unconfirmed, Reported::Processing, Move(Processing)),
            (Unconfirmed, Reported::Succeeded, Move(Succeeded)),
            (Unconfirmed, Reported::Failed, Move(Failed)),
            (Unconfirmed, Reported::Unknown, Duplicate),
            (Processing, Reported::Processing, Duplicate),
            (Processing, Reported::Succeeded, Move(Succeeded)),
            (Processing, Reported::Failed, Move(Failed)),
            (Processing, Reported::Unknown, Stale),
            (Succeeded, Reported::Processing, Stale),
            (Succeeded, Reported::Succeeded, Duplicate),
            (Succeeded, Reported::Failed, Anomaly),
            (Succeeded, Reported::Unknown, Stale),
            (Failed, Reported::Processing, Stale),
            (Failed, Reported::Succeeded, Anomaly),
            (Failed, Reported::Failed, Duplicate),
            (Failed, Reported::Unknown, Stale),
        ];
        assert_eq!(table.len(), OrderStatus::ALL.len() * 4);
        for (current, reported, expected) in table {
            assert_eq!(
                decide(current, reported),
                expected,
                "{current} + {reported:?}"
            );
        }
    }

    #[test]
    fn allowed_sources_are_the_guard_of_each_target() {
        assert_eq!(OrderStatus::allowed_sources(Pending), vec![]);
        assert_eq!(OrderStatus::allowed_sources(Unconfirmed), vec![Pending]);
        assert_eq!(
            OrderStatus::allowed_sources(Processing),
            vec![Pending, Unconfirmed]
        );
        assert_eq!(
            OrderStatus::allowed_sources(Succeeded),
            vec![Pending, Unconfirmed, Processing]
        );
        assert_eq!(
            OrderStatus::allowed_sources(Failed),
            vec![Pending, Unconfirmed, Processing]
        );
    }

    #[test]
    fn a_pending_order_is_abandoned_once_its_submit_has_certainly_ended() {
        let now = Utc::now();
        let grace = pending_abandoned_after(std::time::Duration::from_millis(8000));
        assert_eq!(grace, chrono::Duration::seconds(28));
        let mut order = Order::pending(
            TradeNo::parse("T1").unwrap(),
            &PayoutRequest::from_json(payout_testkit::payout_json("T1", 100).as_bytes()).unwrap(),
            now,
            now + grace,
        );
        assert!(!order.is_abandoned(now + grace - chrono::Duration::milliseconds(1), grace));
        assert!(order.is_abandoned(now + grace, grace));
        order.status = Processing;
        assert!(!order.is_abandoned(now + grace * 10, grace));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert_eq!(
            "DONE".parse::<OrderStatus>(),
            Err(UnknownStatus("DONE".into()))
        );
    }
}
