//! Every source's report through the one rule, against the in-memory store (the store's own
//! behaviour suite holds it to DynamoDB's).
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;

use chrono::{DateTime, Utc};
use payout_app::apply::*;
use payout_app::store::{Annotation, OrderStore};
use payout_domain::TradeNo;
use payout_domain::order::{Anomaly, AnomalyReason, Order, OrderStatus, ReportSource};
use vexora::{Exchange, Operation, ReportedAmount};

use payout_testkit::{InMemoryStore, RecordingMetrics, vexora_answer};
use vexora::VexoraStatus;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

const SCHEDULE: Schedule = Schedule {
    processing_age: chrono::Duration::minutes(15),
};

struct World {
    store: InMemoryStore,
    metrics: RecordingMetrics,
}

impl World {
    fn new(orders: &[(&str, OrderStatus)]) -> Self {
        let store = InMemoryStore::new();
        for (trade_no, status) in orders {
            let mut order = Order::pending(
                tn(trade_no),
                &payout_testkit::payout(trade_no, 1500),
                t0(),
                t0() + chrono::Duration::seconds(28),
            );
            order.status = *status;
            if status.is_final() {
                order.check_after = None;
            }
            store.insert(order);
        }
        Self {
            store,
            metrics: RecordingMetrics::default(),
        }
    }

    async fn apply(&self, trade_no: &str, report: &Report) -> Applied {
        Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: SCHEDULE,
        }
        .apply(&tn(trade_no), report, t0())
        .await
        .unwrap()
    }

    fn order(&self, trade_no: &str) -> Order {
        self.store.snapshot(&tn(trade_no)).unwrap()
    }

    fn anomalies(&self) -> u64 {
        self.metrics.total(payout_app::metrics::PAYOUT_ANOMALY)
    }
}

fn webhook(trade_no: &str, status: &str, amount: ReportedAmount) -> Report {
    Report {
        source: ReportSource::Webhook,
        outcome: VexoraStatus::parse(status).outcome(),
        status: Some(status.to_owned()),
        amount,
        amount_text: Some("1500".into()),
        plat_form_trade_no: Some(format!("PF-{trade_no}")),
        answer: None,
        details: [("tradeNo".to_owned(), trade_no.to_owned())]
            .into_iter()
            .collect(),
        intent: None,
    }
}

fn answer(operation: Operation, trade_no: &str, exchange: &Exchange) -> Report {
    Report::from_exchange(operation, &tn(trade_no), exchange)
}

#[tokio::test]
async fn a_webhook_moves_a_pending_order_in_one_write_with_its_history() {
    let w = World::new(&[("A1", OrderStatus::Pending)]);
    let calls = w.store.calls();

    let applied = w
        .apply("A1", &webhook("A1", "0015", ReportedAmount::Whole(1500)))
        .await;

    assert!(
        matches!(applied, Applied::Moved(ref o) if o.status == OrderStatus::Processing),
        "{applied:?}"
    );
    assert_eq!(w.store.calls() - calls, 1, "one write on the common path");
    let order = w.order("A1");
    assert_eq!(order.history.len(), 1);
    assert_eq!(order.check_after, Some(t0() + SCHEDULE.processing_age));
}

#[tokio::test]
async fn duplicates_and_stale_reports_change_nothing_and_are_not_written() {
    let w = World::new(&[("A2", OrderStatus::Succeeded)]);
    // As a success stores it: paid noted, Vexora's reference kept.
    let mut order = w.order("A2");
    order.reported_paid_at = Some(t0());
    order.plat_form_trade_no = Some("PF-A2".into());
    w.store.insert(order);
    let before = w.order("A2");
    let calls = w.store.calls();

    let duplicate = w
        .apply("A2", &webhook("A2", "0000", ReportedAmount::Whole(1500)))
        .await;
    let stale = w
        .apply("A2", &webhook("A2", "0015", ReportedAmount::Whole(1500)))
        .await;

    assert!(matches!(duplicate, Applied::Duplicate(_)), "{duplicate:?}");
    assert!(matches!(stale, Applied::Stale(_)), "{stale:?}");
    // The refused guard is the only call: the stored order is exactly as before (no history
    // entry, no new version, no lastWrite), so a duplicate delivery costs one DynamoDB call.
    assert_eq!(w.order("A2"), before);
    assert_eq!(
        w.store.calls() - calls,
        2,
        "one refused guard each, nothing more"
    );
    assert_eq!(w.anomalies(), 0);
}

