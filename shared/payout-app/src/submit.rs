//! The submit path's shared steps, for `POST /payouts` and for batch items alike: sign the
//! stored order's payout and send it once, and read Vexora's answer as a report about that
//! very intent (so it never lands on a later intent for the same `tradeNo`).

use std::future::Future;

use chrono::{DateTime, Utc};
use url::Url;

use crate::apply::{Applied, Applier, Report};
use crate::metrics::{self, Metrics};
use crate::store::{OrderStore, StoreError};
use payout_domain::order::{Order, OrderStatus};
use payout_domain::{PayoutRequest, TradeNo};
use vexora::credentials::VexoraCredentials;
use vexora::{DisbursementRequest, Exchange, Operation, Outcome, PayoutGateway};

/// Signs `payout` as `order`'s submit (timestamped when its submit started) and sends it.
pub async fn send<G: PayoutGateway>(
    gateway: &G,
    credentials: &VexoraCredentials,
    payout: &PayoutRequest,
    order: &Order,
    notify_url: &Url,
) -> Exchange {
    let body = DisbursementRequest::signed(
        payout,
        &order.trade_no,
        notify_url,
        order.submit_started().timestamp_millis(),
        &credentials.app_secret,
    );
    gateway.submit(credentials, &body).await
}

/// Vexora's answer to `order`'s submit, as a report recorded on that intent only.
pub fn report(order: &Order, exchange: &Exchange) -> Report {
    let mut report = Report::from_exchange(Operation::Submit, &order.trade_no, exchange);
    report.intent.clone_from(&order.intent_id);
    report
}

/// What became of a sent submit's answer ([`record`]). Short-lived (returned, matched,
/// dropped), so the size of the applied variant does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Recorded {
    /// Certainly never received by Vexora, and undone (the intent withdrawn, or the batch item
    /// queued again): nothing was sent and nothing else is kept.
    Undone,
    /// The answer applied to the order (which a webhook may have reached first).
    Applied(Applied),
    /// The answer could not be stored. If it was sent, never again: the reconciler resolves it
    /// once it counts as abandoned.
    Failed(StoreError),
}

/// The steps after sending a submit, for `POST /payouts` and batch items alike: a submit
/// Vexora certainly never received is undone first (`undo`: withdraw the intent, or queue the
/// item again; `Ok(true)` when it was); anything else, or an undo that did not happen, goes
/// through the one rule ([`Applier::apply`]) at `clock()` (read after the undo). Counts once:
/// Vexora unavailable for an undone submit (the applier counts every other answer); a payout
/// submitted, and unconfirmed when its order is not final or its answer could not be stored —
/// except a submit Vexora never received whose order is gone or could not be written: no
/// payout was sent or kept, and the UNCONFIRMED rate counts payouts.
pub async fn record<S, M, F, Fut>(
    applier: &Applier<'_, S, M>,
    trade_no: &TradeNo,
    report: &Report,
    clock: impl Fn() -> DateTime<Utc>,
    undo: F,
) -> Recorded
where
    S: OrderStore,
    M: Metrics,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, StoreError>>,
{
    let not_received = matches!(report.outcome, Outcome::NotReceived(_));
    if not_received {
        match undo().await {
            Ok(true) => {
                applier.metrics.count(metrics::VEXORA_UNAVAILABLE, 1);
                tracing::warn!(trade_no = trade_no.as_str(), "Vexora unreachable; undone");
                return Recorded::Undone;
            }
            Ok(false) | Err(_) => {
                tracing::warn!(
                    trade_no = trade_no.as_str(),
                    "Vexora unreachable; undoing the submit may have failed"
                );
            }
        }
    }
    let recorded = match applier.apply(trade_no, report, clock()).await {
        Ok(applied) => Recorded::Applied(applied),
        Err(e) => {
            let what = if not_received {
                "recording a submit Vexora never received failed"
            } else {
                "recording Vexora's answer failed"
            };
            tracing::error!(trade_no = trade_no.as_str(), error = %e, "{what}");
            Recorded::Failed(e)
        }
    };
    // A payout to count, and whether it is unconfirmed; none for a submit Vexora never received
    // whose order is gone or could not be written (nothing was sent or kept).
    let payout =
        match &recorded {
            Recorded::Applied(Applied::NotFound) | Recorded::Failed(_) if not_received => None,
            Recorded::Applied(applied) => Some(applied.order().is_none_or(|o| {
                matches!(o.status, OrderStatus::Pending | OrderStatus::Unconfirmed)
            })),
            Recorded::Failed(_) => Some(true),
            Recorded::Undone => None,
        };
    if let Some(unconfirmed) = payout {
        applier.metrics.count(metrics::PAYOUT_SUBMITTED, 1);
        if unconfirmed {
            applier.metrics.count(metrics::PAYOUT_UNCONFIRMED, 1);
        }
    }
    recorded
}
