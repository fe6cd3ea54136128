//! Wiring only: logs, init once, then one reconciler run per scheduled event, within the
//! invocation's deadline.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use payout_app::apply::Schedule;
use payout_aws::bootstrap::Runtime;
use payout_domain::order::pending_abandoned_after;
use reconcile_payouts::handler::{Reconciler, deadline_of};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let (runtime, vexora) = Runtime::start_with_vexora().await?;
    let queue = runtime.batch_queue();
    let config = &runtime.config;
    let reconciler = Reconciler {
        metrics: runtime.metrics("reconcile-payouts"),
        abandoned_after: pending_abandoned_after(vexora.endpoint.timeout),
        schedule: Schedule::from(config),
        give_up_after: config.reconcile_give_up_after,
        max_orders: config.reconcile_max_orders,
        store: runtime.store,
        gateway: vexora.client,
        secrets: runtime.secrets,
        queue,
    };
    let reconciler = &reconciler;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let now = chrono::Utc::now();
            let deadline = deadline_of(event.context.deadline, now);
            let report = reconciler.run(now, deadline).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
