//! Batch payouts (docs/contract.md § Batches): a request of 1–1000 payouts, each an ordinary
//! payout sent exactly once.
//!
//! The way an item travels: `POST /batches` validates every item, checks the total against the
//! balance, stores each item as a `PENDING` order that is *queued* (its request kept in the item
//! until its first move, never abandoned while queued) under the batch's record, stored first
//! as open and committed once every item is stored; then it puts `{batchId, tradeNo}` on the
//! queue (no personal data in messages). Only a committed batch's items are ever queued. A
//! worker (`submit-batch-items`) *claims* an item in one conditional write (queued → taken by
//! this attempt, its request returned) and sends it through the same submit path as
//! `POST /payouts`. A second claim finds nothing queued, so a redelivered, duplicated or replayed
//! message never sends again. Only a call that certainly never reached Vexora puts the item back
//! in the queue. The reconciler puts a queued item whose message was lost back on the queue.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use payout_domain::json::{ObjectError, RawObject};
use payout_domain::order::{Order, OrderStatus};
use payout_domain::{FieldError, PayoutRequest, TradeNo, ValidationErrors};

mod queue;
mod store;

pub use queue::{BatchMessage, BatchQueue, QueueError};
pub use store::{Adopted, BatchStore};

/// Items per batch.
pub const MAX_ITEMS: usize = 1000;
/// A batch body: 1000 payouts are well under this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Items per page of `GET /batches/{batchId}`.
pub const PAGE_SIZE: usize = 100;
/// One item's most bytes as sent: `POST /payouts`' body limit; far below a table item's 400 KB.
pub const MAX_ITEM_BYTES: usize = 16 * 1024;
/// How long a queued item waits for its message before the reconciler puts it on the queue
/// again (a message lost between the store and the queue, or gone to the dead-letter queue).
pub const REQUEUE_AFTER: chrono::Duration = chrono::Duration::minutes(10);
/// The key prefix of a batch's own record in the payouts table (`#` is never in a `tradeNo`).
pub const RECORD_PREFIX: &str = "batch#";
/// How long a half-stored item (queued, listed by no accepted batch) is kept after a batch last
/// listed it, waiting for a retry of the batch; then the reconciler withdraws it
/// (docs/contract.md § Half-stored batches: within 24 h).
pub const HALF_STORED_KEPT: chrono::Duration = chrono::Duration::hours(23);
/// Longer than any batch request runs (API Gateway's integration timeout is 30 s): an item no
/// batch listed for this long is not being stored by a request that may still accept it.
pub const HALF_STORED_SETTLED: chrono::Duration = chrono::Duration::minutes(2);

/// `[A-Za-z0-9_]{1,27}`: with `-i` (i < 1000) it stays a valid 32-character `tradeNo`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(String);

impl BatchId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() || s.len() > 27 {
            return Err("must be 1 to 27 characters");
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("may contain only letters A-Z a-z, digits and '_'");
        }
        Ok(Self(s.to_owned()))
    }

    /// `B` + `yyyyMMddHHmmss` (Tokyo) + 6 random digits: 21 characters.
    pub fn generate(now: DateTime<Utc>, rng: &mut impl rand::Rng) -> Self {
        Self(format!("B{}", TradeNo::generate(now, rng).as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of the batch's record in the payouts table.
    pub fn record_key(&self) -> String {
        format!("{RECORD_PREFIX}{}", self.0)
    }
}

/// One validated item: its payout, its `tradeNo` (its own or `batchId-i`), and the request's
/// text as received (kept in the queued order until its first move).
pub struct BatchItem {
    pub trade_no: TradeNo,
    pub payout: PayoutRequest,
    /// Personal data: never in a log line (left out of `Debug`).
    pub payload: String,
}

impl std::fmt::Debug for BatchItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchItem")
            .field("trade_no", &self.trade_no)
            .finish_non_exhaustive()
    }
}

/// A validated `POST /batches` body.
#[derive(Debug)]
pub struct BatchRequest {
    pub batch_id: BatchId,
    /// Whether the merchant named the batch (a generated id cannot be replayed).
    pub named: bool,
    pub items: Vec<BatchItem>,
}

