//! Applying a Vexora report to an order: the one rule for a submit answer, a status
//! notification and a query answer. Amount check, guarded transition, history, anomaly with its
//! metric and log line, and when the order is next checked; callers only map the result.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::metrics::{self, Metrics};
use crate::store::{Annotation, OrderStore, StoreError, Transition, Transitioned};
use payout_domain::order::{
    Anomaly, AnomalyReason, Decision, HistoryEntry, Order, OrderStatus, ReportSource, Reported,
    VexoraAnswer, decide,
};
use payout_domain::{Amount, TradeNo};
use vexora::{
    Exchange, MAX_MESSAGE_CHARS, MAX_STATUS_CHARS, MAX_VALUE_CHARS, Notification, Operation,
    Outcome, ReportedAmount, Unknown, bounded, outcome,
};

/// What Vexora said about one order, from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub source: ReportSource,
    pub outcome: Outcome,
    /// Vexora's status text as received, for the audit trail.
    pub status: Option<String>,
    pub amount: ReportedAmount,
    /// The amount as received, for the audit trail.
    pub amount_text: Option<String>,
    pub plat_form_trade_no: Option<String>,
    /// What to keep as the order's last Vexora answer.
    pub answer: Option<VexoraAnswer>,
    /// PII-free fields of the report, kept with an anomaly.
    pub details: BTreeMap<String, String>,
    /// For a submit answer: the intent that stored the order ([`crate::intent`]); the answer is
    /// applied to that order only, never to a later intent for the same `tradeNo`.
    pub intent: Option<String>,
}

impl Report {
    pub fn from_notification(n: &Notification) -> Self {
        Self {
            source: ReportSource::Webhook,
            outcome: n.status.outcome(),
            status: Some(n.status.as_str().to_owned()),
            amount: n.amount,
            amount_text: Some(n.amount_text.clone()),
            plat_form_trade_no: n.plat_form_trade_no.clone(),
            answer: Some(VexoraAnswer {
                code: None,
                status: Some(n.status.as_str().to_owned()),
                message: n.message.clone(),
                plat_form_trade_no: n.plat_form_trade_no.clone(),
            }),
            details: n.kept.clone(),
            intent: None,
        }
    }

    /// A submit or query exchange about `trade_no`.
    pub fn from_exchange(operation: Operation, trade_no: &TradeNo, exchange: &Exchange) -> Self {
        let source = match operation {
            Operation::Submit => ReportSource::Submit,
            Operation::Query => ReportSource::Query,
        };
        let outcome = outcome(operation, trade_no, exchange);
        let data = match exchange {
            Exchange::Answered {
                envelope: Some(envelope),
                ..
            } => envelope.data.clone().unwrap_or_default(),
            _ => Default::default(),
        };
        let code = match exchange {
            Exchange::Answered {
                envelope: Some(envelope),
                ..
            } => envelope.code.clone(),
            _ => None,
        };
        let mut details = BTreeMap::new();
        for (name, value) in [
            ("tradeNo", data.trade_no.as_deref()),
            ("code", code.as_deref()),
            ("status", data.status.as_deref()),
            ("platFormTradeNo", data.plat_form_trade_no.as_deref()),
            ("amount", data.amount.as_deref()),
        ] {
            if let Some(value) = value {
                details.insert(name.to_owned(), bounded(value, MAX_VALUE_CHARS));
            }
        }
        // An answer about another order says nothing about this one: keep none of it.
        let about_another = matches!(outcome, Outcome::Unconfirmed(Unknown::TradeNoMismatch));
        let answer = exchange
            .answer()
            .filter(|_| !about_another)
            .map(|a| VexoraAnswer {
                code: a.code.map(|c| bounded(&c, MAX_STATUS_CHARS)),
                status: a.status.map(|s| bounded(&s, MAX_STATUS_CHARS)),
                message: a.message.map(|m| bounded(&m, MAX_MESSAGE_CHARS)),
                plat_form_trade_no: a.plat_form_trade_no.map(|p| bounded(&p, MAX_VALUE_CHARS)),
            });
        Self {
            source,
            status: answer.as_ref().and_then(|a| a.status.clone()),
            amount: match data.amount.as_deref().filter(|_| !about_another) {
                None => ReportedAmount::NotStated,
                Some(text) => ReportedAmount::parse(text).unwrap_or(ReportedAmount::NotWhole),
            },
            amount_text: data
                .amount
                .as_deref()
                .filter(|_| !about_another)
                .map(|a| bounded(a, MAX_VALUE_CHARS)),
            plat_form_trade_no: answer.as_ref().and_then(|a| a.plat_form_trade_no.clone()),
            answer,
            details,
            outcome,
            intent: None,
        }
    }

