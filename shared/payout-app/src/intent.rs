//! Storing a payout intent exactly once: the conditional put of a `PENDING` order, which
//! recognizes its own write when DynamoDB applied it but the answer was lost (the SDK's retry
//! then fails its condition on our own item, or every attempt reports an error).

use crate::apply::write_id;
use crate::store::{Created, OrderStore, StoreError};
use payout_domain::order::Order;

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