impl BatchRequest {
    /// Validates the body and every item; every violation is reported, items' as
    /// `items[i].field`. `generated` names the batch when the body does not.
    pub fn from_json(body: &[u8], generated: BatchId) -> Result<Self, ValidationErrors> {
        let object = RawObject::parse(body).map_err(|e| {
            ValidationErrors(vec![match e {
                ObjectError::NotAnObject => FieldError::new("body", "must be a JSON object"),
                ObjectError::Duplicate(name) => {
                    FieldError::new(&name, "appears more than once; give each field once")
                }
            }])
        })?;
        let mut errors = Vec::new();
        for (name, _) in object.iter() {
            if name != "batchId" && name != "items" {
                errors.push(FieldError::new(name, "is not a known field"));
            }
        }
        let (batch_id, named) = match object.get("batchId") {
            None => (Some(generated), false),
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(text) => match BatchId::parse(&text) {
                    Ok(id) => (Some(id), true),
                    Err(problem) => {
                        errors.push(FieldError::new("batchId", problem));
                        (None, true)
                    }
                },
                Err(_) => {
                    errors.push(FieldError::new("batchId", "must be a string"));
                    (None, true)
                }
            },
        };
        let raw_items: Vec<&RawValue> = match object.get("items") {
            None => {
                errors.push(FieldError::new("items", "is required"));
                Vec::new()
            }
            Some(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                Ok(items) if items.is_empty() => {
                    errors.push(FieldError::new("items", "must hold at least one payout"));
                    items
                }
                Ok(items) if items.len() > MAX_ITEMS => {
                    errors.push(FieldError::new(
                        "items",
                        format!("must hold at most {MAX_ITEMS} payouts"),
                    ));
                    Vec::new()
                }
                Ok(items) => items,
                Err(_) => {
                    errors.push(FieldError::new("items", "must be an array of payouts"));
                    Vec::new()
                }
            },
        };
        let mut items = Vec::with_capacity(raw_items.len());
        for (i, raw) in raw_items.iter().enumerate() {
            // Each item is kept as sent until it is taken: one must fit in a table item (and is
            // held to `POST /payouts`' own limit), whatever padding the body carries.
            if raw.get().len() > MAX_ITEM_BYTES {
                errors.push(FieldError::new(
                    &format!("items[{i}]"),
                    format!(
                        "is {} bytes; a payout must be at most {MAX_ITEM_BYTES} bytes (as for POST /payouts)",
                        raw.get().len()
                    ),
                ));
                continue;
            }
            match PayoutRequest::from_json(raw.get().as_bytes()) {
                Ok(payout) => {
                    let Some(batch_id) = &batch_id else { continue };
                    let trade_no = match &payout.trade_no {
                        Some(own) => own.clone(),
                        // `batchId` (≤ 27) + `-` + index (≤ 3 digits): always a valid tradeNo.
                        None => match TradeNo::parse(&format!("{}-{i}", batch_id.as_str())) {
                            Ok(t) => t,
                            Err(_) => continue,
                        },
                    };
                    items.push(BatchItem {
                        trade_no,
                        payout,
                        payload: raw.get().to_owned(),
                    });
                }
                Err(ValidationErrors(fields)) => {
                    errors.extend(fields.into_iter().map(|f| FieldError {
                        field: format!("items[{i}].{}", f.field),
                        message: f.message,
                    }));
                }
            }
        }
        match batch_id {
            Some(batch_id) if errors.is_empty() => Ok(Self {
                batch_id,
                named,
                items,
            }),
            _ => Err(ValidationErrors(errors)),
        }
    }

    /// The first item whose `tradeNo` an earlier item already has, and its index: one
    /// `tradeNo` is one payout, so a batch naming it twice reuses an idempotency key (`422`).
    pub fn repeated_trade_no(&self) -> Option<(&TradeNo, usize)> {
        let mut seen = std::collections::HashSet::new();
        self.items
            .iter()
            .enumerate()
            .find(|(_, item)| !seen.insert(item.trade_no.as_str()))
            .map(|(i, item)| (&item.trade_no, i))
    }

    /// The sum of the items' amounts in yen.
    pub fn total(&self) -> u64 {
        self.items
            .iter()
            .map(|i| i.payout.amount.yen())
            .fold(0u64, u64::saturating_add)
    }

    /// Tells a replay of this batch from another batch under the same id: the items, in order,
    /// by `tradeNo` and payout fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for item in &self.items {
            hash.update(item.trade_no.as_str().as_bytes());
            hash.update(b"\0");
            hash.update(item.payout.fingerprint().as_bytes());
            hash.update(b"\n");
        }
        hex::encode(hash.finalize())
    }

    /// The batch's record, as stored after its items.
    pub fn record(&self, now: DateTime<Utc>) -> BatchRecord {
        BatchRecord {
            batch_id: self.batch_id.clone(),
            fingerprint: self.fingerprint(),
            trade_nos: self.items.iter().map(|i| i.trade_no.clone()).collect(),
            created_at: now,
            committed: false,
        }
    }

    /// The queued order of item `i`, stored before anything is queued.
    pub fn order(&self, item: &BatchItem, now: DateTime<Utc>) -> Order {
        let mut order = Order::pending(
            item.trade_no.clone(),
            &item.payout,
            now,
            now + REQUEUE_AFTER,
        );
        order.batch_id = Some(self.batch_id.as_str().to_owned());
        order.batch_ids = vec![self.batch_id.as_str().to_owned()];
        order.queued = true;
        order
    }
}

