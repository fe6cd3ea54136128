//! Wiring only: logs, init once (including both secret versions), then serve deliveries.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use payout_app::apply::Schedule;
use payout_app::secrets::{Keyring, MIN_REFRESH_INTERVAL};
use payout_aws::bootstrap::Runtime;
use payout_webhook::handler::{App, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let runtime = Runtime::start().await?;
    let config = &runtime.config;
    let app = App {
        metrics: runtime.metrics("payout-webhook"),
        schedule: Schedule::from(config),
        keyring: Keyring::new(
            runtime.secrets,
            config.previous_secret_grace,
            MIN_REFRESH_INTERVAL,
        ),
        store: runtime.store,
        clock: chrono::Utc::now,
    };
    let app = &app;
    run(service_fn(move |request| async move {
        Ok::<_, Infallible>(handle(app, request).await)
    }))
    .await
}