    /// Whether Vexora gave no usable answer at all (not connected, timed out, dropped, an HTTP
    /// error status, not JSON): what the `VexoraUnavailable` alarm counts.
    pub fn vexora_unavailable(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::NotReceived(_)
                | Outcome::Unconfirmed(
                    Unknown::Timeout
                        | Unknown::ConnectionDropped
                        | Unknown::HttpStatus(_)
                        | Unknown::NotJson
                )
        )
    }

    /// Why this report is an anomaly whatever the order's state, if it is one.
    fn suspicious(&self) -> Option<AnomalyReason> {
        match &self.outcome {
            Outcome::Unconfirmed(Unknown::UndocumentedStatus(_)) => {
                Some(AnomalyReason::UndocumentedStatus)
            }
            Outcome::Unconfirmed(Unknown::UndocumentedCode(_) | Unknown::MissingStatus) => {
                Some(AnomalyReason::UndocumentedAnswer)
            }
            Outcome::Unconfirmed(Unknown::TradeNoMismatch) => Some(AnomalyReason::TradeNoMismatch),
            Outcome::Unconfirmed(
                Unknown::Timeout
                | Unknown::ConnectionDropped
                | Unknown::HttpStatus(_)
                | Unknown::NotJson
                | Unknown::ProviderError
                | Unknown::RejectedWithPlatformOrder
                | Unknown::QueryRejected,
            )
            | Outcome::Accepted
            | Outcome::Succeeded
            | Outcome::Failed
            | Outcome::Refused
            | Outcome::NotReceived(_) => None,
        }
    }

    fn history_entry(&self, at: DateTime<Utc>) -> HistoryEntry {
        HistoryEntry {
            at,
            source: self.source,
            status: self.status.clone().unwrap_or_default(),
            plat_form_trade_no: self.plat_form_trade_no.clone(),
            amount: self.amount_text.clone(),
            decision: None,
        }
    }

    fn anomaly(&self, reason: AnomalyReason, at: DateTime<Utc>) -> Anomaly {
        Anomaly {
            at,
            source: self.source,
            reason,
            report: self.details.clone(),
        }
    }
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved; here it is as stored now.
    Moved(Order),
    /// The order already stood where the report says.
    Duplicate(Order),
    /// The report is older than what is known (e.g. `0015` after `0000`).
    Stale(Order),
    /// The report was kept as an anomaly (the order may also have moved, e.g. a `PENDING`
    /// order on an undocumented status); the alarm metric was raised.
    Flagged(Order, AnomalyReason),
    /// The report tells nothing (a query that timed out, `code 8000` or `5000` on a query):
    /// nothing was written.
    Unknown,
    NotFound,
}

impl Applied {
    /// The order as stored after the report, when there is one.
    pub fn order(&self) -> Option<&Order> {
        match self {
            Self::Moved(o) | Self::Duplicate(o) | Self::Stale(o) | Self::Flagged(o, _) => Some(o),
            Self::Unknown | Self::NotFound => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Moved(_) => "applied",
            Self::Duplicate(_) => "duplicate",
            Self::Stale(_) => "stale",
            Self::Flagged(_, reason) => reason.label(),
            Self::Unknown => "unknown",
            Self::NotFound => "unknown_order",
        }
    }
}

/// When unresolved orders are looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A `PROCESSING` order is first queried this long after it got there.
    pub processing_age: chrono::Duration,
}

/// How long a `PROCESSING` order waits before the reconciler asks about it.
pub const DEFAULT_PROCESSING_AGE: chrono::Duration = chrono::Duration::minutes(15);

impl Schedule {
    /// The next check of an order that `source` moved to `to`; `None` keeps the one it has.
    pub fn next_check(
        self,
        source: ReportSource,
        to: OrderStatus,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match (to, source) {
            (OrderStatus::Processing, _) => Some(now + self.processing_age),
            // An unknown submit outcome is asked about soon.
            (OrderStatus::Unconfirmed, ReportSource::Submit) => Some(now + backoff(0)),
            (
                OrderStatus::Unconfirmed,
                ReportSource::Webhook | ReportSource::Query | ReportSource::Operator,
            )
            | (OrderStatus::Pending | OrderStatus::Succeeded | OrderStatus::Failed, _) => None,
        }
    }
}

/// The wait before the next check after `attempts` checks: 1 min, 5 min ×5, 30 min ×2, then
/// hourly.
pub fn backoff(attempts: u32) -> chrono::Duration {
    match attempts {
        0 => chrono::Duration::minutes(1),
        1..=5 => chrono::Duration::minutes(5),
        6..=7 => chrono::Duration::minutes(30),
        _ => chrono::Duration::hours(1),
    }
}

/// A fresh id for one write ([`payout_domain::order::Order::last_write`]).
pub fn write_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What applying needs: the store, where anomalies are counted, and the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Applier<'a, S, M> {
    pub store: &'a S,
    pub metrics: &'a M,
    pub schedule: Schedule,
}

