//! Manual review: the one rule for an operator closing an order the reconciler gave up on
//! (`payouts-admin resolve`). Only an order in review, never a final one, only to a final
//! state, with the operator's identity and evidence kept in its history in the same guarded
//! write; and never `FAILED` when Vexora ever reported the payout paid.

use chrono::{DateTime, Utc};

use crate::store::Transition;
use payout_domain::order::{
    Anomaly, HistoryEntry, OperatorDecision, Order, OrderStatus, ReportSource,
};

/// Evidence is a short note (a Vexora ticket, a statement line), not a document.
pub const MAX_EVIDENCE_CHARS: usize = 500;

/// Why a resolution is refused. Each message is one line for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the order is {0} (final): a final state is never changed")]
    Final(OrderStatus),
    #[error(
        "the order is not in manual review (only orders the reconciler gave up on are resolved by hand; try `refresh`)"
    )]
    NotInReview,
    #[error("--as must be SUCCEEDED or FAILED")]
    NotFinalTarget,
    #[error("--evidence is empty: say what Vexora confirmed (ticket, statement line)")]
    NoEvidence,
    #[error("--evidence is longer than {MAX_EVIDENCE_CHARS} characters")]
    EvidenceTooLong,
    #[error("--evidence holds control characters")]
    EvidenceControl,
    #[error("the caller's identity is unknown")]
    NoOperator,
    #[error(
        "Vexora reported this payout paid ({0}): refusing FAILED, which could pay it twice; ask Vexora and resolve SUCCEEDED"
    )]
    ReportedPaid(String),
    #[error(
        "the order kept only some of its anomalies, so a report of payment cannot be ruled out: refusing FAILED; ask Vexora and resolve SUCCEEDED if it paid"
    )]
    Unverifiable,
}

/// The guarded write that resolves `order` to `to`: at the order's version (any change since
/// it was read refuses the write), from a non-final state only (the store's rule), with the
/// decision kept in its history.
pub fn resolution(
    order: &Order,
    to: OrderStatus,
    operator: &str,
    evidence: &str,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    if order.status.is_final() {
        return Err(Refusal::Final(order.status));
    }
    if !order.manual_review {
        return Err(Refusal::NotInReview);
    }
    if !to.is_final() {
        return Err(Refusal::NotFinalTarget);
    }
    let evidence = evidence.trim();
    if evidence.is_empty() {
        return Err(Refusal::NoEvidence);
    }
    if evidence.chars().count() > MAX_EVIDENCE_CHARS {
        return Err(Refusal::EvidenceTooLong);
    }
    if evidence.chars().any(char::is_control) {
        return Err(Refusal::EvidenceControl);
    }
    let operator = operator.trim();
    if operator.is_empty() {
        return Err(Refusal::NoOperator);
    }
    if to == OrderStatus::Failed {
        if let Some(source) = reported_paid(order) {
            return Err(Refusal::ReportedPaid(source));
        }
        // Orders stored before `reportedPaidAt` existed: anomalies past the kept list are unknown.
        if order.anomaly_count > order.anomalies.len() as u64 && order.last_anomaly.is_none() {
            return Err(Refusal::Unverifiable);
        }
    }
    Ok(Transition {
        expected_version: Some(order.version),
        history: Some(HistoryEntry {
            at,
            source: ReportSource::Operator,
            status: to.as_str().to_owned(),
            plat_form_trade_no: order.plat_form_trade_no.clone(),
            amount: None,
            decision: Some(OperatorDecision {
                operator: operator.to_owned(),
                evidence: evidence.to_owned(),
            }),
        }),
        write_id: Some(crate::apply::write_id()),
        operator_resolution: true,
        ..Transition::to(to, at)
    })
}

/// Whether a status Vexora reported means money may have moved: `0000` (paid) or `0001`
/// (partial, undocumented for payouts).
fn status_says_paid(status: &str) -> bool {
    vexora::VexoraStatus::parse(status) == vexora::VexoraStatus::Succeeded || status == "0001"
}

/// Whether a report being written says the payout was paid: its history entry's status, or the
/// anomaly's (a `0000` with another amount is kept as an anomaly), or a success time or bank
/// reference in the anomaly's report. The store notes it once in `reportedPaidAt`.
pub fn says_paid(history: Option<&HistoryEntry>, anomaly: Option<&Anomaly>) -> bool {
    history.is_some_and(|h| h.source != ReportSource::Operator && status_says_paid(&h.status))
        || anomaly.is_some_and(anomaly_says_paid)
}

fn anomaly_says_paid(a: &Anomaly) -> bool {
    a.report.get("status").is_some_and(|s| status_says_paid(s))
        || ["successTime", "utr"]
            .iter()
            .any(|k| a.report.get(*k).is_some_and(|v| !v.is_empty()))
}

/// Where a report said the payout was paid, if one ever did: `reportedPaidAt`, or (orders
/// stored before it) a kept report, the last anomaly, any kept anomaly, or the last answer.
fn reported_paid(order: &Order) -> Option<String> {
    if let Some(at) = order.reported_paid_at {
        return Some(format!("first at {}", payout_domain::timestamp(at)));
    }
    order
        .history
        .iter()
        .find(|h| says_paid(Some(h), None))
        .map(|h| format!("{} at {}", h.source.label(), payout_domain::timestamp(h.at)))
        .or_else(|| {
            order
                .last_anomaly
                .iter()
                .chain(&order.anomalies)
                .find(|a| anomaly_says_paid(a))
                .map(|a| {
                    format!(
                        "{} anomaly at {}",
                        a.source.label(),
                        payout_domain::timestamp(a.at)
                    )
                })
        })
        .or_else(|| {
            order
                .vexora
                .as_ref()
                .and_then(|v| v.status.as_deref())
                .filter(|s| status_says_paid(s))
                .map(|_| "its last answer".to_owned())
        })
}