#[tokio::test]
async fn a_stale_report_that_says_paid_is_kept_so_no_operator_can_fail_the_payout() {
    // The webhook's `0015` arrived first; the submit's own answer then says code 5000 (outcome
    // unknown) with data status 0000: stale for the state machine, but the only word that the
    // payout was paid.
    let w = World::new(&[("A3", OrderStatus::Processing)]);
    let mut order = w.order("A3");
    order.plat_form_trade_no = Some("PF-A3".into());
    w.store.insert(order);
    let late = answer(
        Operation::Submit,
        "A3",
        &vexora_answer("5000", Some("0000"), "A3"),
    );

    let applied = w.apply("A3", &late).await;

    assert!(matches!(applied, Applied::Stale(_)), "{applied:?}");
    let order = w.order("A3");
    assert_eq!(order.status, OrderStatus::Processing);
    assert_eq!(
        order.reported_paid_at,
        Some(t0()),
        "noted: refuses resolve FAILED"
    );
    let in_review = Order {
        manual_review: true,
        ..order.clone()
    };
    assert!(
        matches!(
            payout_app::review::resolution(
                &in_review,
                OrderStatus::Failed,
                "arn:op",
                "bank said no",
                t0()
            ),
            Err(payout_app::review::Refusal::ReportedPaid(_))
        ),
        "an operator cannot call it failed"
    );
    assert_eq!(
        order.history.last().map(|h| h.status.as_str()),
        Some("0000")
    );
}

#[tokio::test]
async fn a_duplicate_carrying_a_reference_the_order_lacks_is_kept() {
    let w = World::new(&[("A4", OrderStatus::Processing)]);
    assert_eq!(w.order("A4").plat_form_trade_no, None);

    let applied = w
        .apply("A4", &webhook("A4", "0015", ReportedAmount::Whole(1500)))
        .await;

    assert!(matches!(applied, Applied::Duplicate(_)), "{applied:?}");
    let order = w.order("A4");
    assert_eq!(
        order
            .history
            .last()
            .and_then(|h| h.plat_form_trade_no.as_deref()),
        Some("PF-A4")
    );
}

#[tokio::test]
async fn a_contradiction_from_any_source_is_an_anomaly_with_its_metric() {
    let failed_submit = answer(Operation::Submit, "B1", &vexora_answer("8000", None, "B1"));
    let failed_query = answer(
        Operation::Query,
        "B2",
        &vexora_answer("0000", Some("00029"), "B2"),
    );
    let failed_webhook = webhook("B3", "00029", ReportedAmount::Whole(1500));
    let w = World::new(&[
        ("B1", OrderStatus::Succeeded),
        ("B2", OrderStatus::Succeeded),
        ("B3", OrderStatus::Succeeded),
    ]);

    for (trade_no, report) in [
        ("B1", &failed_submit),
        ("B2", &failed_query),
        ("B3", &failed_webhook),
    ] {
        let applied = w.apply(trade_no, report).await;
        assert!(
            matches!(
                applied,
                Applied::Flagged(_, AnomalyReason::ContradictsFinalState)
            ),
            "{trade_no}: {applied:?}"
        );
        let order = w.order(trade_no);
        assert_eq!(order.status, OrderStatus::Succeeded, "{trade_no}");
        assert_eq!(order.anomalies.len(), 1, "{trade_no}");
        assert_eq!(order.anomalies[0].source, report.source);
    }
    assert_eq!(w.anomalies(), 3);
}

