//! The batch request's rules (the routes' and the worker's behaviour are tested in their crates
//! and end to end).

use super::*;

fn items(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut p: serde_json::Value =
                serde_json::from_str(&payout_testkit::payout_json(&format!("X{i}"), 1500)).unwrap();
            p.as_object_mut().unwrap().remove("tradeNo");
            p
        })
        .collect()
}

fn parse(body: &serde_json::Value) -> Result<BatchRequest, ValidationErrors> {
    BatchRequest::from_json(body.to_string().as_bytes(), BatchId::parse("GEN").unwrap())
}

#[test]
fn item_trade_nos_are_their_own_or_batch_id_and_index_within_32_characters() {
    let mut list = items(3);
    list[1]["tradeNo"] = "OWN-1".into();
    let batch = parse(&serde_json::json!({"batchId": "A".repeat(27), "items": list})).unwrap();
    let keys: Vec<&str> = batch.items.iter().map(|i| i.trade_no.as_str()).collect();
    assert_eq!(keys[1], "OWN-1");
    assert_eq!(keys[2], format!("{}-2", "A".repeat(27)));
    assert!(keys.iter().all(|k| k.len() <= 32));
    let big = parse(&serde_json::json!({"batchId": "A".repeat(27), "items": items(1000)})).unwrap();
    assert_eq!(big.items[999].trade_no.as_str().len(), 31);
    let generated = parse(&serde_json::json!({"items": items(1)})).unwrap();
    assert_eq!(generated.batch_id.as_str(), "GEN");
    assert!(!generated.named);
}

#[test]
fn the_fingerprint_tells_a_replay_from_other_items_and_the_total_is_exact() {
    let body = serde_json::json!({"batchId": "F", "items": items(3)});
    let (a, b) = (parse(&body).unwrap(), parse(&body).unwrap());
    assert_eq!(a.fingerprint(), b.fingerprint());
    let mut other = items(3);
    other[2]["amount"] = 1501.into();
    let c = parse(&serde_json::json!({"batchId": "F", "items": other})).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
    assert_eq!(a.total(), 4500);
}

#[test]
fn the_view_says_accepted_submitting_and_done_and_pages_by_100() {
    let batch = parse(&serde_json::json!({"batchId": "V", "items": items(150)})).unwrap();
    let now = chrono::Utc::now();
    let record = batch.record(now);
    let mut orders: Vec<Order> = batch.items.iter().map(|i| batch.order(i, now)).collect();
    let view = BatchView::new(&record, &orders, 0);
    assert_eq!(view.status, BatchStatus::Accepted);
    assert_eq!(view.items.len(), 100);
    assert_eq!(view.next.as_deref(), Some("100"));
    orders[0].queued = false;
    assert_eq!(
        BatchView::new(&record, &orders, 0).status,
        BatchStatus::Submitting
    );
    for o in &mut orders {
        o.queued = false;
        o.status = OrderStatus::Processing;
    }
    let done = BatchView::new(&record, &orders, 100);
    assert_eq!(done.status, BatchStatus::Done);
    assert_eq!(done.items.len(), 50);
    assert_eq!(done.next, None);
    assert_eq!(done.counts.get("PROCESSING"), Some(&150));
}
