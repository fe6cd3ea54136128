//! Creates the payouts table and the Vexora secret on the emulator named by `AWS_ENDPOINT_URL`
//! (idempotent), from the same definitions the functions and the SAM template use.
#![allow(clippy::print_stdout)]

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("local-setup: {name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let table = var("PAYOUTS_TABLE")?;
    let secret_id = var("VEXORA_SECRET_ID")?;
    let merchant_no = var("SANDBOX_MERCHANT_NO")?;
    let app_secret = var("SANDBOX_APP_SECRET")?;
    var("AWS_ENDPOINT_URL")?;
    let sdk = payout_aws::sdk::sdk_defaults().load().await;
    payout_e2e::local::setup(&sdk, &table, &secret_id, &merchant_no, &app_secret).await?;
    println!("table {table} and secret {secret_id} are ready");
    Ok(())
}
