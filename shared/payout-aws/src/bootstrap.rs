//! Init for every function, once per sandbox: configuration, the store, and the first read of the
//! secret; the Vexora client and the batch queue only for the functions that use them. A failure
//! stops init with a message that names its cause.

use crate::config::{Config, ConfigError, VexoraConfig};
use crate::secrets::SecretsManagerStore;
use crate::store::DynamoOrderStore;
use payout_app::secrets::{DEFAULT_TTL, Secrets};
use vexora::credentials::SecretError;
use vexora::{ClientBuildError, VexoraClient};

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

/// What every function needs, built once; the clients only some use are built by
/// [`Runtime::vexora`] and [`Runtime::batch_queue`].
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub store: DynamoOrderStore,
    pub secrets: Secrets<SecretsManagerStore>,
    sdk: aws_config::SdkConfig,
}

impl Runtime {
    /// EMF metrics for `function` in this deployment's environment.
    pub fn metrics(&self, function: &'static str) -> payout_app::metrics::EmfMetrics {
        payout_app::metrics::EmfMetrics {
            environment: self.config.environment.clone(),
            function,
        }
    }

    /// What every `main` does first: JSON logs on stdout, then [`Runtime::init`], its failure
    /// logged with the cause (the variable or the secret it names) before the function stops.
    pub async fn start() -> Result<Self, InitError> {
        crate::telemetry::init();
        Self::init()
            .await
            .inspect_err(|e| tracing::error!(error = %e, "init failed"))
    }

    /// Reads the environment, builds the store's client with bounded timeouts
    /// ([`crate::sdk::load`]) and reads the secret once, so a warm request never calls Secrets
    /// Manager.
    pub async fn init() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = crate::sdk::load().await;
        let store = DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.payouts_table.clone(),
        );
        let secrets = Secrets::load(
            SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                config.vexora_secret_id.clone(),
            ),
            DEFAULT_TTL,
        )
        .await?;
        Ok(Self {
            config,
            store,
            secrets,
            sdk,
        })
    }

    /// Vexora's endpoint ([`VexoraConfig`]) and a client for it, for the functions that call
    /// Vexora (the webhook does not, and needs no Vexora URL); a failure is logged as init's.
    pub fn vexora(&self) -> Result<(VexoraClient, VexoraConfig), InitError> {
        let connect = || -> Result<_, InitError> {
            let config = VexoraConfig::from_env()?;
            let client = VexoraClient::new(&config.base_url, config.timeout)?;
            Ok((client, config))
        };
        connect().inspect_err(|e| tracing::error!(error = %e, "init failed"))
    }

    /// `PAYOUT_BATCH_QUEUE_URL`'s queue, when configured, for the functions that queue batch
    /// items.
    pub fn batch_queue(&self) -> Option<crate::queue::SqsBatchQueue> {
        self.config
            .batch_queue_url
            .as_ref()
            .map(|url| crate::queue::SqsBatchQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url))
    }
}
