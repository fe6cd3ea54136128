//! Wiring only: logs, init once, then serve requests with the clients lent to the handler.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use payout_app::apply::Schedule;
use payout_aws::bootstrap::Runtime;
use payout_domain::order::pending_abandoned_after;
use submit_payout::handler::{App, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (runtime, vexora) = Runtime::start_with_vexora().await?;
    let queue = runtime.batch_queue();
    let app = App {
        metrics: runtime.metrics("submit-payout"),
        abandoned_after: pending_abandoned_after(vexora.endpoint.timeout),
        schedule: Schedule::from(&runtime.config),
        notify_url: vexora.endpoint.notify_url,
        store: runtime.store,
        gateway: vexora.client,
        secrets: runtime.secrets,
        clock: chrono::Utc::now,
        balance: payout_app::balance::BalanceCache::default(),
        queue,
    };
    let app = &app;
    run(service_fn(move |request| async move {
        Ok::<_, Infallible>(handle(app, request).await)
    }))
    .await
}
