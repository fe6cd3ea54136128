//! Init for every function, once per sandbox: configuration, AWS clients, the Vexora client and
//! the first read of the secret. A failure stops init with a message that names its cause.

use crate::config::{Config, ConfigError};
use crate::secrets::SecretsManagerStore;
use crate::store::DynamoOrderStore;
use crate::time_budget;
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

/// Everything a function needs, built once.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub store: DynamoOrderStore,
    pub secrets: Secrets<SecretsManagerStore>,
    pub vexora: VexoraClient,
    /// `PAYOUT_BATCH_QUEUE_URL`'s queue, when configured.
    pub batch_queue: Option<std::sync::Arc<dyn payout_app::batch::BatchQueue>>,
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

    /// Reads the environment (the SDK honours `AWS_REGION` and `AWS_ENDPOINT_URL`), builds the
    /// clients with bounded timeouts ([`time_budget::aws_timeouts`]) and reads the secret once, so a
    /// warm request never calls Secrets Manager.
    pub async fn init() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = crate::sdk::sdk_defaults()
            .timeout_config(time_budget::aws_timeouts())
            .load()
            .await;
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
        let vexora = VexoraClient::new(&config.vexora_base_url, config.vexora_timeout)?;
        let batch_queue = config.batch_queue_url.as_ref().map(|url| {
            std::sync::Arc::new(crate::queue::SqsBatchQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                url,
            )) as std::sync::Arc<dyn payout_app::batch::BatchQueue>
        });
        Ok(Self {
            config,
            store,
            secrets,
            vexora,
            batch_queue,
        })
    }
}
