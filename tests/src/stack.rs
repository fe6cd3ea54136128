//! The one harness that starts the product for a test: a table and the Vexora secret on a moto
//! server, the Vexora sandbox, and the real function binaries under the runtime-API harness,
//! with their environment built from the configuration's own variable names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use payout_aws::config;
use payout_testkit::{Moto, aws_config_for};
use tokio::net::TcpListener;

use crate::events::{self, Collector, StreamPump};
use crate::lambda::{Function, binary_in};
use crate::local;
use crate::sandbox::{Sandbox, SandboxConfig};

/// The merchant every stack's secret and sandbox share.
pub const MERCHANT: &str = "0000000001";

/// What to start.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The moto server's endpoint.
    pub aws_endpoint: String,
    pub table: String,
    pub secret_id: String,
    pub app_secret: String,
    /// A value the secret held before the merchant's (so it is `AWSPREVIOUS`), as JSON.
    pub previous_secret: Option<String>,
    /// The sandbox's settings (its merchant and secret are the stack's).
    pub sandbox: SandboxConfig,
    /// Where the sandbox listens (a loopback address; port 0 for a free one).
    pub sandbox_addr: SocketAddr,
    pub vexora_timeout_ms: u64,
    /// `debug` (what `make test` builds) or `release`.
    pub profile: &'static str,
    /// Processes per function (each a concurrent "sandbox").
    pub submit_instances: usize,
    pub webhook_instances: usize,
    pub reconcile_instances: usize,
    /// More variables for every function (optional settings, `RUST_LOG`, ...).
    pub extra_env: Vec<(String, String)>,
    /// Also run status events: the publisher fed from the table's stream, a bus, and a
    /// collector reading what reaches it ([`crate::events`]).
    pub events: bool,
    /// Also run batch items: `submit-batch-items` fed from the batch queue ([`crate::batches`]).
    /// The queue itself (and `PAYOUT_BATCH_QUEUE_URL`) is always there.
    pub batches: bool,
    /// Worker processes (the worker's concurrency) and every n-th batch delivered twice: again
    /// once answered, or to two workers at once ([`crate::batches::Redelivery`]).
    pub batch_workers: usize,
    pub batch_redeliver_every: Option<u64>,
    pub batch_redeliver_concurrently_every: Option<u64>,
    /// Set by [`Stack::spawn`]: the batch queue's URL.
    pub batch_queue_url: Option<String>,
}

impl StackConfig {
    /// A fresh table and secret on `moto`, a sandbox answering at once, one process per
    /// function, debug binaries.
    pub fn new(moto: &Moto, app_secret: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            aws_endpoint: moto.endpoint.clone(),
            table: format!("payouts-{id}"),
            secret_id: format!("vexora/{id}"),
            app_secret: app_secret.to_owned(),
            previous_secret: None,
            sandbox: SandboxConfig::default(),
            sandbox_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            vexora_timeout_ms: 3000,
            profile: "debug",
            submit_instances: 1,
            webhook_instances: 1,
            reconcile_instances: 1,
            extra_env: Vec::new(),
            events: false,
            batches: false,
            batch_workers: 2,
            batch_redeliver_every: None,
            batch_redeliver_concurrently_every: None,
            batch_queue_url: None,
        }
    }
}