#[tokio::test]
async fn an_undocumented_status_from_any_source_is_flagged_and_never_fails_an_order() {
    let w = World::new(&[
        ("C1", OrderStatus::Pending),
        ("C2", OrderStatus::Processing),
        ("C3", OrderStatus::Pending),
        ("C4", OrderStatus::Unconfirmed),
    ]);

    let on_pending = w
        .apply("C1", &webhook("C1", "0001", ReportedAmount::Whole(1500)))
        .await;
    let on_processing = w
        .apply("C2", &webhook("C2", "7777", ReportedAmount::Whole(1500)))
        .await;
    let submit = w
        .apply(
            "C3",
            &answer(
                Operation::Submit,
                "C3",
                &vexora_answer("0000", Some("0001"), "C3"),
            ),
        )
        .await;
    let query = w
        .apply(
            "C4",
            &answer(Operation::Query, "C4", &vexora_answer("9999", None, "C4")),
        )
        .await;

    assert!(matches!(
        on_pending,
        Applied::Flagged(_, AnomalyReason::UndocumentedStatus)
    ));
    assert!(matches!(
        on_processing,
        Applied::Flagged(_, AnomalyReason::UndocumentedStatus)
    ));
    assert!(matches!(
        submit,
        Applied::Flagged(_, AnomalyReason::UndocumentedStatus)
    ));
    assert!(
        matches!(
            query,
            Applied::Flagged(_, AnomalyReason::UndocumentedAnswer)
        ),
        "{query:?}"
    );
    assert_eq!(w.order("C1").status, OrderStatus::Unconfirmed);
    assert_eq!(w.order("C1").version, 2, "moved and flagged in one write");
    assert_eq!(w.order("C2").status, OrderStatus::Processing);
    assert_eq!(w.order("C3").status, OrderStatus::Unconfirmed);
    assert_eq!(w.order("C4").status, OrderStatus::Unconfirmed);
    assert_eq!(w.anomalies(), 4);
}

#[tokio::test]
async fn an_amount_that_is_not_the_orders_moves_nothing() {
    let w = World::new(&[
        ("D1", OrderStatus::Pending),
        ("D2", OrderStatus::Pending),
        ("D3", OrderStatus::Pending),
    ]);

    let other = w
        .apply("D1", &webhook("D1", "00029", ReportedAmount::Whole(1600)))
        .await;
    let fraction = w
        .apply("D2", &webhook("D2", "00029", ReportedAmount::NotWhole))
        .await;
    let too_small = w
        .apply("D3", &webhook("D3", "00029", ReportedAmount::Whole(15)))
        .await;

    for (trade_no, applied) in [("D1", other), ("D2", fraction), ("D3", too_small)] {
        assert!(
            matches!(applied, Applied::Flagged(_, AnomalyReason::AmountMismatch)),
            "{trade_no}: {applied:?}"
        );
        assert_eq!(w.order(trade_no).status, OrderStatus::Pending, "{trade_no}");
    }
    assert_eq!(w.anomalies(), 3);
}

#[tokio::test]
async fn a_query_that_tells_nothing_writes_nothing() {
    let w = World::new(&[("E1", OrderStatus::Unconfirmed)]);
    let calls = w.store.calls();
    for exchange in [
        vexora_answer("8000", None, "E1"),
        vexora_answer("5000", None, "E1"),
        Exchange::TimedOut,
        Exchange::Answered {
            http_status: 502,
            envelope: None,
        },
    ] {
        assert_eq!(
            w.apply("E1", &answer(Operation::Query, "E1", &exchange))
                .await,
            Applied::Unknown
        );
    }
    assert_eq!(w.store.calls(), calls);
}

#[tokio::test]
async fn an_answer_about_another_order_keeps_none_of_it() {
    let w = World::new(&[("F1", OrderStatus::Unconfirmed)]);

    let applied = w
        .apply(
            "F1",
            &answer(
                Operation::Query,
                "F1",
                &vexora_answer("0000", Some("0000"), "OTHER"),
            ),
        )
        .await;

    assert!(
        matches!(applied, Applied::Flagged(_, AnomalyReason::TradeNoMismatch)),
        "{applied:?}"
    );
    let order = w.order("F1");
    assert_eq!(order.status, OrderStatus::Unconfirmed);
    assert_eq!(
        order.plat_form_trade_no, None,
        "the other order's number is not ours"
    );
    assert_eq!(order.anomalies[0].report["tradeNo"], "OTHER");
}

#[tokio::test]
async fn an_unknown_submit_outcome_is_checked_again_in_a_minute_and_processing_after_the_age() {
    let w = World::new(&[("G1", OrderStatus::Pending), ("G2", OrderStatus::Pending)]);

    w.apply("G1", &answer(Operation::Submit, "G1", &Exchange::TimedOut))
        .await;
    w.apply(
        "G2",
        &answer(
            Operation::Submit,
            "G2",
            &vexora_answer("0000", Some("0015"), "G2"),
        ),
    )
    .await;

    assert_eq!(w.order("G1").status, OrderStatus::Unconfirmed);
    assert_eq!(
        w.order("G1").check_after,
        Some(t0() + chrono::Duration::minutes(1))
    );
    assert_eq!(w.order("G2").status, OrderStatus::Processing);
    assert_eq!(
        w.order("G2").check_after,
        Some(t0() + SCHEDULE.processing_age)
    );
    assert_eq!(w.anomalies(), 0, "timeouts are not anomalies");
}

