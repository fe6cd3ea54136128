//! The reconciler against DynamoDB on the moto server and a Vexora that holds scripted payouts
//! (the real binary against the sandbox is in the end-to-end tests). Time is injected
//! (`run(now, ..)`), never slept.

use super::*;
use chrono::Duration;
use payout_aws::store::{DynamoOrderStore, create_table};
use payout_domain::TradeNo;
use payout_domain::order::Order;
use payout_testkit::vexora_answer;
use payout_testkit::{
    FakeSecretStore, InMemoryStore, Moto, RecordingMetrics, ScriptedGateway, aws_config_for,
};
use std::sync::Arc;
use std::time::Instant;

const SECRET: &str = "reconcile-secret";

type RealReconciler = Reconciler<
    DynamoOrderStore,
    ScriptedGateway,
    FakeSecretStore,
    RecordingMetrics,
    Arc<payout_testkit::MemoryQueue>,
>;

/// What Vexora holds for a payout.
#[derive(Debug, Clone, Copy)]
enum Vexora {
    Paid,
    Failed,
    /// Never created: a query answers `8000`.
    Nothing,
}

/// No deadline within any test's reach.
fn no_deadline() -> Instant {
    Instant::now() + std::time::Duration::from_secs(3600)
}

async fn setup(max_orders: u32) -> RealReconciler {
    let config = aws_config_for(&Moto::shared().endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("payouts-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.unwrap();
    Reconciler {
        store: DynamoOrderStore::new(client, table),
        // A payout Vexora does not hold: `8000` ("not found") to a query.
        gateway: ScriptedGateway::answering(vexora_answer("8000", None, "-")),
        secrets: payout_testkit::secrets(SECRET),
        metrics: RecordingMetrics::default(),
        abandoned_after: Duration::seconds(28),
        schedule: Schedule {
            processing_age: Duration::minutes(15),
        },
        give_up_after: Duration::hours(72),
        max_orders,
        queue: None,
    }
}

/// Now, to the millisecond the store keeps.
fn now_ms() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

/// Makes Vexora hold `vexora` for `trade_no`, and stores our order for it as `status`, created
/// `age` ago and due now.
async fn arrange(
    r: &RealReconciler,
    trade_no: &str,
    vexora: Vexora,
    status: OrderStatus,
    now: DateTime<Utc>,
    age: Duration,
) {
    let held = match vexora {
        Vexora::Paid => Some("0000"),
        Vexora::Failed => Some("00029"),
        Vexora::Nothing => None,
    };
    if let Some(final_status) = held {
        let mut answer = vexora_answer("0000", Some(final_status), trade_no);
        if let vexora::Exchange::Answered {
            envelope: Some(envelope),
            ..
        } = &mut answer
            && let Some(data) = envelope.data.as_mut()
        {
            data.amount = Some("1500".into());
        }
        r.gateway.holds(trade_no, answer);
    }
    let payout = payout_testkit::payout(trade_no, 1500);
    let mut order = Order::pending(tn(trade_no), &payout, now - age, now - Duration::seconds(1));
    order.status = status;
    r.store.create(&order).await.unwrap();
}

async fn status(r: &RealReconciler, trade_no: &str) -> Order {
    r.store.get(&tn(trade_no)).await.unwrap().unwrap()
}

#[tokio::test]
async fn stuck_orders_of_every_kind_are_resolved_to_vexoras_truth() {
    let r = setup(100).await;
    let now = now_ms();
    let cases = [
        (
            "NOHOOK",
            Vexora::Paid,
            OrderStatus::Processing,
            OrderStatus::Succeeded,
        ),
        (
            "CODE5000",
            Vexora::Paid,
            OrderStatus::Unconfirmed,
            OrderStatus::Succeeded,
        ),
        (
            "DROPPED",
            Vexora::Paid,
            OrderStatus::Unconfirmed,
            OrderStatus::Succeeded,
        ),
        (
            "CRASHED",
            Vexora::Paid,
            OrderStatus::Pending,
            OrderStatus::Succeeded,
        ),
        (
            "FAILEDLATER",
            Vexora::Failed,
            OrderStatus::Processing,
            OrderStatus::Failed,
        ),
    ];
    for (t, behaviour, stored, _) in cases {
        arrange(&r, t, behaviour, stored, now, Duration::hours(1)).await;
    }

    let report = r.run(now, no_deadline()).await.unwrap();

    for (t, _, _, expected) in cases {
        let order = status(&r, t).await;
        assert_eq!(order.status, expected, "{t}");
        assert_eq!(order.check_after, None, "{t}: left the unresolved index");
        assert_eq!(r.gateway.queries_for(t), 1, "{t}");
        assert!(r.gateway.submits().is_empty(), "{t}: never re-submitted");
        assert_eq!(
            order.history.last().unwrap().source,
            payout_domain::order::ReportSource::Query
        );
    }
    assert_eq!((report.checked, report.resolved, report.flagged), (5, 5, 0));
    assert_eq!(r.metrics.total(metrics::RECONCILE_RESOLVED), 5);
    assert_eq!(r.metrics.total(metrics::RECONCILE_RUN), 1, "the heartbeat");
}

#[tokio::test]
async fn an_order_vexora_never_created_stays_unresolved_and_is_flagged_after_the_age_limit() {
    let r = setup(100).await;
    let now = now_ms();
    arrange(
        &r,
        "GHOST",
        Vexora::Nothing,
        OrderStatus::Unconfirmed,
        now,
        Duration::minutes(5),
    )
    .await;

    let first = r.run(now, no_deadline()).await.unwrap();

    let order = status(&r, "GHOST").await;
    assert_eq!(
        order.status,
        OrderStatus::Unconfirmed,
        "8000 on a query never fails an order"
    );
    assert!(!order.manual_review);
    assert_eq!(order.check_attempts, 1);
    assert_eq!(
        order.check_after,
        Some(now + Duration::minutes(1)),
        "first back-off step"
    );
    assert_eq!(
        (first.checked, first.still_pending, first.flagged),
        (1, 1, 0)
    );

    let later = now + Duration::hours(73);
    let report = r.run(later, no_deadline()).await.unwrap();

    let order = status(&r, "GHOST").await;
    assert_eq!(order.status, OrderStatus::Unconfirmed);
    assert!(order.manual_review);
    assert_eq!(
        order.check_after,
        Some(later + Duration::minutes(5)),
        "second back-off step"
    );
    assert_eq!(report.flagged, 1);
    assert_eq!(r.metrics.total(metrics::STUCK_ORDERS), 1);
}

#[tokio::test]
async fn a_pending_order_whose_submit_may_still_run_is_left_alone() {
    let r = setup(100).await;
    let now = now_ms();
    arrange(
        &r,
        "YOUNG",
        Vexora::Paid,
        OrderStatus::Pending,
        now,
        Duration::seconds(5),
    )
    .await;

    let report = r.run(now, no_deadline()).await.unwrap();

    assert_eq!(report.checked, 0);
    assert_eq!(status(&r, "YOUNG").await.status, OrderStatus::Pending);
    assert_eq!(r.gateway.queries_for("YOUNG"), 0);
}

#[tokio::test]
async fn two_overlapping_runs_query_and_apply_each_order_once() {
    let r = setup(100).await;
    let r = Arc::new(r);
    let now = now_ms();
    let trade_nos: Vec<String> = (0..6).map(|i| format!("OVER{i}")).collect();
    for t in &trade_nos {
        arrange(
            &r,
            t,
            Vexora::Paid,
            OrderStatus::Unconfirmed,
            now,
            Duration::hours(1),
        )
        .await;
    }

    let (a, b) = tokio::join!(r.run(now, no_deadline()), r.run(now, no_deadline()));

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.checked + b.checked, 6, "{a:?} {b:?}");
    assert_eq!(a.resolved + b.resolved, 6);
    for t in &trade_nos {
        assert_eq!(r.gateway.queries_for(t), 1, "{t}");
        let order = status(&r, t).await;
        assert_eq!(order.status, OrderStatus::Succeeded);
        assert_eq!(order.version, 2, "{t}: one transition");
    }
}

#[tokio::test]
async fn the_number_of_queries_per_run_is_bounded() {
    let r = setup(3).await;
    let now = now_ms();
    for i in 0..5 {
        arrange(
            &r,
            &format!("BOUND{i}"),
            Vexora::Paid,
            OrderStatus::Processing,
            now,
            Duration::hours(1),
        )
        .await;
    }

    let first = r.run(now, no_deadline()).await.unwrap();
    let second = r.run(now, no_deadline()).await.unwrap();

    assert_eq!(first.checked, 3);
    assert_eq!(r.gateway.queries().len(), 5);
    assert_eq!(second.checked, 2, "the rest in the next run");
}

#[tokio::test]
async fn unresolved_orders_back_off_1_then_5_minutes() {
    let r = setup(100).await;
    let now = now_ms();
    arrange(
        &r,
        "BACKOFF",
        Vexora::Nothing,
        OrderStatus::Unconfirmed,
        now,
        Duration::hours(1),
    )
    .await;

    r.run(now, no_deadline()).await.unwrap();
    let not_yet = r
        .run(now + Duration::seconds(59), no_deadline())
        .await
        .unwrap();
    r.run(now + Duration::minutes(1), no_deadline())
        .await
        .unwrap();

    assert_eq!(not_yet.checked, 0, "not due before its back-off");
    let order = status(&r, "BACKOFF").await;
    assert_eq!(order.check_attempts, 2);
    assert_eq!(order.check_after, Some(now + Duration::minutes(6)));
}

#[tokio::test]
async fn an_abandoned_pending_order_vexora_never_created_is_stored_unconfirmed() {
    let r = setup(100).await;
    let now = now_ms();
    arrange(
        &r,
        "NEVERSENT",
        Vexora::Nothing,
        OrderStatus::Pending,
        now,
        Duration::minutes(5),
    )
    .await;

    let report = r.run(now, no_deadline()).await.unwrap();

    assert_eq!(report.checked, 1);
    let order = status(&r, "NEVERSENT").await;
    assert_eq!(
        order.status,
        OrderStatus::Unconfirmed,
        "stored as shown, never left PENDING"
    );
    assert!(order.check_after.is_some(), "still found by the next run");
}

#[tokio::test]
async fn a_run_answers_before_its_deadline_however_slow_vexora_is() {
    let now = now_ms();
    let store = InMemoryStore::new();
    for i in 0..5 {
        let trade_no = format!("SLOW{i}");
        let mut order = Order::pending(
            tn(&trade_no),
            &payout_testkit::payout(&trade_no, 1500),
            now - Duration::hours(1),
            now - Duration::minutes(1),
        );
        order.status = OrderStatus::Unconfirmed;
        store.insert(order);
    }
    let r = Reconciler {
        store,
        gateway: ScriptedGateway::answering(vexora::Exchange::TimedOut)
            .with_delay(std::time::Duration::from_secs(3600)),
        secrets: payout_testkit::secrets(SECRET),
        metrics: RecordingMetrics::default(),
        abandoned_after: Duration::seconds(28),
        schedule: Schedule {
            processing_age: Duration::minutes(15),
        },
        give_up_after: Duration::hours(72),
        max_orders: 100,
        queue: None::<payout_testkit::MemoryQueue>,
    };
    let started = Instant::now();
    let deadline =
        started + payout_aws::time_budget::MARGIN + std::time::Duration::from_millis(300);

    let report = r.run(now, deadline).await.unwrap();

    assert!(report.out_of_time, "{report:?}");
    assert!(
        Instant::now() < deadline,
        "answered {:?} after the deadline",
        Instant::now() - deadline
    );
    assert_eq!(
        r.gateway.queries().len(),
        1,
        "one order started, none after the cut"
    );
    assert_eq!(
        r.run(now, Instant::now()).await.unwrap(),
        RunReport {
            out_of_time: true,
            ..RunReport::default()
        },
        "no time left: nothing is started"
    );
}

#[tokio::test]
async fn each_run_publishes_vexoras_available_balance_and_skips_it_when_vexora_cannot_tell() {
    let r = setup(10).await;
    r.gateway
        .then_balance(payout_testkit::balance_answer("45000", "0", "0"));
    let report = r.run(now_ms(), no_deadline()).await.unwrap();
    assert_eq!(report.available_balance, Some(45000));
    assert_eq!(r.metrics.total(metrics::VEXORA_AVAILABLE_BALANCE), 45000);
    assert_eq!(r.gateway.balance_queries().len(), 1);

    r.gateway.then_balance(vexora::Exchange::TimedOut);
    let report = r.run(now_ms(), no_deadline()).await.unwrap();
    assert_eq!(report.available_balance, None, "never a made-up zero");
    assert_eq!(
        r.metrics.total(metrics::VEXORA_AVAILABLE_BALANCE),
        45000,
        "no reading published"
    );
    assert_eq!(r.metrics.total(metrics::RECONCILE_RUN), 2);
}

#[tokio::test]
async fn a_queued_batch_item_whose_message_was_lost_goes_on_the_queue_again_once() {
    use payout_app::batch::{BatchId, BatchRequest, BatchStore};
    use payout_testkit::MemoryQueue;
    let queue = Arc::new(MemoryQueue::default());
    let r = Reconciler {
        queue: Some(queue.clone()),
        ..setup(10).await
    };
    let mut item: serde_json::Value =
        serde_json::from_str(&payout_testkit::payout_json("QB-0", 1500)).unwrap();
    item.as_object_mut().unwrap().remove("tradeNo");
    let body = serde_json::json!({"batchId": "QB", "items": [item]}).to_string();
    let batch = BatchRequest::from_json(body.as_bytes(), BatchId::parse("x").unwrap()).unwrap();
    let long_ago = now_ms() - Duration::hours(1);
    r.store
        .create_queued(
            &batch.order(&batch.items[0], long_ago),
            &batch.items[0].payload,
        )
        .await
        .unwrap();
    // Its batch was never committed (the request failed half-way): nothing is queued.
    r.store.put_batch(&batch.record(long_ago)).await.unwrap();
    let report = r.run(now_ms(), no_deadline()).await.unwrap();
    assert_eq!(report.requeued, 0, "{report:?}");
    assert!(queue.taken().is_empty());
    make_due(&r, "QB-0").await;
    r.store.commit_batch(&batch.batch_id).await.unwrap();

    let report = r.run(now_ms(), no_deadline()).await.unwrap();
    assert_eq!(report.requeued, 1, "{report:?}");
    assert_eq!(
        report.checked, 0,
        "a queued item is never queried nor abandoned"
    );
    let sent = queue.taken();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].batch_id.as_str(), sent[0].trade_no.as_str()),
        ("QB", "QB-0")
    );
    let order = status(&r, "QB-0").await;
    assert!(order.queued && order.status == OrderStatus::Pending);
    assert!(r.gateway.queries().is_empty() && r.gateway.submits().is_empty());

    // Not due again until its back-off has passed: one message per back-off, not per run.
    let report = r.run(now_ms(), no_deadline()).await.unwrap();
    assert_eq!(report.requeued, 0);
    assert!(queue.taken().is_empty());
}

