//! Init for every function, once per sandbox: configuration, AWS clients, the Vexora client and
//! the first read of the secret. A failure stops init with a message that names its cause.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

use crate::config::{Config, ConfigError};
use crate::secrets::{DEFAULT_TTL, SecretError, SecretSource, SecretsManagerSource, Stage};
use crate::store::DynamoOrderStore;
use crate::vexora::{ClientBuildError, VexoraClient};

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// Everything a function needs, built once.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub store: DynamoOrderStore,
    pub secrets: SecretsManagerSource,
    pub vexora: VexoraClient,
}

/// Bounds on every AWS call: well inside the webhook's 10-second answer limit even with the
/// SDK's retries (one attempt ≤ 2 s, the whole call ≤ 5 s).
pub fn aws_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

impl Runtime {
    /// Reads the environment (the SDK honours `AWS_REGION` and `AWS_ENDPOINT_URL`), builds the
    /// clients and reads the secret once, so a warm request never calls Secrets Manager.
    pub async fn init() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(aws_timeouts())
            .load()
            .await;
        let store = DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.payouts_table.clone(),
        );
        let secrets = SecretsManagerSource::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            config.vexora_secret_id.clone(),
            DEFAULT_TTL,
        )?;
        secrets.credentials(Stage::Current).await?;
        let vexora = VexoraClient::new(&config.vexora_base_url, config.vexora_timeout)?;
        Ok(Self {
            config,
            store,
            secrets,
            vexora,
        })
    }
}