impl<S: OrderStore, M: Metrics> Applier<'_, S, M> {
    /// Applies `report` to the order `trade_no`: one guarded write on the common path; when
    /// the guard refuses, the order it returns tells a duplicate, a stale report, a
    /// contradiction and an amount mismatch apart: the last two are kept in one more write, a
    /// duplicate or stale report changes nothing and is only logged.
    pub async fn apply(
        &self,
        trade_no: &TradeNo,
        report: &Report,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let suspicious = report.suspicious();
        let reported = report.outcome.reported();
        if report.vexora_unavailable() {
            self.metrics.count(metrics::VEXORA_UNAVAILABLE, 1);
        }
        if report.source == ReportSource::Query
            && reported == Reported::Unknown
            && suspicious.is_none()
        {
            return Ok(Applied::Unknown);
        }
        let entry = report.history_entry(now);
        let expected_amount = match report.amount {
            ReportedAmount::NotStated => None,
            // Below 100 yen or above the maximum: no order has it (see below).
            ReportedAmount::Whole(yen) => Amount::new(yen).ok(),
            ReportedAmount::NotWhole => None,
        };
        let matches_no_order = match report.amount {
            ReportedAmount::NotStated => false,
            ReportedAmount::Whole(_) => expected_amount.is_none(),
            ReportedAmount::NotWhole => true,
        };
        if matches_no_order {
            return self
                .amount_mismatch(trade_no, None, report, entry, now)
                .await;
        }
        let to = reported.target();
        let transition = Transition {
            answer: report.answer.clone(),
            expected_amount,
            history: Some(entry.clone()),
            anomaly: suspicious.map(|reason| report.anomaly(reason, now)),
            check_after: self.schedule.next_check(report.source, to, now),
            write_id: Some(write_id()),
            expected_intent: report.intent.clone(),
            refusal: report.outcome == Outcome::Refused,
            ..Transition::to(to, now)
        };
        let current = match self.store.transition(trade_no, &transition).await? {
            Transitioned::NotFound => return Ok(Applied::NotFound),
            Transitioned::Applied(order) => {
                return Ok(match suspicious {
                    Some(reason) => {
                        self.raise(trade_no, report.source, reason);
                        Applied::Flagged(order, reason)
                    }
                    None => Applied::Moved(order),
                });
            }
            Transitioned::Rejected(current) => current,
        };
        if expected_amount.is_some_and(|amount| amount != current.amount) {
            return self
                .amount_mismatch(trade_no, Some(current), report, entry, now)
                .await;
        }
        if suspicious.is_some() {
            return self.annotate(current, report, entry, suspicious, now).await;
        }
        // Evidence ranks: a failure that stronger evidence outranks is kept, and moves nothing.
        if to == OrderStatus::Failed
            && !current.status.is_final()
            && (current.reported_paid_at.is_some()
                || (transition.refusal && !Transition::knows_nothing(&current)))
        {
            let reason = Some(AnomalyReason::OutrankedFailure);
            return self.annotate(current, report, entry, reason, now).await;
        }
        match decide(current.status, reported) {
            // A report that tells what the order does not hold yet is kept (one more write): that
            // the payout was paid (`reportedPaidAt`, which refuses an operator's FAILED; e.g. a
            // submit answer `5000` whose data says `0000`, stale behind a webhook) or Vexora's
            // reference for an order without one.
            Decision::Duplicate | Decision::Stale if adds_evidence(&current, report, &entry) => {
                self.annotate(current, report, entry, None, now).await
            }
            // Nothing to keep: the order already says it (or more). Not written, so a duplicate
            // costs one call (the refused guard); the log line is its record.
            Decision::Duplicate => {
                unchanged(&current, report, "duplicate");
                Ok(Applied::Duplicate(current))
            }
            Decision::Stale => {
                unchanged(&current, report, "stale");
                Ok(Applied::Stale(current))
            }
            Decision::Anomaly => {
                self.annotate(
                    current,
                    report,
                    entry,
                    Some(AnomalyReason::ContradictsFinalState),
                    now,
                )
                .await
            }
            // The guard and the returned item are the same version, so a refused move cannot be
            // allowed; should it ever be, nothing was written and the caller tries again.
            Decision::Move(_) => Err(StoreError::Conflict),
        }
    }

    /// A report whose amount is not the order's moves nothing: it is kept as an anomaly. A
    /// submit answer like that leaves the submit's outcome unknown, so its `PENDING` order is
    /// stored `UNCONFIRMED` (and resolved by query), never left in flight.
    async fn amount_mismatch(
        &self,
        trade_no: &TradeNo,
        known: Option<Order>,
        report: &Report,
        entry: HistoryEntry,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let reason = AnomalyReason::AmountMismatch;
        let known = if report.source == ReportSource::Submit {
            let to = OrderStatus::Unconfirmed;
            let transition = Transition {
                answer: report.answer.clone(),
                history: Some(entry.clone()),
                anomaly: Some(report.anomaly(reason, now)),
                check_after: self.schedule.next_check(report.source, to, now),
                write_id: Some(write_id()),
                expected_intent: report.intent.clone(),
                ..Transition::to(to, now)
            };
            match self.store.transition(trade_no, &transition).await? {
                Transitioned::NotFound => return Ok(Applied::NotFound),
                Transitioned::Applied(order) => {
                    self.raise(trade_no, report.source, reason);
                    return Ok(Applied::Flagged(order, reason));
                }
                Transitioned::Rejected(current) => Some(current),
            }
        } else {
            known
        };
        let order = match known {
            Some(order) => order,
            None => match self.store.get(trade_no).await? {
                Some(order) => order,
                None => return Ok(Applied::NotFound),
            },
        };
        self.annotate(order, report, entry, Some(reason), now).await
    }

    /// Keeps the report on the order without moving it (and the anomaly, if any).
    async fn annotate(
        &self,
        order: Order,
        report: &Report,
        entry: HistoryEntry,
        anomaly: Option<AnomalyReason>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let anomaly = anomaly.map(|reason| report.anomaly(reason, now));
        // The same anomalous report again (a replayed or redelivered body, a query asking again)
        // is the anomaly already kept: nothing is written, nothing counted or published again.
        if let (Some(new), Some(last)) = (&anomaly, &order.last_anomaly)
            && new.reason == last.reason
            && new.source == last.source
            && new.report == last.report
        {
            unchanged(&order, report, "anomaly already kept");
            return Ok(Applied::Flagged(order, new.reason));
        }
        let annotation = Annotation::new(&order, Some(entry), anomaly, write_id());
        let Some(order) = self.store.annotate(&order.trade_no, &annotation).await? else {
            return Ok(Applied::NotFound);
        };
        if let Some(reason) = annotation.anomaly.as_ref().map(|a| a.reason) {
            self.raise(&order.trade_no, report.source, reason);
            return Ok(Applied::Flagged(order, reason));
        }
        Ok(match decide(order.status, report.outcome.reported()) {
            Decision::Stale => Applied::Stale(order),
            Decision::Duplicate | Decision::Anomaly | Decision::Move(_) => {
                Applied::Duplicate(order)
            }
        })
    }

    fn raise(&self, trade_no: &TradeNo, source: ReportSource, reason: AnomalyReason) {
        self.metrics.count(metrics::PAYOUT_ANOMALY, 1);
        tracing::warn!(
            trade_no = trade_no.as_str(),
            source = source.label(),
            reason = reason.label(),
            "anomaly recorded"
        );
    }
}

