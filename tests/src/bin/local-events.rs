//! Status events for `make dev`: creates the bus (`PAYOUT_EVENTS_BUS`) and a queue with a rule
//! for every payout event, feeds the table's stream (`PAYOUTS_TABLE`) to
//! `publish-payout-events` served by `cargo lambda watch` (`INVOKE_URL`), as Lambda's event
//! source mapping would, and prints each event that reaches the queue, one line each.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use payout_e2e::events::{self, Collector, HttpInvoke, StreamPump};

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("local-events: {name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let table = var("PAYOUTS_TABLE")?;
    let bus = var("PAYOUT_EVENTS_BUS")?;
    let invoke_url = var("INVOKE_URL")?;
    var("AWS_ENDPOINT_URL")?;
    let sdk = payout_aws::sdk::sdk_defaults().load().await;
    let queue_url = events::setup(&sdk, &bus, "payout-events-local").await?;
    let invoker = Arc::new(HttpInvoke {
        url: invoke_url,
        http: reqwest::Client::new(),
    });
    let _pump = StreamPump::start(&sdk, &table, invoker, 100).await?;
    let _collector = Collector::start(&sdk, queue_url, true);
    println!("events: publishing {table}'s stream to bus {bus}");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
