//! One SQS batch of queued batch items (`{batchId, tradeNo}`): each is claimed in one
//! conditional write, then sent through the same submit path as `POST /payouts`
//! ([`payout_app::submit`]) and its answer recorded by the one applier. A second delivery of a
//! message, a duplicate message or a replayed batch finds the item taken and sends nothing: one
//! Vexora call per item, ever. Only a call that certainly never reached Vexora (no connection)
//! puts the item back in the queue and hands its message back (`batchItemFailures`), as does an
//! item the worker had no time or no storage to start.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use payout_app::apply::{Applier, Schedule};
use payout_app::batch::{BatchMessage, BatchStore};
use payout_app::metrics::Metrics;
use payout_app::secrets::{SecretStore, Secrets};
use payout_app::store::OrderStore;
use payout_domain::{PayoutRequest, TradeNo};
use url::Url;
use vexora::PayoutGateway;

use payout_aws::item_failures::queue_answer;
pub use payout_aws::item_failures::{SqsBatchResponse, SqsEvent};

/// The worker's dependencies, built once at init.
#[derive(Debug)]
pub struct Worker<S, G, K, M> {
    pub store: S,
    pub gateway: G,
    pub secrets: Secrets<K>,
    pub metrics: M,
    pub notify_url: Url,
    /// After this long a taken item whose answer was never recorded counts as abandoned.
    pub abandoned_after: chrono::Duration,
    pub schedule: Schedule,
    /// One item's worst case ([`payout_aws::time_budget::batch_item_worst_case`]): no item starts
    /// with less time left.
    pub worst_item: Duration,
    pub clock: fn() -> DateTime<Utc>,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// Sent and its answer recorded (or the recording left to the reconciler).
    Sent,
    /// Not queued (taken before, or gone), or a message that names no item: nothing to send.
    Nothing,
    /// Hand the message back: the item is (still, or again) queued.
    Again,
}

impl<S, G, K, M> Worker<S, G, K, M>
where
    S: OrderStore + BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
{
    pub async fn handle(&self, event: &SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let mut again = Vec::new();
        for record in &event.records {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = if left < self.worst_item + payout_aws::time_budget::MARGIN {
                // Not started: its message comes again.
                Done::Again
            } else {
                self.item(record.body.as_deref().unwrap_or_default()).await
            };
            if done == Done::Again {
                again.push(record.message_id.clone().unwrap_or_default());
            }
        }
        queue_answer(again)
    }

    async fn item(&self, body: &str) -> Done {
        let Ok(message) = serde_json::from_str::<BatchMessage>(body) else {
            tracing::error!("a message that names no batch item; dropped");
            return Done::Nothing;
        };
        let Ok(trade_no) = TradeNo::parse(&message.trade_no) else {
            tracing::error!(
                batch_id = message.batch_id,
                "a message with an invalid tradeNo; dropped"
            );
            return Done::Nothing;
        };
        let done = self.send(&trade_no).await;
        tracing::info!(
            batch_id = message.batch_id,
            trade_no = trade_no.as_str(),
            done = ?done,
            "batch item"
        );
        done
    }

    async fn send(&self, trade_no: &TradeNo) -> Done {
        let now = (self.clock)();
        let attempt = payout_app::apply::write_id();
        // The secret first: failing here leaves the item queued.
        let version = match self.secrets.current().await {
            Ok(version) => version,
            Err(e) => {
                tracing::error!(error = %e, "the Vexora secret could not be read");
                return Done::Again;
            }
        };
        let credentials = &version.credentials;
        let claimed = {
            let claim = || {
                self.store
                    .claim_queued(trade_no, &attempt, now, now + self.abandoned_after)
            };
            // A claim whose answer was lost is asked again by the same attempt, which finds it.
            match claim().await {
                Err(_) => claim().await,
                ok => ok,
            }
        };
        let (order, payload) = match claimed {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return Done::Nothing,
            Err(e) => {
                // Unknown whether it was taken: a later delivery finds it queued (and sends it)
                // or taken (and leaves it to the reconciler). Never sent twice.
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "claiming the item failed");
                return Done::Again;
            }
        };
        let Ok(payout) = PayoutRequest::from_json(payload.as_bytes()) else {
            // Validated when the batch was stored; unreadable now is a bug. Never sent: it is
            // abandoned, stored UNCONFIRMED and flagged for review by the reconciler.
            tracing::error!(
                trade_no = trade_no.as_str(),
                "a stored batch item no longer reads"
            );
            return Done::Nothing;
        };
        let exchange = payout_app::submit::send(
            &self.gateway,
            credentials,
            &payout,
            &order,
            &self.notify_url,
        )
        .await;
        let report = payout_app::submit::report(&order, &exchange);
        let applier = Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: self.schedule,
        };
        // Certainly never received: back in the queue, its message handed back.
        let requeue = || {
            self.store.requeue(
                trade_no,
                &attempt,
                (self.clock)() + payout_app::batch::REQUEUE_AFTER,
            )
        };
        match payout_app::submit::record(&applier, trade_no, &report, self.clock, requeue).await {
            payout_app::submit::Recorded::Undone => Done::Again,
            // Sent (or never received, and not undone): never again. An answer not stored is
            // resolved by the reconciler once the order counts as abandoned.
            payout_app::submit::Recorded::Applied(_) | payout_app::submit::Recorded::Failed(_) => {
                Done::Sent
            }
        }
    }
}

#[cfg(test)]
mod tests;