/// Whether a report that moves nothing still tells something the order does not hold: that the
/// payout was paid, before the order noted it, or a Vexora reference the order lacks.
fn adds_evidence(order: &Order, report: &Report, entry: &HistoryEntry) -> bool {
    (order.reported_paid_at.is_none() && crate::review::says_paid(Some(entry), None))
        || (order.plat_form_trade_no.is_none()
            && report
                .plat_form_trade_no
                .as_ref()
                .is_some_and(|p| !p.is_empty()))
}

/// A report that changed nothing, at debug level: each function's own line for the request
/// (the webhook's `notification`, submit's answer, the reconciler's action) already names the
/// verdict. No personal data.
fn unchanged(order: &Order, report: &Report, verdict: &'static str) {
    tracing::debug!(
        trade_no = order.trade_no.as_str(),
        source = report.source.label(),
        status = order.status.as_str(),
        verdict,
        "report changed nothing"
    );
}

/// Stores an abandoned `PENDING` order ([`Order::is_abandoned`]) as `UNCONFIRMED`, so what the
/// table holds is what every reader shows; any other order is returned as it is. `None` when
/// the order is gone (a submit that certainly never reached Vexora withdrew it).
pub async fn settle_abandoned<S: OrderStore>(
    store: &S,
    order: Order,
    now: DateTime<Utc>,
    abandoned_after: chrono::Duration,
) -> Result<Option<Order>, StoreError> {
    if !order.is_abandoned(now, abandoned_after) {
        return Ok(Some(order));
    }
    let transition = Transition {
        expected_version: Some(order.version),
        write_id: Some(write_id()),
        ..Transition::to(OrderStatus::Unconfirmed, now)
    };
    Ok(
        match store.transition(&order.trade_no, &transition).await? {
            // Refused: it moved meanwhile; what is stored now is the answer.
            Transitioned::Applied(o) | Transitioned::Rejected(o) => Some(o),
            Transitioned::NotFound => None,
        },
    )
}
