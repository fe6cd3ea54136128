//! Wiring only: logs, configuration and the EventBridge client once, then one batch of stream
//! records per invocation, within the invocation's deadline.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use payout_app::metrics::EmfMetrics;
use payout_aws::config::EventsConfig;
use payout_aws::events::EventBridgeSink;
use payout_aws::time_budget;
use publish_payout_events::handler::Publisher;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    payout_aws::telemetry::init();
    let config =
        EventsConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let sdk = payout_aws::sdk::load().await;
    let publisher = Publisher::new(
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus),
        EmfMetrics {
            environment: config.environment,
            function: "publish-payout-events",
        },
    );
    let publisher = &publisher;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = time_budget::deadline_of(event.context.deadline, chrono::Utc::now());
            let answer = publisher.handle(&event.payload, deadline).await?;
            Ok::<_, Error>(serde_json::to_value(answer)?)
        },
    ))
    .await
}
