//! Storing a payout intent exactly once: the conditional put of a `PENDING` order, which
//! recognizes its own write when DynamoDB applied it but the answer was lost (the SDK's retry
//! then fails its condition on our own item, or every attempt reports an error).

use crate::apply::write_id;
use crate::order::Order;
use crate::store::{Created, OrderStore, StoreError};

/// Where a submit stands after storing its intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// This submit stored the order: it, and only it, sends the payout.
    New(Order),
    /// The `tradeNo` was already taken (another submit, or an earlier one of the same payout).
    Existing(Order),
}

/// Stores `order` (`PENDING`, version 1) unless its `tradeNo` exists. The item carries a fresh
/// intent id (`intentId`): an existing item with our id is our own write, so the payout is
/// sent exactly once even when the put landed but was reported as failed. When storing fails
/// and it cannot be told whether the put landed, the intent is withdrawn (conditionally: only
/// ours, only while `PENDING`) so that the merchant's retry, told nothing was sent, can send it.
pub async fn store_intent<S: OrderStore>(
    store: &S,
    mut order: Order,
) -> Result<Intent, StoreError> {
    let attempt = write_id();
    order.intent_id = Some(attempt.clone());
    order.last_write = Some(attempt.clone());
    let ours = |o: &Order| o.intent_id.as_deref() == Some(attempt.as_str());
    match store.create(&order).await {
        Ok(Created::Created) => Ok(Intent::New(order)),
        Ok(Created::AlreadyExists(existing)) if ours(&existing) => Ok(Intent::New(*existing)),
        Ok(Created::AlreadyExists(existing)) => Ok(Intent::Existing(*existing)),
        // The put may have landed with its answer lost: one consistent read tells.
        Err(error) => match store.get(&order.trade_no).await {
            Ok(Some(found)) if ours(&found) => Ok(Intent::New(found)),
            Ok(Some(found)) => Ok(Intent::Existing(found)),
            Ok(None) => Err(error),
            Err(_) => {
                let _ = store.delete_pending(&order.trade_no, &attempt).await;
                Err(error)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::TradeNo;
    use crate::testkit::{self, InMemoryStore};

    fn order(trade_no: &str) -> Order {
        let now = Utc::now();
        Order::pending(
            TradeNo::parse(trade_no).unwrap(),
            &testkit::payout(trade_no, 1500),
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
}
