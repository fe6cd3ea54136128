//! Local-stack setup: the payouts table (from the core's one definition) and the Vexora secret,
//! created idempotently so a second run needs no clean-up.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;

/// The secret's value as every function expects it (`{"merchantNo", "appSecret"}`).
pub fn secret_json(merchant_no: &str, app_secret: &str) -> String {
    serde_json::json!({"merchantNo": merchant_no, "appSecret": app_secret}).to_string()
}

/// Creates the table unless it exists, and creates or updates the secret.
pub async fn setup(
    sdk: &SdkConfig,
    table: &str,
    secret_id: &str,
    merchant_no: &str,
    app_secret: &str,
) -> Result<(), String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    match payout_aws::store::create_table(&dynamodb, table).await {
        Ok(()) => {}
        Err(payout_app::store::StoreError::Unavailable(e))
            if e.downcast_ref::<aws_sdk_dynamodb::Error>()
                .is_some_and(|e| e.code() == Some("ResourceInUseException")) => {}
        Err(e) => return Err(format!("creating table {table}: {e} ({e:?})")),
    }
    put_secret(sdk, secret_id, &secret_json(merchant_no, app_secret)).await
}

/// Creates the secret, or stores `value` as its new current version.
pub async fn put_secret(sdk: &SdkConfig, secret_id: &str, value: &str) -> Result<(), String> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let created = secrets
        .create_secret()
        .name(secret_id)
        .secret_string(value)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceExistsException") => secrets
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "updating secret {secret_id}: {}",
                    e.code().unwrap_or("error")
                )
            }),
        Err(e) => Err(format!(
            "creating secret {secret_id}: {}",
            e.code().unwrap_or("error")
        )),
    }
}