/// A running product. Everything stops when it is dropped.
#[derive(Debug)]
pub struct Stack {
    pub config: StackConfig,
    pub sandbox: Sandbox,
    pub submit: Function,
    pub webhook: Function,
    pub reconcile: Function,
    /// With [`StackConfig::events`].
    pub events: Option<StackEvents>,
    /// With [`StackConfig::batches`]: the worker and the pump feeding it.
    pub batches: Option<StackBatches>,
    pub http: reqwest::Client,
    pub sdk: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Stack {
    pub async fn spawn(mut config: StackConfig) -> Result<Self, String> {
        let sdk = aws_config_for(&config.aws_endpoint).await;
        config.batch_queue_url = Some(
            crate::batches::create_queue(
                &sdk,
                &format!("batch-{}", config.table),
                // Longer than any invocation takes here (a message in hand is not delivered
                // twice merely for being slow); a handed-back one is back within it.
                Duration::from_secs(10),
            )
            .await?,
        );
        if let Some(previous) = &config.previous_secret {
            local::put_secret(&sdk, &config.secret_id, previous).await?;
        }
        local::setup(
            &sdk,
            &config.table,
            &config.secret_id,
            MERCHANT,
            &config.app_secret,
        )
        .await?;
        let sandbox = Sandbox::start(
            SandboxConfig {
                merchant_no: MERCHANT.into(),
                app_secret: config.app_secret.clone(),
                ..config.sandbox.clone()
            },
            TcpListener::bind(config.sandbox_addr)
                .await
                .map_err(|e| format!("the sandbox cannot listen: {e}"))?,
        )
        .await
        .map_err(|e| e.to_string())?;
        let start = |name: &'static str, notify: String, instances: usize| {
            let env = env(&config, &sandbox.base_url(), &notify);
            async move { Function::start(binary_in(config.profile, name), name, &env, instances).await }
        };
        let webhook = start(
            "payout-webhook",
            "http://127.0.0.1/unused".into(),
            config.webhook_instances,
        )
        .await?;
        let notify = format!("{}/vexora/notify", webhook.url);
        let submit = start("submit-payout", notify.clone(), config.submit_instances).await?;
        let reconcile = start(
            "reconcile-payouts",
            notify.clone(),
            config.reconcile_instances,
        )
        .await?;
        let events = if config.events {
            Some(StackEvents::start(&sdk, &config).await?)
        } else {
            None
        };
        let batches = if config.batches {
            let env = env(&config, &sandbox.base_url(), &notify);
            let worker = Arc::new(
                Function::start(
                    binary_in(config.profile, "submit-batch-items"),
                    "submit-batch-items",
                    &env,
                    config.batch_workers,
                )
                .await?,
            );
            let pump = crate::batches::SqsPump::start_with(
                &sdk,
                config.batch_queue_url.clone().unwrap_or_default(),
                worker.clone(),
                config.batch_workers,
                crate::batches::Redelivery {
                    after_answer_every: config.batch_redeliver_every,
                    concurrently_every: config.batch_redeliver_concurrently_every,
                },
            );
            Some(StackBatches { worker, pump })
        } else {
            None
        };
        Ok(Self {
            sandbox,
            submit,
            webhook,
            reconcile,
            events,
            batches,
            http: reqwest::Client::new(),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
            config,
        })
    }

    /// The environment a function of this stack gets, with `notify` as its notify URL.
    pub fn env(&self, notify: &str) -> Vec<(String, String)> {
        env(&self.config, &self.sandbox.base_url(), notify)
    }

    /// The Vexora call timeout the functions use.
    pub fn vexora_timeout(&self) -> Duration {
        Duration::from_millis(self.config.vexora_timeout_ms)
    }
}

/// The environment every function gets: the contract's variables by the configuration's own
/// names (docs/contract.md § Configuration), the AWS SDK pointed at the emulator with a region
/// and fake credentials, and extras.
pub fn env(config: &StackConfig, vexora_base_url: &str, notify_url: &str) -> Vec<(String, String)> {
    let timeout = config.vexora_timeout_ms.to_string();
    [
        (config::PAYOUTS_TABLE, config.table.as_str()),
        (config::VEXORA_SECRET_ID, config.secret_id.as_str()),
        (config::VEXORA_BASE_URL, vexora_base_url),
        (config::VEXORA_NOTIFY_URL, notify_url),
        (config::VEXORA_TIMEOUT_MS, timeout.as_str()),
        ("AWS_ENDPOINT_URL", config.aws_endpoint.as_str()),
        ("AWS_REGION", "ap-northeast-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(
        config
            .batch_queue_url
            .iter()
            .map(|url| (config::PAYOUT_BATCH_QUEUE_URL.to_owned(), url.clone())),
    )
    .chain(config.extra_env.iter().cloned())
    .collect()
}

/// Batch items of a stack: the worker processes and the pump feeding them from the queue.
#[derive(Debug)]
pub struct StackBatches {
    pub worker: Arc<Function>,
    pub pump: crate::batches::SqsPump,
}

/// Status events of a stack: the publisher, the stream pump feeding it, and the collector.
#[derive(Debug)]
pub struct StackEvents {
    pub publisher: Arc<Function>,
    pub pump: StreamPump,
    pub collector: Collector,
    pub bus: String,
}

impl StackEvents {
    async fn start(sdk: &SdkConfig, config: &StackConfig) -> Result<Self, String> {
        let bus = format!("bus-{}", config.table);
        let queue_url = events::setup(sdk, &bus, &format!("events-{}", config.table)).await?;
        let env: Vec<(String, String)> = [
            (config::PAYOUT_EVENTS_BUS, bus.as_str()),
            ("AWS_ENDPOINT_URL", config.aws_endpoint.as_str()),
            ("AWS_REGION", "ap-northeast-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(config.extra_env.iter().cloned())
        .collect();
        let publisher = Arc::new(
            Function::start(
                binary_in(config.profile, "publish-payout-events"),
                "publish-payout-events",
                &env,
                1,
            )
            .await?,
        );
        let pump = StreamPump::start(sdk, &config.table, publisher.clone(), 100).await?;
        let collector = Collector::start(sdk, queue_url, false);
        Ok(Self {
            publisher,
            pump,
            collector,
            bus,
        })
    }
}
