//! `POST /batches` and `GET /batches/{batchId}` (docs/contract.md § Batches; the rules of a
//! batch's journey are in [`payout_app::batch`]).

use lambda_http::{Request, RequestExt};
use payout_app::batch::{
    Adopted, BatchId, BatchMessage, BatchRecord, BatchRequest, BatchStore, BatchView,
    MAX_BODY_BYTES,
};
use payout_app::metrics::Metrics;
use payout_app::secrets::SecretStore;
use payout_app::store::{Created, OrderStore};
use payout_domain::{TradeNo, ValidationErrors};
use vexora::PayoutGateway;

use super::{Answer, App};

/// Writes in flight at once while a batch's items are stored.
const STORE_CONCURRENCY: usize = 25;

impl<S, G, K, M, Q> App<S, G, K, M, Q>
where
    S: OrderStore + BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
    Q: payout_app::batch::BatchQueue,
{
    pub(super) async fn submit_batch(&self, body: &[u8]) -> Answer {
        let Some(queue) = &self.queue else {
            return Answer::BatchesOff;
        };
        if body.len() > MAX_BODY_BYTES {
            return Answer::BatchTooLarge;
        }
        let now = (self.clock)();
        let generated = BatchId::generate(now, &mut rand::rng());
        let batch = match BatchRequest::from_json(body, generated) {
            Ok(batch) => batch,
            Err(ValidationErrors(fields)) => return Answer::Invalid(fields),
        };
        let batch_id = batch.batch_id.clone();
        if let Some((trade_no, i)) = batch.repeated_trade_no() {
            return Answer::ItemMismatch(trade_no.clone(), i);
        }
        // A batch stored before: committed with the same items is a replay, other items a
        // mismatch; still open (a request that failed half-way) is completed by this one.
        let open = match self.store.get_batch(&batch_id).await {
            Ok(Some(record)) if record.fingerprint != batch.fingerprint() => {
                return Answer::BatchMismatch(batch_id);
            }
            Ok(Some(record)) if record.committed => return self.replayed(&batch, &record).await,
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                tracing::error!(batch_id = batch_id.as_str(), error = %e, "reading the batch failed");
                return Answer::BatchUnavailable(batch_id);
            }
        };
        // Items that exist already: the same payout still queued (an earlier try of this batch,
        // or a half-stored batch under another batchId) is listed by this batch too and sent once
        // when this batch is accepted; the same payout already sent is never sent again; another
        // payout under an item's tradeNo is refused (docs/contract.md § Half-stored batches).
        let keys: Vec<TradeNo> = batch.items.iter().map(|i| i.trade_no.clone()).collect();
        let existing = match self.store.get_many(&keys).await {
            Ok(existing) => existing,
            Err(e) => {
                tracing::error!(batch_id = batch_id.as_str(), error = %e, "reading the items failed");
                return Answer::BatchUnavailable(batch_id);
            }
        };
        let mut new_items = Vec::with_capacity(batch.items.len());
        let mut unsent = Vec::new();
        let mut queued = Vec::new();
        for (i, item) in batch.items.iter().enumerate() {
            match existing.iter().find(|o| o.trade_no == item.trade_no) {
                Some(order) if order.fingerprint != item.payout.fingerprint() => {
                    return Answer::ItemMismatch(item.trade_no.clone(), i);
                }
                Some(order) if order.queued => unsent.push((i, item)),
                Some(order) if self.in_flight(order, now) => {
                    return Answer::ItemInFlight(item.trade_no.clone(), i);
                }
                Some(_) => {}
                None => new_items.push((i, item)),
            }
        }
        // The balance before anything is stored: a batch that cannot be paid whole is refused whole.
        let total = new_items
            .iter()
            .map(|(_, i)| i.payout.amount.yen())
            .fold(0u64, u64::saturating_add);
        if total > 0 {
            match self
                .balance
                .get(&self.gateway, &self.secrets, &self.metrics, now)
                .await
            {
                Ok(balance) if total > balance.available_amount => {
                    return Answer::InsufficientBalance {
                        total,
                        available: balance.available_amount,
                    };
                }
                Ok(_) => {}
                Err(_) => return Answer::BalanceUnavailable,
            }
        }
        // The record first, open: it claims the batchId (a concurrent other batch under it is
        // refused before any of its items is stored) and nothing of an open batch is ever sent.
        if !open {
            match self.store.put_batch(&batch.record(now)).await {
                Ok(None) => {}
                Ok(Some(other)) if other.fingerprint == batch.fingerprint() => {}
                Ok(Some(_)) => return Answer::BatchMismatch(batch_id),
                Err(e) => {
                    tracing::error!(batch_id = batch_id.as_str(), error = %e, "storing the batch failed");
                    return Answer::BatchUnavailable(batch_id);
                }
            }
        }
        let mut failed = false;
        // Queued items of an earlier try are listed by this batch (a withdrawn one is stored
        // anew).
        for group in unsent.chunks(STORE_CONCURRENCY) {
            let writes = group
                .iter()
                .map(|(_, item)| self.store.adopt_queued(&item.trade_no, &batch_id, now));
            for (&(i, item), result) in group
                .iter()
                .zip(futures_util::future::join_all(writes).await)
            {
                match result {
                    Ok(Adopted::Listed(_)) => queued.push(item.trade_no.clone()),
                    // Sent (or being sent) once already; unless it became another payout.
                    Ok(Adopted::Taken(order)) => {
                        if order.fingerprint != item.payout.fingerprint() {
                            return Answer::ItemMismatch(item.trade_no.clone(), i);
                        }
                        if self.in_flight(&order, now) {
                            return Answer::ItemInFlight(item.trade_no.clone(), i);
                        }
                    }
                    Ok(Adopted::Gone) => new_items.push((i, item)),
                    Err(e) => {
                        tracing::error!(trade_no = item.trade_no.as_str(), error = %e, "listing a queued item failed");
                        failed = true;
                    }
                }
            }
        }
        for group in new_items.chunks(STORE_CONCURRENCY) {
            let orders: Vec<_> = group
                .iter()
                .map(|(_, item)| batch.order(item, now))
                .collect();
            let writes = group
                .iter()
                .zip(&orders)
                .map(|((_, item), order)| self.store.create_queued(order, &item.payload));
            for ((i, item), result) in group
                .iter()
                .zip(futures_util::future::join_all(writes).await)
            {
                match result {
                    Ok(Created::Created) => queued.push(item.trade_no.clone()),
                    // Stored meanwhile: the same payout (a write whose answer was lost, a
                    // concurrent try of this or another batch), listed by this batch too while
                    // it is queued; or another payout, which leaves this batch open (unsent).
                    Ok(Created::AlreadyExists(order)) => {
                        if order.fingerprint != item.payout.fingerprint() {
                            return Answer::ItemMismatch(item.trade_no.clone(), *i);
                        }
                        if self.in_flight(&order, now) {
                            return Answer::ItemInFlight(item.trade_no.clone(), *i);
                        }
                        if order.queued {
                            match self
                                .store
                                .adopt_queued(&item.trade_no, &batch_id, now)
                                .await
                            {
                                Ok(Adopted::Listed(_)) => queued.push(item.trade_no.clone()),
                                Ok(Adopted::Taken(order)) => {
                                    if order.fingerprint != item.payout.fingerprint() {
                                        return Answer::ItemMismatch(item.trade_no.clone(), *i);
                                    }
                                    if self.in_flight(&order, now) {
                                        return Answer::ItemInFlight(item.trade_no.clone(), *i);
                                    }
                                }
                                Ok(Adopted::Gone) | Err(_) => failed = true,
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(trade_no = item.trade_no.as_str(), error = %e, "storing a batch item failed");
                        failed = true;
                    }
                }
            }
        }
        if failed {
            // What was stored stays queued and unsent under the open batch: a retry with the
            // same batchId completes it.
            return Answer::BatchUnavailable(batch_id);
        }
        if let Err(e) = self.store.commit_batch(&batch_id).await {
            tracing::error!(batch_id = batch_id.as_str(), error = %e, "committing the batch failed");
            return Answer::BatchUnavailable(batch_id);
        }
        self.enqueue(queue, &batch_id, &queued).await;
        tracing::info!(
            batch_id = batch_id.as_str(),
            items = batch.items.len(),
            queued = queued.len(),
            "batch accepted"
        );
        Answer::BatchAccepted(batch_id, batch.items.len())
    }

    /// Whether `order` (not queued) is a submit still running, which may yet withdraw it unsent
    /// (`POST /payouts`, or a worker that may put it back in its queue): a batch cannot count it
    /// as sent.
    fn in_flight(
        &self,
        order: &payout_domain::order::Order,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        order.status == payout_domain::order::OrderStatus::Pending
            && !order.queued
            && !order.is_abandoned(now, self.abandoned_after)
    }

    /// Puts items on the queue; what does not get there stays queued in the table and is put
    /// there again by the reconciler.
    async fn enqueue(&self, queue: &Q, batch_id: &BatchId, trade_nos: &[TradeNo]) {
        if trade_nos.is_empty() {
            return;
        }
        let messages: Vec<BatchMessage> = trade_nos
            .iter()
            .map(|t| BatchMessage {
                batch_id: batch_id.as_str().to_owned(),
                trade_no: t.as_str().to_owned(),
            })
            .collect();
        match queue.send(&messages).await {
            Ok(sent) if sent == messages.len() => {}
            Ok(sent) => tracing::warn!(
                batch_id = batch_id.as_str(),
                sent,
                of = messages.len(),
                "some items were not queued; the reconciler queues them again"
            ),
            Err(e) => tracing::warn!(
                batch_id = batch_id.as_str(),
                error = %e,
                "the items were not queued; the reconciler queues them again"
            ),
        }
    }

    /// A `POST /batches` for a stored batch: `200` with it when the items are the same (items
    /// still queued are queued again: a message may have been lost; a worker sends each once),
    /// `422` otherwise. Nothing is stored, nothing is sent twice.
    async fn replayed(&self, batch: &BatchRequest, record: &BatchRecord) -> Answer {
        if record.fingerprint != batch.fingerprint() {
            return Answer::BatchMismatch(record.batch_id.clone());
        }
        let orders = match self.store.get_many(&record.trade_nos).await {
            Ok(orders) => orders,
            Err(e) => {
                tracing::error!(batch_id = record.batch_id.as_str(), error = %e, "reading the items failed");
                return Answer::BatchUnavailable(record.batch_id.clone());
            }
        };
        let still_queued: Vec<TradeNo> = orders
            .iter()
            .filter(|o| o.queued)
            .map(|o| o.trade_no.clone())
            .collect();
        if let Some(queue) = &self.queue {
            self.enqueue(queue, &record.batch_id, &still_queued).await;
        }
        Answer::Batch(Box::new(BatchView::new(record, &orders, 0)))
    }

    pub(super) async fn read_batch(&self, batch_id: &str, request: &Request) -> Answer {
        let start = match parse_batch_query(request) {
            Ok(start) => start,
            Err(message) => return Answer::InvalidQuery(message),
        };
        let Ok(batch_id) = BatchId::parse(batch_id) else {
            return Answer::NotFound(None);
        };
        let record = match self.store.get_batch(&batch_id).await {
            Ok(Some(record)) if record.committed => record,
            // Never accepted (its request failed half-way): nothing of it is sent.
            Ok(_) => return Answer::NotFound(None),
            Err(e) => {
                tracing::error!(batch_id = batch_id.as_str(), error = %e, "reading the batch failed");
                return Answer::BatchUnavailable(batch_id);
            }
        };
        // A `next` past the end is an empty last page.
        match self.store.get_many(&record.trade_nos).await {
            Ok(orders) => Answer::Batch(Box::new(BatchView::new(&record, &orders, start))),
            Err(e) => {
                tracing::error!(batch_id = batch_id.as_str(), error = %e, "reading the items failed");
                Answer::BatchUnavailable(batch_id)
            }
        }
    }
}

/// `next=<index>` (from a page's `next`) is the only query parameter.
fn parse_batch_query(request: &Request) -> Result<usize, String> {
    let mut start = 0;
    for (name, value) in request.query_string_parameters().iter() {
        match name {
            "next" => {
                start = value
                    .parse::<usize>()
                    .ok()
                    .filter(|_| value.len() <= 4 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or("`next` must be a value from a page's `next`")?;
            }
            other => {
                return Err(format!(
                    "unknown query parameter `{}`",
                    other.chars().take(64).collect::<String>()
                ));
            }
        }
    }
    Ok(start)
}