/// Moves an unresolved order's next check to the past, as time passing would.
async fn make_due(r: &RealReconciler, trade_no: &str) {
    let order = status(r, trade_no).await;
    let claim = payout_app::store::CheckClaim {
        seen: order.check_after.unwrap(),
        next: now_ms() - Duration::minutes(1),
        now: now_ms(),
        manual_review: false,
    };
    assert!(r.store.claim_check(&tn(trade_no), &claim).await.unwrap());
}

#[tokio::test]
async fn a_half_stored_item_no_accepted_batch_lists_is_counted_stuck_then_withdrawn_within_a_day() {
    use payout_app::batch::{BatchId, BatchRequest, BatchStore};
    use payout_testkit::MemoryQueue;
    let queue = Arc::new(MemoryQueue::default());
    let r = Reconciler {
        queue: Some(queue.clone()),
        ..setup(10).await
    };
    let mut item: serde_json::Value =
        serde_json::from_str(&payout_testkit::payout_json("HS-0", 1500)).unwrap();
    item.as_object_mut().unwrap().remove("tradeNo");
    let body = serde_json::json!({"batchId": "HS", "items": [item]}).to_string();
    let batch = BatchRequest::from_json(body.as_bytes(), BatchId::parse("x").unwrap()).unwrap();
    let stored_at = now_ms() - Duration::hours(1);
    r.store
        .create_queued(
            &batch.order(&batch.items[0], stored_at),
            &batch.items[0].payload,
        )
        .await
        .unwrap();
    // The batch's request failed half-way: its record stays open.
    r.store.put_batch(&batch.record(stored_at)).await.unwrap();

    let report = r.run(now_ms(), no_deadline()).await.unwrap();

    assert_eq!((report.half_stored, report.withdrawn), (1, 0), "{report:?}");
    assert_eq!(r.metrics.total(metrics::STUCK_ORDERS), 1);
    assert!(queue.taken().is_empty(), "never sent");

    // No batch listed it for the day since: withdrawn, personal data and all.
    let a_day_later = stored_at + Duration::hours(24);
    let report = r.run(a_day_later, no_deadline()).await.unwrap();

    assert_eq!(report.withdrawn, 1, "{report:?}");
    assert!(r.store.get(&tn("HS-0")).await.unwrap().is_none());
    assert!(queue.taken().is_empty());
    assert!(r.gateway.submits().is_empty() && r.gateway.queries().is_empty());
}