#[tokio::test]
async fn a_pending_order_past_its_deadline_is_stored_unconfirmed() {
    let w = World::new(&[("H1", OrderStatus::Pending), ("H2", OrderStatus::Pending)]);
    let deadline = chrono::Duration::seconds(28);

    let young = settle_abandoned(
        &w.store,
        w.order("H1"),
        t0() + deadline - chrono::Duration::seconds(1),
        deadline,
    )
    .await
    .unwrap()
    .unwrap();
    let old = settle_abandoned(&w.store, w.order("H2"), t0() + deadline, deadline)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(young.status, OrderStatus::Pending);
    assert_eq!(w.order("H1").status, OrderStatus::Pending);
    assert_eq!(old.status, OrderStatus::Unconfirmed);
    assert_eq!(
        w.order("H2").status,
        OrderStatus::Unconfirmed,
        "the table holds what is shown"
    );
}

#[tokio::test]
async fn settling_an_order_that_moved_meanwhile_returns_what_is_stored() {
    let w = World::new(&[("H3", OrderStatus::Pending)]);
    let stale_read = w.order("H3");
    w.apply("H3", &webhook("H3", "0000", ReportedAmount::Whole(1500)))
        .await;

    let settled = settle_abandoned(
        &w.store,
        stale_read,
        t0() + chrono::Duration::hours(1),
        chrono::Duration::seconds(28),
    )
    .await
    .unwrap()
    .unwrap();

    assert_eq!(settled.status, OrderStatus::Succeeded);
}

#[tokio::test]
async fn a_report_for_an_unknown_order_is_not_found() {
    let w = World::new(&[]);
    assert_eq!(
        w.apply(
            "NOPE",
            &webhook("NOPE", "0000", ReportedAmount::Whole(1500))
        )
        .await,
        Applied::NotFound
    );
    assert_eq!(
        w.apply("NOPE", &webhook("NOPE", "0000", ReportedAmount::NotWhole))
            .await,
        Applied::NotFound
    );
}

#[test]
fn the_backoff_is_1_then_5x5_then_30x2_then_hourly() {
    let minutes: Vec<i64> = (0..11).map(|a| backoff(a).num_minutes()).collect();
    assert_eq!(minutes, [1, 5, 5, 5, 5, 5, 30, 30, 60, 60, 60]);
}

#[tokio::test]
async fn a_submit_answer_for_another_amount_leaves_the_order_unconfirmed_not_in_flight() {
    let w = World::new(&[("J1", OrderStatus::Pending)]);
    let answer = payout_testkit::vexora_answer_with("0000", Some("0015"), "J1", Some("1600"));

    let applied = w
        .apply(
            "J1",
            &Report::from_exchange(Operation::Submit, &tn("J1"), &answer),
        )
        .await;

    assert!(
        matches!(applied, Applied::Flagged(_, AnomalyReason::AmountMismatch)),
        "{applied:?}"
    );
    assert_eq!(w.order("J1").status, OrderStatus::Unconfirmed);
    assert_eq!(
        w.order("J1").check_after,
        Some(t0() + chrono::Duration::minutes(1))
    );
}

#[tokio::test]
async fn a_submit_answer_is_applied_to_its_own_intent_only() {
    let w = World::new(&[("K1", OrderStatus::Pending)]);
    let mut report = answer(
        Operation::Submit,
        "K1",
        &vexora_answer("0000", Some("0000"), "K1"),
    );
    report.intent = Some("an-intent-that-was-withdrawn".into());

    assert_eq!(w.apply("K1", &report).await, Applied::NotFound);
    assert_eq!(
        w.order("K1").status,
        OrderStatus::Pending,
        "another intent's order is untouched"
    );
}

/// A submit `code 8000` with no data: Vexora's request-level refusal.
fn refused(trade_no: &str) -> Report {
    let body =
        serde_json::json!({"code": "8000", "msg": "system error", "success": false, "data": null});
    let exchange = Exchange::Answered {
        http_status: 200,
        envelope: vexora::parse_envelope(body.to_string().as_bytes()),
    };
    answer(Operation::Submit, trade_no, &exchange)
}