/// A batch's own record: which orders it is, and what it was.
/// Whether a queued item is listed by an accepted (committed) batch: then it is sent once; if
/// not, it is half-stored (docs/contract.md § Half-stored batches). The one rule for the
/// reconciler and `POST /payouts`.
pub async fn listed_by_an_accepted_batch<S: BatchStore>(
    store: &S,
    order: &Order,
) -> Result<bool, crate::store::StoreError> {
    for id in order.listed_by() {
        let Ok(batch_id) = BatchId::parse(id) else {
            continue;
        };
        if store
            .get_batch(&batch_id)
            .await?
            .is_some_and(|record| record.committed)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub batch_id: BatchId,
    pub fingerprint: String,
    pub trade_nos: Vec<TradeNo>,
    pub created_at: DateTime<Utc>,
    /// Stored first as open (it claims the batchId), committed once every item is stored.
    /// Only a committed batch's items are queued: an open one's never leave (the request that
    /// stored them failed; a retry with the same batchId completes it).
    pub committed: bool,
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Every item is still queued.
    Accepted,
    /// Some items are queued or being sent.
    Submitting,
    /// Every item has been sent (its answer may still be unconfirmed or processing).
    Done,
}

/// One item as `GET /batches/{batchId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemView {
    pub trade_no: String,
    pub status: OrderStatus,
}

/// `GET /batches/{batchId}` (and the `200` of a replayed `POST /batches`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchView {
    pub batch_id: String,
    pub status: BatchStatus,
    /// Items by status, over the whole batch.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// One page of items, in the batch's order.
    pub items: Vec<ItemView>,
    /// The `next` query value of the following page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl BatchView {
    /// The view of `record` given its orders (any order; missing ones count as queued: their
    /// store or read may still be under way), the page starting at item `start`.
    pub fn new(record: &BatchRecord, orders: &[Order], start: usize) -> Self {
        let by_key: std::collections::HashMap<&str, &Order> =
            orders.iter().map(|o| (o.trade_no.as_str(), o)).collect();
        let mut counts = std::collections::BTreeMap::new();
        let (mut queued, mut pending) = (0, 0);
        let items: Vec<ItemView> = record
            .trade_nos
            .iter()
            .map(|t| {
                let order = by_key.get(t.as_str());
                let status = order.map_or(OrderStatus::Pending, |o| o.status);
                if order.is_none_or(|o| o.queued) {
                    queued += 1;
                }
                if status == OrderStatus::Pending {
                    pending += 1;
                }
                *counts.entry(status.as_str()).or_insert(0) += 1;
                ItemView {
                    trade_no: t.as_str().to_owned(),
                    status,
                }
            })
            .collect();
        let status = if queued == items.len() {
            BatchStatus::Accepted
        } else if pending > 0 {
            BatchStatus::Submitting
        } else {
            BatchStatus::Done
        };
        let end = (start + PAGE_SIZE).min(items.len());
        let next = (end < items.len()).then(|| end.to_string());
        Self {
            batch_id: record.batch_id.as_str().to_owned(),
            status,
            counts,
            items: items
                .get(start.min(items.len())..end)
                .map(<[ItemView]>::to_vec)
                .unwrap_or_default(),
            next,
        }
    }
}

#[cfg(test)]
mod tests;
