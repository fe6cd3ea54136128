//! Wiring only: logs, init once (including both secret versions), then serve deliveries.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use payout_core::bootstrap::Runtime;
use payout_core::metrics::EmfMetrics;
use payout_core::secrets::{Keyring, MIN_REFRESH_INTERVAL};
use payout_webhook::handler::{App, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    payout_core::telemetry::init();
    let runtime = Runtime::init()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let processing_age = runtime.config.reconcile_processing_age;
    let keyring = Keyring::load(runtime.secrets, MIN_REFRESH_INTERVAL)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let app = App {
        store: runtime.store,
        keyring,
        metrics: EmfMetrics {
            function: "payout-webhook",
        },
        processing_age,
        clock: chrono::Utc::now,
    };
    let app = &app;
    run(service_fn(move |request| async move {
        Ok::<_, Infallible>(handle(app, request).await)
    }))
    .await
}
