//! Notification sequences against DynamoDB on the moto server.

use super::*;
use payout_app::store::Transition;
use payout_aws::store::{DynamoOrderStore, create_table};
use payout_testkit::{Moto, aws_config_for};
use std::sync::Arc;

type RealApp = TestApp<DynamoOrderStore>;

async fn real_app() -> RealApp {
    let config = aws_config_for(&Moto::shared().endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("payouts-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.unwrap();
    app_with(
        DynamoOrderStore::new(client, table),
        secret_store(SECRET),
        MIN_REFRESH_INTERVAL,
    )
    .await
}

async fn order(app: &RealApp, trade_no: &str) -> payout_domain::order::Order {
    app.store.get(&tn(trade_no)).await.unwrap().unwrap()
}

async fn send(app: &RealApp, trade_no: &str, status: &str) -> u16 {
    deliver(app, &signed(&report(trade_no, status), SECRET))
        .await
        .status
}

#[tokio::test]
async fn processing_then_success() {
    let app = real_app().await;
    with_order(&app.store, "S1").await;

    assert_eq!(send(&app, "S1", "0015").await, 200);
    assert_eq!(order(&app, "S1").await.status, OrderStatus::Processing);
    assert_eq!(send(&app, "S1", "0000").await, 200);

    let done = order(&app, "S1").await;
    assert_eq!(done.status, OrderStatus::Succeeded);
    assert_eq!(done.version, 3);
    let statuses: Vec<&str> = done.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["0015", "0000"]);
}

#[tokio::test]
async fn a_late_processing_after_success_is_stale() {
    let app = real_app().await;
    with_order(&app.store, "S2").await;
    send(&app, "S2", "0000").await;

    assert_eq!(send(&app, "S2", "0015").await, 200);

    let o = order(&app, "S2").await;
    assert_eq!(o.status, OrderStatus::Succeeded);
    assert_eq!(o.version, 2);
    assert!(o.anomalies.is_empty(), "stale is not an anomaly");
    assert_eq!(
        o.history.len(),
        1,
        "a stale report is logged, not written (one DynamoDB call)"
    );
}

#[tokio::test]
async fn failure_after_success_stays_succeeded_with_an_anomaly() {
    let app = real_app().await;
    with_order(&app.store, "S3").await;
    send(&app, "S3", "0000").await;

    assert_eq!(send(&app, "S3", "00029").await, 200);

    let o = order(&app, "S3").await;
    assert_eq!(o.status, OrderStatus::Succeeded);
    assert_eq!(o.anomalies.len(), 1);
    assert_eq!(o.anomalies[0].reason, AnomalyReason::ContradictsFinalState);
    assert_eq!(o.anomalies[0].report["status"], "00029");
    assert_eq!(app.metrics.total(metrics::PAYOUT_ANOMALY), 1);
}

#[tokio::test]
async fn success_after_failure_stays_failed_with_an_anomaly() {
    let app = real_app().await;
    with_order(&app.store, "S4").await;
    send(&app, "S4", "00029").await;

    assert_eq!(send(&app, "S4", "0000").await, 200);

    let o = order(&app, "S4").await;
    assert_eq!(o.status, OrderStatus::Failed);
    assert_eq!(o.anomalies.len(), 1);
    assert_eq!(app.metrics.total(metrics::PAYOUT_ANOMALY), 1);
}

#[tokio::test]
async fn the_same_notification_five_times_moves_the_order_once() {
    let app = real_app().await;
    with_order(&app.store, "S5").await;

    for _ in 0..5 {
        assert_eq!(send(&app, "S5", "0000").await, 200);
    }

    let o = order(&app, "S5").await;
    assert_eq!(o.status, OrderStatus::Succeeded);
    assert_eq!(o.version, 2);
    assert_eq!(o.history.len(), 1, "duplicates are logged, not written");
    assert!(o.anomalies.is_empty());
}

#[tokio::test]
async fn ten_concurrent_deliveries_of_one_success_make_one_transition() {
    let app = Arc::new(real_app().await);
    with_order(&app.store, "S6").await;
    let body = signed(&report("S6", "0000"), SECRET);

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move { deliver(&*app, &body).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let o = order(&app, "S6").await;
    assert_eq!(o.status, OrderStatus::Succeeded);
    assert_eq!(o.version, 2, "exactly one transition");
    assert_eq!(o.history.len(), 1, "duplicates are logged, not written");
}

#[tokio::test]
async fn a_notification_resolves_an_unconfirmed_order() {
    let app = real_app().await;
    with_order(&app.store, "S7").await;
    app.store
        .transition(&tn("S7"), &Transition::to(OrderStatus::Unconfirmed, t0()))
        .await
        .unwrap();

    assert_eq!(send(&app, "S7", "0000").await, 200);

    let o = order(&app, "S7").await;
    assert_eq!(o.status, OrderStatus::Succeeded);
    assert_eq!(o.version, 3);
}
