//! Batch items for `make dev`. `local-batches queue NAME` creates the batch queue on the
//! emulator (`AWS_ENDPOINT_URL`) and prints its URL (`PAYOUT_BATCH_QUEUE_URL`);
//! `local-batches pump` feeds that queue (`QUEUE_URL`) to `submit-batch-items` served by
//! `cargo lambda watch` (`INVOKE_URL`) as Lambda's SQS event source mapping would, two
//! invocations at a time, and prints what it did.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use payout_e2e::batches::{SqsPump, create_queue};
use payout_e2e::events::HttpInvoke;

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("local-batches: {name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    var("AWS_ENDPOINT_URL")?;
    let sdk = payout_aws::sdk::sdk_defaults().load().await;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["queue", name] => {
            // A first invocation compiles the worker under `cargo lambda watch`: a message in
            // hand must not come back meanwhile.
            println!(
                "{}",
                create_queue(&sdk, name, Duration::from_secs(900)).await?
            );
            Ok(())
        }
        ["pump"] => {
            let invoker = Arc::new(HttpInvoke {
                url: var("INVOKE_URL")?,
                http: reqwest::Client::new(),
            });
            let pump = SqsPump::start(&sdk, var("QUEUE_URL")?, invoker, 2, None);
            println!("batches: feeding the batch queue to submit-batch-items");
            let mut reported = 0;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let deleted = pump.stats.deleted.load(Ordering::Relaxed);
                if deleted != reported {
                    reported = deleted;
                    println!(
                        "batches: {deleted} item message(s) done, {} handed back",
                        pump.stats.handed_back.load(Ordering::Relaxed)
                    );
                }
            }
        }
        _ => Err("usage: local-batches queue NAME | local-batches pump".into()),
    }
}
