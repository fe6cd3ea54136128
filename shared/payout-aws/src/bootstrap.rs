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

/// What every function needs, built once. The functions that call Vexora start with
/// [`Runtime::start_with_vexora`], which also reads Vexora's endpoint and builds its client; the
/// batch queue is built by [`Runtime::batch_queue`] where it is used.
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

    /// [`Runtime::start`] for a function that calls Vexora: [`Runtime::init_with_vexora`].
    pub async fn start_with_vexora() -> Result<(Self, Vexora), InitError> {
        crate::telemetry::init();
        Self::init_with_vexora()
            .await
            .inspect_err(|e| tracing::error!(error = %e, "init failed"))
    }

    /// Reads the environment, builds the store's client with bounded timeouts
    /// ([`crate::sdk::load`]) and reads the secret once, so a warm request never calls Secrets
    /// Manager.
    pub async fn init() -> Result<Self, InitError> {
        Self::init_from(Config::from_env()?).await
    }

    /// [`Runtime::init`] and Vexora's endpoint ([`VexoraConfig`]) with a client for it: every
    /// problem of either configuration is reported together, before any AWS call.
    pub async fn init_with_vexora() -> Result<(Self, Vexora), InitError> {
        let (config, endpoint) = crate::config::with_vexora(crate::config::from_env)?;
        let client = VexoraClient::new(&endpoint.base_url, endpoint.timeout)?;
        let runtime = Self::init_from(config).await?;
        Ok((runtime, Vexora { client, endpoint }))
    }

    async fn init_from(config: Config) -> Result<Self, InitError> {
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

    /// `PAYOUT_BATCH_QUEUE_URL`'s queue, when configured, for the functions that queue batch
    /// items.
    pub fn batch_queue(&self) -> Option<crate::queue::SqsBatchQueue> {
        self.config
            .batch_queue_url
            .as_ref()
            .map(|url| crate::queue::SqsBatchQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url))
    }
}

/// Vexora's endpoint and the client for it, for the functions that call Vexora.
#[derive(Debug)]
pub struct Vexora {
    pub client: VexoraClient,
    pub endpoint: VexoraConfig,
}
