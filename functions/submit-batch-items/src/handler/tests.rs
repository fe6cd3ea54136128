//! The worker over the in-memory store (held to DynamoDB by the store's behaviour tests) and a
//! scripted Vexora; the real binary against moto, SQS and the sandbox is in the e2e tests.

use super::*;
use chrono::TimeZone;
use payout_app::batch::{BatchId, BatchRequest};
use payout_domain::order::OrderStatus;
use payout_testkit::{
    FakeSecretStore, InMemoryStore, RecordingMetrics, ScriptedGateway, vexora_answer,
};
use vexora::{Exchange, NotSent};

type TestWorker = Worker<InMemoryStore, ScriptedGateway, FakeSecretStore, RecordingMetrics>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
}

fn worker(answer: Exchange) -> TestWorker {
    Worker {
        store: InMemoryStore::new(),
        gateway: ScriptedGateway::answering(answer),
        secrets: payout_testkit::secrets("batch-secret"),
        metrics: RecordingMetrics::default(),
        notify_url: Url::parse("https://api.example.jp/vexora/notify").unwrap(),
        abandoned_after: chrono::Duration::seconds(28),
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        worst_item: Duration::from_secs(1),
        clock: t0,
    }
}

/// Stores a batch of `n` queued items the way `POST /batches` does.
async fn queued(w: &TestWorker, n: usize) -> Vec<String> {
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut p: serde_json::Value =
                serde_json::from_str(&payout_testkit::payout_json(&format!("W{i}"), 1500)).unwrap();
            p.as_object_mut().unwrap().remove("tradeNo");
            p
        })
        .collect();
    let body = serde_json::json!({"batchId": "WB", "items": items}).to_string();
    let batch =
        BatchRequest::from_json(body.as_bytes(), BatchId::parse("unused").unwrap()).unwrap();
    for item in &batch.items {
        w.store
            .create_queued(&batch.order(item, t0()), &item.payload)
            .await
            .unwrap();
    }
    batch.items.iter().map(|i| i.trade_no.to_string()).collect()
}

fn event(trade_nos: &[String]) -> SqsEvent {
    let records: Vec<_> = trade_nos
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"messageId": format!("m{i}"), "body":
                serde_json::json!({"batchId": "WB", "tradeNo": t}).to_string()})
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// Vexora answers each item's submit with `status`, naming that item.
fn answers(w: &TestWorker, items: &[String], status: &str) {
    for t in items {
        w.gateway
            .then_submit(vexora_answer("0000", Some(status), t));
    }
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn stored(w: &TestWorker, trade_no: &str) -> payout_domain::order::Order {
    w.store
        .snapshot(&TradeNo::parse(trade_no).unwrap())
        .unwrap()
}

#[tokio::test]
async fn each_item_is_sent_once_however_often_its_message_comes() {
    let w = worker(vexora_answer("0000", Some("0015"), "-"));
    let items = queued(&w, 3).await;
    assert_eq!(
        items,
        ["WB-0", "WB-1", "WB-2"],
        "an item without a tradeNo is batchId-i"
    );
    answers(&w, &items, "0015");
    let mut twice = items.clone();
    twice.extend(items.clone());
    let answer = w.handle(&event(&twice), later()).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let again = w.handle(&event(&items), later()).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(
        w.gateway.submits().len(),
        3,
        "one Vexora call per item, ever"
    );
    for t in &items {
        let order = stored(&w, t);
        assert_eq!(order.status, OrderStatus::Processing);
        assert!(!order.queued);
    }
}

#[tokio::test]
async fn an_item_vexora_certainly_never_got_goes_back_in_the_queue_and_is_sent_later() {
    let w = worker(vexora_answer("0000", Some("0015"), "-"));
    let items = queued(&w, 1).await;
    w.gateway.then_submit(Exchange::NotSent(NotSent::Connect));
    answers(&w, &items, "0015");
    let answer = w.handle(&event(&items), later()).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "handed back");
    let order = stored(&w, &items[0]);
    assert!(order.queued && order.status == OrderStatus::Pending);

    let answer = w.handle(&event(&items), later()).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        w.gateway.submits().len(),
        2,
        "the unreceived call and the real one"
    );
    assert_eq!(stored(&w, &items[0]).status, OrderStatus::Processing);
    // Counted as the submit path counts: the unreceived call once, the real one as submitted.
    let count = |name| w.metrics.total(name);
    assert_eq!(count(payout_app::metrics::VEXORA_UNAVAILABLE), 1);
    assert_eq!(count(payout_app::metrics::PAYOUT_SUBMITTED), 1);
    assert_eq!(count(payout_app::metrics::PAYOUT_UNCONFIRMED), 0);
}

#[tokio::test]
async fn an_unreceived_item_that_cannot_be_put_back_is_counted_unavailable_once() {
    let w = worker(vexora_answer("0000", Some("0015"), "-"));
    let items = queued(&w, 1).await;
    w.gateway.then_submit(Exchange::NotSent(NotSent::Connect));
    w.store.fail_operation("requeue");
    let answer = w.handle(&event(&items), later()).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(w.metrics.total(payout_app::metrics::VEXORA_UNAVAILABLE), 1);
    assert_eq!(w.gateway.submits().len(), 1);
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_found_by_its_own_retry_and_sent_once() {
    let w = worker(vexora_answer("0000", Some("0000"), "-"));
    let items = queued(&w, 1).await;
    answers(&w, &items, "0000");
    w.store.fail_after_applying("claim_queued", 1);
    let answer = w.handle(&event(&items), later()).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(w.gateway.submits().len(), 1);
    assert_eq!(stored(&w, &items[0]).status, OrderStatus::Succeeded);
}

#[tokio::test]
async fn without_time_or_storage_nothing_is_taken_and_the_message_comes_back() {
    let w = worker(vexora_answer("0000", Some("0015"), "-"));
    let items = queued(&w, 2).await;
    let answer = w.handle(&event(&items), Instant::now()).await;
    assert_eq!(answer.batch_item_failures.len(), 2);
    w.store.fail_operation("claim_queued");
    let answer = w.handle(&event(&items), later()).await;
    assert_eq!(answer.batch_item_failures.len(), 2);
    assert!(w.gateway.submits().is_empty());
    for t in &items {
        assert!(stored(&w, t).queued);
    }
}

#[tokio::test]
async fn messages_that_name_no_item_are_dropped_without_a_call() {
    let w = worker(vexora_answer("0000", Some("0015"), "-"));
    let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
        {"messageId": "a", "body": "not json"},
        {"messageId": "b", "body": "{\"batchId\":\"X\",\"tradeNo\":\"bad tradeNo!\"}"},
        {"messageId": "c", "body": "{\"batchId\":\"X\",\"tradeNo\":\"NOT-STORED\"}"},
    ]}))
    .unwrap();
    let answer = w.handle(&event, later()).await;
    assert!(answer.batch_item_failures.is_empty());
    assert!(w.gateway.submits().is_empty());
}
