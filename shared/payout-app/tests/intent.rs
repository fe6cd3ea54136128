//! The intent flow over the in-memory store.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;

use payout_app::intent::*;
use payout_domain::order::Order;

use payout_domain::TradeNo;
use payout_testkit::InMemoryStore;

fn order(trade_no: &str) -> Order {
    let now = Utc::now();
    Order::pending(
        TradeNo::parse(trade_no).unwrap(),
        &payout_testkit::payout(trade_no, 1500),
        now,
        now,
    )
}

#[tokio::test]
async fn a_put_that_landed_but_reported_an_error_is_still_ours() {
    let store = InMemoryStore::new();
    store.fail_after_applying("create", 1);

    let intent = store_intent(&store, order("I1")).await.unwrap();

    assert!(
        matches!(intent, Intent::New(ref o) if o.trade_no.as_str() == "I1"),
        "{intent:?}"
    );
}

#[tokio::test]
async fn another_submits_order_is_existing_not_ours() {
    let store = InMemoryStore::new();
    store_intent(&store, order("I2")).await.unwrap();

    let second = store_intent(&store, order("I2")).await.unwrap();

    assert!(matches!(second, Intent::Existing(_)), "{second:?}");
}

#[tokio::test]
async fn when_it_cannot_be_told_whether_the_put_landed_the_intent_is_withdrawn() {
    let store = InMemoryStore::new();
    store.fail_after_applying("create", 1);
    store.fail_operation("get");

    assert!(store_intent(&store, order("I4")).await.is_err());

    assert_eq!(
        store.snapshot(&TradeNo::parse("I4").unwrap()),
        None,
        "a retry told nothing was sent must be able to send"
    );
}

#[tokio::test]
async fn a_put_that_failed_and_stored_nothing_is_an_error() {
    let store = InMemoryStore::new();
    store.fail_operation("create");

    assert!(store_intent(&store, order("I3")).await.is_err());
    assert_eq!(store.snapshot(&TradeNo::parse("I3").unwrap()), None);
}
