//! The Vexora sandbox as a process, for `make dev` (see `payout_e2e::sandbox`).
//!
//! `vexora-sandbox PORT`; settings from `SANDBOX_MERCHANT_NO`, `SANDBOX_APP_SECRET`,
//! `SANDBOX_TIME_SCALE` (retry schedule multiplier), `SANDBOX_PROCESSING_MS`, `SANDBOX_SLOW_MS`,
//! `SANDBOX_BALANCE` (starting balance in yen, 100,000,000).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use payout_e2e::sandbox::{Sandbox, SandboxConfig};

fn setting<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}={v} is not valid")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let defaults = SandboxConfig::default();
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0".into())
        .parse()
        .map_err(|_| "usage: vexora-sandbox PORT".to_owned())?;
    let config = SandboxConfig {
        merchant_no: setting("SANDBOX_MERCHANT_NO", defaults.merchant_no)?,
        app_secret: setting("SANDBOX_APP_SECRET", defaults.app_secret)?,
        time_scale: setting("SANDBOX_TIME_SCALE", defaults.time_scale)?,
        processing_time: Duration::from_millis(setting("SANDBOX_PROCESSING_MS", 1500)?),
        slow_answer: Duration::from_millis(setting("SANDBOX_SLOW_MS", 15_000)?),
        timestamp_window: defaults.timestamp_window,
        starting_balance: setting("SANDBOX_BALANCE", defaults.starting_balance)?,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            format!("vexora-sandbox: cannot listen on 127.0.0.1:{port} ({e}); is the port busy?")
        })?;
    let sandbox = Sandbox::start(config, listener)
        .await
        .map_err(|e| e.to_string())?;
    println!("vexora sandbox listening on {}", sandbox.base_url());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
