//! Wiring only: logs, init once, then one SQS batch of items per invocation, within its deadline.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use payout_app::apply::Schedule;
use payout_aws::bootstrap::Runtime;
use payout_aws::time_budget;
use payout_domain::order::pending_abandoned_after;
use submit_batch_items::handler::{SqsEvent, Worker};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (runtime, vexora) = Runtime::start_with_vexora().await?;
    let worker = Worker {
        metrics: runtime.metrics("submit-batch-items"),
        abandoned_after: pending_abandoned_after(vexora.endpoint.timeout),
        schedule: Schedule::from(&runtime.config),
        notify_url: vexora.endpoint.notify_url,
        worst_item: time_budget::batch_item_worst_case(vexora.endpoint.timeout),
        store: runtime.store,
        gateway: vexora.client,
        secrets: runtime.secrets,
        clock: chrono::Utc::now,
    };
    let worker = &worker;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = time_budget::deadline_of(event.context.deadline, chrono::Utc::now());
        Ok::<_, Error>(serde_json::to_value(
            worker.handle(&event.payload, deadline).await,
        )?)
    }))
    .await
}
