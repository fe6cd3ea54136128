//! The submit path's shared steps, for `POST /payouts` and for batch items alike: sign the
//! stored order's payout and send it once, and read Vexora's answer as a report about that
//! very intent (so it never lands on a later intent for the same `tradeNo`).

use url::Url;

use crate::apply::Report;
use crate::domain::PayoutRequest;
use crate::order::Order;
use crate::secrets::VexoraCredentials;
use crate::vexora::{DisbursementRequest, Exchange, Operation, PayoutGateway};

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
