//! The review flow over the in-memory store.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::TimeZone;

use chrono::{DateTime, Utc};
use payout_app::review::*;
use payout_domain::order::{Anomaly, OperatorDecision, Order, OrderStatus, ReportSource};

use payout_domain::TradeNo;
use payout_domain::order::AnomalyReason;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
}

fn in_review() -> Order {
    let mut order = Order::pending(
        TradeNo::parse("REV1").unwrap(),
        &payout_testkit::payout("REV1", 1500),
        t0(),
        t0(),
    );
    order.status = OrderStatus::Unconfirmed;
    order.version = 2;
    order.manual_review = true;
    order
}

const OP: &str = "arn:aws:iam::111122223333:user/ops";

#[test]
fn an_order_in_review_is_resolved_at_its_version_with_the_decision_in_history() {
    let t = resolution(
        &in_review(),
        OrderStatus::Failed,
        OP,
        " ticket V-1: not found ",
        t0(),
    )
    .unwrap();
    assert_eq!(t.to, OrderStatus::Failed);
    assert_eq!(t.expected_version, Some(2));
    let entry = t.history.unwrap();
    assert_eq!(entry.source, ReportSource::Operator);
    assert_eq!(
        entry.decision,
        Some(OperatorDecision {
            operator: OP.into(),
            evidence: "ticket V-1: not found".into()
        })
    );
    assert!(t.write_id.is_some());
}

#[test]
fn every_refusal_names_its_reason() {
    let review = in_review();
    let mut done = review.clone();
    done.status = OrderStatus::Succeeded;
    let mut not_flagged = review.clone();
    not_flagged.manual_review = false;
    let mut paid = review.clone();
    paid.anomalies.push(Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: AnomalyReason::AmountMismatch,
        report: BTreeMap::from([("status".to_owned(), "0000".to_owned())]),
    });
    let long = "x".repeat(MAX_EVIDENCE_CHARS + 1);
    for (order, to, operator, evidence, refusal) in [
        (
            &done,
            OrderStatus::Failed,
            OP,
            "e",
            Refusal::Final(OrderStatus::Succeeded),
        ),
        (
            &not_flagged,
            OrderStatus::Failed,
            OP,
            "e",
            Refusal::NotInReview,
        ),
        (
            &review,
            OrderStatus::Processing,
            OP,
            "e",
            Refusal::NotFinalTarget,
        ),
        (&review, OrderStatus::Failed, OP, "  ", Refusal::NoEvidence),
        (
            &review,
            OrderStatus::Failed,
            OP,
            long.as_str(),
            Refusal::EvidenceTooLong,
        ),
        (
            &review,
            OrderStatus::Failed,
            OP,
            "a\nb",
            Refusal::EvidenceControl,
        ),
        (&review, OrderStatus::Failed, " ", "e", Refusal::NoOperator),
        (
            &paid,
            OrderStatus::Failed,
            OP,
            "e",
            Refusal::ReportedPaid("webhook anomaly at 2026-11-26T03:00:00.000Z".into()),
        ),
    ] {
        assert_eq!(
            resolution(order, to, operator, evidence, t0()).unwrap_err(),
            refusal
        );
        assert!(!refusal.to_string().contains('\n'));
    }
    // Reported paid: SUCCEEDED is still allowed.
    assert!(resolution(&paid, OrderStatus::Succeeded, OP, "e", t0()).is_ok());
}
