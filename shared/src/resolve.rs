//! Resolving an order through Vexora's query API: the one rule the reconciler and
//! `GET /payouts/{tradeNo}?refresh=true` share. A query that tells nothing resolves nothing;
//! an order is never failed because Vexora could not find it, and never re-submitted.

use chrono::{DateTime, Utc};

use crate::domain::{Amount, whole_yen};
use crate::order::{Anomaly, Decision, HistoryEntry, Order, OrderStatus, decide};
use crate::secrets::{SecretError, SecretSource, Stage};
use crate::store::{OrderStore, StoreError, Transition, Transitioned};
use crate::vexora::{Exchange, Operation, Outcome, PayoutGateway, QueryRequest, outcome};

/// What one query did to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The answer moved the order; here it is as stored now.
    Moved(Order),
    /// The answer was definite but changed nothing (still processing, or already known).
    Unchanged(Order),
    /// The answer contradicted the order (final state or amount); kept as an anomaly.
    Anomaly(Order),
    /// The query told nothing (timeout, `code 8000`, `5000`, HTML, ...): nothing changed.
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// How long a `PROCESSING` order waits before the reconciler asks about it.
pub const DEFAULT_PROCESSING_AGE: chrono::Duration = chrono::Duration::minutes(15);
/// Past this age an unresolved order is marked for manual review.
pub const DEFAULT_GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(72);

/// The wait before the next check after `attempts` checks: 1 min, 5 min ×5, 30 min ×2, then
/// hourly.
pub fn backoff(attempts: u32) -> chrono::Duration {
    match attempts {
        0 => chrono::Duration::minutes(1),
        1..=5 => chrono::Duration::minutes(5),
        6..=7 => chrono::Duration::minutes(30),
        _ => chrono::Duration::hours(1),
    }
}

/// Queries Vexora about `order` and applies a definite answer with the same guarded transition
/// as the webhook.
pub async fn query_and_apply<S, G, K>(
    store: &S,
    gateway: &G,
    secrets: &K,
    order: &Order,
    now: DateTime<Utc>,
    processing_age: chrono::Duration,
) -> Result<Resolved, ResolveError>
where
    S: OrderStore,
    G: PayoutGateway,
    K: SecretSource,
{
    let credentials = secrets.credentials(Stage::Current).await?;
    let body = QueryRequest::signed(
        &order.trade_no,
        now.timestamp_millis(),
        &credentials.app_secret,
    );
    let exchange = gateway.query(&credentials, &body).await;
    let result = outcome(Operation::Query, &order.trade_no, &exchange);
    let reported = match result {
        Outcome::Accepted | Outcome::Succeeded | Outcome::Failed => result.reported(),
        Outcome::Unconfirmed(_) | Outcome::NotReceived(_) => return Ok(Resolved::Unknown),
    };
    let answer = exchange.answer();
    let amount_text = match &exchange {
        Exchange::Answered {
            envelope: Some(envelope),
            ..
        } => envelope.data.as_ref().and_then(|d| d.amount.clone()),
        _ => None,
    };
    let entry = HistoryEntry {
        at: now,
        source: "query".into(),
        status: answer
            .as_ref()
            .and_then(|a| a.status.clone())
            .unwrap_or_default(),
        plat_form_trade_no: answer.as_ref().and_then(|a| a.plat_form_trade_no.clone()),
        amount: amount_text.clone(),
    };
    let amount = amount_text.as_deref().map(whole_yen);
    if let Some(reported_amount) = amount
        && reported_amount.and_then(|y| Amount::new(y).ok()) != Some(order.amount)
    {
        return flag(store, order, &entry, "amount_mismatch", now).await;
    }
    let to = reported.target();
    let transition = Transition {
        answer,
        history: Some(entry.clone()),
        expected_amount: Some(order.amount),
        check_after: (to == OrderStatus::Processing).then_some(now + processing_age),
        ..Transition::to(to, now)
    };
    match store.transition(&order.trade_no, &transition).await? {
        Transitioned::Applied(moved) => Ok(Resolved::Moved(moved)),
        Transitioned::NotFound => Ok(Resolved::Unknown),
        Transitioned::Rejected(current) => match decide(current.status, reported) {
            Decision::Anomaly => {
                flag(store, &current, &entry, "contradicts_final_state", now).await
            }
            Decision::Duplicate | Decision::Stale | Decision::Move(_) => {
                Ok(Resolved::Unchanged(current))
            }
        },
    }
}

async fn flag<S: OrderStore>(
    store: &S,
    order: &Order,
    entry: &HistoryEntry,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Resolved, ResolveError> {
    let mut report = std::collections::BTreeMap::new();
    report.insert("tradeNo".to_owned(), order.trade_no.as_str().to_owned());
    report.insert("status".to_owned(), entry.status.clone());
    if let Some(p) = &entry.plat_form_trade_no {
        report.insert("platFormTradeNo".to_owned(), p.clone());
    }
    if let Some(a) = &entry.amount {
        report.insert("amount".to_owned(), a.clone());
    }
    store.append_history(&order.trade_no, entry).await?;
    store
        .record_anomaly(
            &order.trade_no,
            &Anomaly {
                at: now,
                source: "query".into(),
                reason: reason.into(),
                report,
            },
        )
        .await?;
    Ok(Resolved::Anomaly(order.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_1_then_5x5_then_30x2_then_hourly() {
        let minutes: Vec<i64> = (0..11).map(|a| backoff(a).num_minutes()).collect();
        assert_eq!(minutes, [1, 5, 5, 5, 5, 5, 30, 30, 60, 60, 60]);
    }
}
