//! Asking Vexora about an order through its query API: the one rule the reconciler and
//! `GET /payouts/{tradeNo}?refresh=true` share. The answer is applied like any other report
//! ([`crate::apply`]); a query that tells nothing resolves nothing; an order is never failed
//! because Vexora could not find it, and never re-submitted.

use chrono::{DateTime, Utc};

use crate::apply::{Applied, Applier, Report};
use crate::metrics::Metrics;
use crate::secrets::{SecretStore, Secrets};
use crate::store::{OrderStore, StoreError};
use payout_domain::order::Order;
use vexora::credentials::SecretError;
use vexora::{Operation, PayoutGateway, QueryRequest};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Queries Vexora about `order` and applies the answer.
pub async fn query_and_apply<S, M, G, K>(
    applier: &Applier<'_, S, M>,
    gateway: &G,
    secrets: &Secrets<K>,
    order: &Order,
    now: DateTime<Utc>,
) -> Result<Applied, QueryError>
where
    S: OrderStore,
    M: Metrics,
    G: PayoutGateway,
    K: SecretStore,
{
    let version = secrets.current().await?;
    let credentials = &version.credentials;
    let body = QueryRequest::signed(
        &order.trade_no,
        now.timestamp_millis(),
        &credentials.app_secret,
    );
    let exchange = gateway.query(credentials, &body).await;
    let report = Report::from_exchange(Operation::Query, &order.trade_no, &exchange);
    Ok(applier.apply(&order.trade_no, &report, now).await?)
}
