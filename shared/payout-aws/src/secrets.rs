//! The Vexora secret's Secrets Manager adapter: one uncached `GetSecretValue` of a stage. The
//! cache and the keyring over it are `payout_app::secrets`.

use chrono::DateTime;
use payout_app::secrets::{SecretStore, Stage, StoredSecret};
use secrecy::SecretString;
use vexora::SecretError;

/// Secrets Manager (`GetSecretValue` by version stage).
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl SecretStore for SecretsManagerStore {
    async fn fetch(&self, stage: Stage) -> Result<Option<StoredSecret>, SecretError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let read = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage.label())
            .send()
            .await;
        let output = match read {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetSecretValueError::is_resource_not_found_exception) =>
            {
                return Ok(None);
            }
            Err(e) => {
                let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("request failed")
                    .to_owned();
                return Err(SecretError::Unavailable(code));
            }
        };
        let value = output
            .secret_string
            .ok_or(SecretError::Malformed("the value is not a string"))?;
        Ok(Some(StoredSecret {
            value: SecretString::from(value),
            version_id: output.version_id.unwrap_or_default(),
            created_at: output
                .created_date
                .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
        }))
    }
}
