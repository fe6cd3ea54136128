//! `POST /batches` and `GET /batches/{batchId}` over the in-memory store and queue; every answer
//! is checked against `openapi.yaml`.

use std::sync::Arc;

use payout_testkit::MemoryQueue;

use super::*;

fn batch_app() -> (TestApp, Arc<MemoryQueue>) {
    let queue = Arc::new(MemoryQueue::default());
    let app = App {
        queue: Some(queue.clone()),
        ..app(processing("B"))
    };
    (app, queue)
}

fn items(n: usize, amount: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut p: Value =
                serde_json::from_str(&payout_testkit::payout_json(&format!("I{i}"), amount))
                    .unwrap();
            p.as_object_mut().unwrap().remove("tradeNo");
            p
        })
        .collect()
}

fn post_batch(body: &Value) -> Request {
    event("POST", "/batches", "$default", "", Some(&body.to_string()))
}

fn get_batch(id: &str, query: &str) -> Request {
    event("GET", &format!("/batches/{id}"), "$default", query, None)
}

#[tokio::test]
async fn a_batch_is_stored_queued_and_answered_202_and_nothing_is_sent_by_the_api() {
    let (app, queue) = batch_app();
    let answer = send(
        &app,
        post_batch(&json!({"batchId": "PAYROLL_1", "items": items(3, 1500)})),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"batchId": "PAYROLL_1", "status": "ACCEPTED", "items": 3})
    );
    let sent = queue.taken();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].trade_no, "PAYROLL_1-2");
    assert!(app.gateway.submits().is_empty());
    let order = stored(&app, "PAYROLL_1-0").unwrap();
    assert!(order.queued && order.status == OrderStatus::Pending);
    assert_eq!(order.batch_id.as_deref(), Some("PAYROLL_1"));

    // Each item reads like any payout.
    let one = send(&app, get("PAYROLL_1-1")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["status"], "PENDING");

    let view = send(&app, get_batch("PAYROLL_1", "")).await;
    assert_eq!(view.status, 200);
    assert_eq!(view.body["status"], "ACCEPTED");
    assert_eq!(view.body["counts"], json!({"PENDING": 3}));
    assert_eq!(view.body["items"].as_array().unwrap().len(), 3);
    assert!(view.body.get("next").is_none());
}

#[tokio::test]
async fn the_same_batch_again_is_200_and_other_items_under_its_id_are_422() {
    let (app, queue) = batch_app();
    let body = json!({"batchId": "RUN_2", "items": items(2, 1500)});
    assert_eq!(send(&app, post_batch(&body)).await.status, 202);
    queue.taken();
    let again = send(&app, post_batch(&body)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["batchId"], "RUN_2");
    // Still-queued items are queued again (a lost message); a worker sends each once.
    assert_eq!(queue.taken().len(), 2);
    let other = send(
        &app,
        post_batch(&json!({"batchId": "RUN_2", "items": items(2, 1600)})),
    )
    .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["error"], "idempotency_mismatch");
    assert!(app.gateway.submits().is_empty());
}

#[tokio::test]
async fn every_invalid_item_is_named_and_nothing_is_stored() {
    let (app, queue) = batch_app();
    let mut bad = items(3, 1500);
    bad[1]["amount"] = json!("99");
    bad[2]["mobile"] = json!("+81901234567");
    let answer = send(&app, post_batch(&json!({"batchId": "BAD", "items": bad}))).await;
    assert_eq!(answer.status, 400);
    let fields: Vec<&str> = answer.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[1].amount", "items[2].mobile"]);
    assert!(stored(&app, "BAD-0").is_none());
    assert!(queue.taken().is_empty());

    for (body, field) in [
        (json!({"items": []}), "items"),
        (
            json!({"batchId": "x-y", "items": items(1, 1500)}),
            "batchId",
        ),
        (
            json!({"batchId": "A".repeat(28), "items": items(1, 1500)}),
            "batchId",
        ),
        (json!({"items": items(1001, 1500)}), "items"),
        (json!({"items": "all"}), "items"),
        (json!({"items": items(1, 1500), "extra": 1}), "extra"),
    ] {
        let answer = send(&app, post_batch(&body)).await;
        assert_eq!(answer.status, 400, "{field}");
        assert_eq!(answer.body["fields"][0]["field"], field);
    }
    // Two items with one tradeNo reuse one idempotency key: 422, nothing stored.
    let mut twins = items(2, 1500);
    twins[0]["tradeNo"] = json!("SAME");
    twins[1]["tradeNo"] = json!("SAME");
    let answer = send(&app, post_batch(&json!({"items": twins}))).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["tradeNo"], "SAME");
    assert!(stored(&app, "SAME").is_none());
}