#[tokio::test]
async fn a_webhook_0015_then_a_submit_8000_leaves_the_payout_processing_with_an_anomaly() {
    // Issue 22's first break: Vexora created the payout, told us by webhook, then answered the
    // submit 8000. The report about the payout outranks the refusal of the request.
    let w = World::new(&[("EV1", OrderStatus::Pending)]);
    w.apply("EV1", &webhook("EV1", "0015", ReportedAmount::Whole(1500)))
        .await;

    let applied = w.apply("EV1", &refused("EV1")).await;

    assert!(
        matches!(applied, Applied::Flagged(ref o, AnomalyReason::OutrankedFailure) if o.status == OrderStatus::Processing),
        "{applied:?}"
    );
    let order = w.order("EV1");
    assert_eq!(order.status, OrderStatus::Processing);
    assert_eq!(order.anomaly_count, 1);
    assert_eq!(w.anomalies(), 1);
    // Vexora's 0000 a second later settles it.
    w.apply("EV1", &webhook("EV1", "0000", ReportedAmount::Whole(1500)))
        .await;
    assert_eq!(w.order("EV1").status, OrderStatus::Succeeded);
}

#[tokio::test]
async fn a_kept_report_of_payment_then_a_submit_8000_never_fails_the_order() {
    // A 5000 answer whose data says 0000 leaves the order UNCONFIRMED with `reportedPaidAt`.
    let w = World::new(&[("EV2", OrderStatus::Pending)]);
    let paid_5000 = Exchange::Answered {
        http_status: 200,
        envelope: vexora::parse_envelope(
            serde_json::json!({"code": "5000", "data": {"tradeNo": "EV2", "status": "0000"}})
                .to_string()
                .as_bytes(),
        ),
    };
    w.apply("EV2", &answer(Operation::Submit, "EV2", &paid_5000))
        .await;
    let mut order = w.order("EV2");
    assert!(order.reported_paid_at.is_some(), "{order:?}");
    // Even a PENDING order (the same evidence kept by a write that moved nothing).
    order.status = OrderStatus::Pending;
    w.store.insert(order);

    let applied = w.apply("EV2", &refused("EV2")).await;

    assert!(
        matches!(
            applied,
            Applied::Flagged(_, AnomalyReason::OutrankedFailure)
        ),
        "{applied:?}"
    );
    assert_ne!(w.order("EV2").status, OrderStatus::Failed);
}

#[tokio::test]
async fn no_report_of_failure_moves_an_order_that_a_report_said_was_paid() {
    let w = World::new(&[("EV3", OrderStatus::Unconfirmed)]);
    let mut order = w.order("EV3");
    order.reported_paid_at = Some(t0());
    w.store.insert(order);

    let applied = w
        .apply("EV3", &webhook("EV3", "00029", ReportedAmount::Whole(1500)))
        .await;

    assert!(
        matches!(applied, Applied::Flagged(ref o, AnomalyReason::OutrankedFailure) if o.status == OrderStatus::Unconfirmed),
        "{applied:?}"
    );
}

#[tokio::test]
async fn a_submit_8000_fails_an_order_of_which_nothing_else_is_known() {
    let w = World::new(&[("EV4", OrderStatus::Pending)]);

    let applied = w.apply("EV4", &refused("EV4")).await;

    assert!(
        matches!(applied, Applied::Moved(ref o) if o.status == OrderStatus::Failed),
        "{applied:?}"
    );
}

#[tokio::test]
async fn a_keep_retried_after_another_write_lands_once() {
    // Issue 22 item 5: a keep whose answer was lost is sent again by the SDK after another write
    // landed; it must not be kept (nor its anomaly counted and published) twice.
    let w = World::new(&[("EV5", OrderStatus::Succeeded)]);
    let known = w.order("EV5");
    let anomaly = Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: AnomalyReason::ContradictsFinalState,
        report: Default::default(),
    };
    let annotation = Annotation::new(&known, None, Some(anomaly.clone()), "keep-1".into());
    assert!(
        w.store
            .annotate(&tn("EV5"), &annotation)
            .await
            .unwrap()
            .is_some()
    );
    let other = Annotation::new(&known, None, Some(anomaly), "keep-2".into());
    assert!(
        w.store
            .annotate(&tn("EV5"), &other)
            .await
            .unwrap()
            .is_some()
    );

    let again = w.store.annotate(&tn("EV5"), &annotation).await.unwrap();

    assert_eq!(again.map(|o| o.anomaly_count), Some(2));
    assert_eq!(w.order("EV5").anomaly_count, 2, "kept once each");
}
