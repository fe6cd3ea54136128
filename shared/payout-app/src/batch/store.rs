//! The batch operations of the payouts table (the DynamoDB adapter is in `store::dynamo`, the
//! in-memory one in the testkit).

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{BatchId, BatchRecord};
use crate::store::{Created, StoreError};
use payout_domain::TradeNo;
use payout_domain::order::Order;

/// What [`BatchStore::adopt_queued`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// Still queued, now listed by the batch too; the order as stored.
    Listed(Box<Order>),
    /// Taken by a worker or a submit already: it is being (or was) sent once. The order as it
    /// stands (it may be another payout under the same `tradeNo` by now).
    Taken(Box<Order>),
    /// No such item (withdrawn meanwhile): store it anew.
    Gone,
}

pub trait BatchStore: Send + Sync {
    /// A later batch lists a payout still queued (never sent): the item is listed by that batch
    /// too (`batchIds`) and its `updatedAt` becomes `now`, in one conditional write while it is
    /// still queued. Whichever batch is accepted sends it
    /// (docs/contract.md § Half-stored batches).
    fn adopt_queued(
        &self,
        trade_no: &TradeNo,
        batch_id: &BatchId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Adopted, StoreError>> + Send;

    /// Removes a queued item, personal data and all, if it is still queued and no batch listed
    /// it since `listed_at` (its `updatedAt` as read): a half-stored batch's item that no
    /// accepted batch ever listed. `false` when it was not removed.
    fn withdraw_queued(
        &self,
        trade_no: &TradeNo,
        listed_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a queued item (its order and the request to send) unless its `tradeNo` exists.
    fn create_queued(
        &self,
        order: &Order,
        payload: &str,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Takes a queued item for sending, in one conditional write: only a `PENDING` order that
    /// is still queued (its request here, no `intentId`). Returns the order as taken
    /// (`intentId` = `attempt`, `sentAt` = `now`) and its request. The same `attempt` again
    /// (a retried write whose answer was lost) finds its own claim and gets it back. `None`
    /// when it is not queued (another attempt took it, or it is gone): it must not be sent.
    /// The request leaves the table with the order's first move.
    fn claim_queued(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        now: DateTime<Utc>,
        check_after: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(Order, String)>, StoreError>> + Send;

    /// Puts an item taken by `attempt` back in the queue (its call certainly never reached
    /// Vexora). `false` when it is no longer that attempt's `PENDING` item.
    fn requeue(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        check_after: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a batch's record unless one exists; the existing one otherwise.
    fn put_batch(
        &self,
        record: &BatchRecord,
    ) -> impl Future<Output = Result<Option<BatchRecord>, StoreError>> + Send;

    /// Marks a stored batch committed (every item stored): from now on its items are queued.
    fn commit_batch(
        &self,
        batch_id: &BatchId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_batch(
        &self,
        batch_id: &BatchId,
    ) -> impl Future<Output = Result<Option<BatchRecord>, StoreError>> + Send;

    /// The orders that exist among `trade_nos` (any order).
    fn get_many(
        &self,
        trade_nos: &[TradeNo],
    ) -> impl Future<Output = Result<Vec<Order>, StoreError>> + Send;
}