#[tokio::test]
async fn a_batch_over_the_balance_is_refused_whole_and_an_item_of_another_payout_is_422() {
    let (app, queue) = batch_app();
    app.gateway
        .then_balance(payout_testkit::balance_answer("2999", "0", "0"));
    let answer = send(
        &app,
        post_batch(&json!({"batchId": "BIG", "items": items(2, 1500)})),
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.body["error"], "insufficient_balance");
    assert!(stored(&app, "BIG-0").is_none() && stored(&app, "BIG-1").is_none());
    assert!(queue.taken().is_empty());

    // BIG-0 exists as another payout of the merchant's.
    send(&app, post(&payout_testkit::payout_json("BIG-0", 1700))).await;
    let answer = send(
        &app,
        post_batch(&json!({"batchId": "BIG", "items": items(2, 1500)})),
    )
    .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["tradeNo"], "BIG-0");
    assert!(stored(&app, "BIG-1").is_none());
}

#[tokio::test]
async fn pages_of_a_large_batch_and_every_refusal_of_the_read() {
    let (app, _queue) = batch_app();
    let answer = send(
        &app,
        post_batch(&json!({"batchId": "LARGE", "items": items(250, 100)})),
    )
    .await;
    assert_eq!(answer.status, 202);
    let first = send(&app, get_batch("LARGE", "")).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 100);
    assert_eq!(first.body["counts"]["PENDING"], 250);
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = send(&app, get_batch("LARGE", &format!("next={next}"))).await;
    assert_eq!(second.body["items"][0]["tradeNo"], "LARGE-100");
    let last = send(&app, get_batch("LARGE", "next=200")).await;
    assert_eq!(last.body["items"].as_array().unwrap().len(), 50);
    assert!(last.body.get("next").is_none());

    assert_eq!(send(&app, get_batch("NOPE", "")).await.status, 404);
    let past = send(&app, get_batch("LARGE", "next=999")).await;
    assert_eq!(past.status, 200);
    assert!(past.body["items"].as_array().unwrap().is_empty());
    assert!(past.body.get("next").is_none());
    assert_eq!(send(&app, get_batch("LARGE", "next=x")).await.status, 400);
    assert_eq!(send(&app, get_batch("LARGE", "page=2")).await.status, 400);
    let wrong = send(
        &app,
        event("DELETE", "/batches/LARGE", "$default", "", None),
    )
    .await;
    assert_eq!(wrong.status, 405);
}

#[tokio::test]
async fn without_a_queue_batches_are_503_and_nothing_is_stored() {
    let app = app(processing("B"));
    let answer = send(
        &app,
        post_batch(&json!({"batchId": "NOQ", "items": items(1, 1500)})),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert!(stored(&app, "NOQ-0").is_none());
}

#[tokio::test]
async fn a_batch_whose_request_failed_half_way_sends_nothing_until_a_retry_completes_it() {
    let (app, queue) = batch_app();
    app.store.fail_operation("commit_batch");
    let body = json!({"items": items(3, 1500)});
    let failed = send(&app, post_batch(&body)).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let batch_id = failed.body["batchId"].as_str().unwrap().to_owned();
    assert!(
        queue.taken().is_empty(),
        "nothing of an open batch is queued"
    );
    assert!(stored(&app, &format!("{batch_id}-0")).unwrap().queued);
    assert_eq!(send(&app, get_batch(&batch_id, "")).await.status, 404);

    app.store.heal();
    let retry = json!({"batchId": batch_id, "items": items(3, 1500)});
    let done = send(&app, post_batch(&retry)).await;
    assert_eq!(done.status, 202, "{}", done.body);
    assert_eq!(queue.taken().len(), 3, "the retry queues every item, once");
    assert_eq!(send(&app, get_batch(&batch_id, "")).await.status, 200);
    assert!(app.gateway.submits().is_empty());
}

#[tokio::test]
async fn a_batch_item_too_large_for_a_table_item_is_a_400_naming_the_item() {
    // Whitespace inside an item is valid JSON and kept as sent: within the 1 MiB body it could
    // outgrow DynamoDB's item, which would answer 503 for ever.
    let (app, queue) = batch_app();
    let padded = format!(
        "{{\"batchId\": \"BIG\", \"items\": [{}, {{{}\"tradeNo\": \"BIG-1\", \"amount\": 1500, \"bankCode\": \"0005\", \"bankNumber\": \"1234567\", \"userId\": \"u\", \"mobile\": \"09012345678\", \"email\": \"a@example.jp\", \"firstname\": \"タロウ\", \"lastname\": \"ヤマダ\"}}]}}",
        payout_testkit::payout_json("BIG-0", 1500),
        " ".repeat(500 * 1024)
    );

    let answer = send(
        &app,
        event("POST", "/batches", "$default", "", Some(&padded)),
    )
    .await;

    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        answer.body["fields"][0]["field"], "items[1]",
        "{}",
        answer.body
    );
    assert!(stored(&app, "BIG-0").is_none(), "nothing stored");
    assert!(queue.taken().is_empty());
}
