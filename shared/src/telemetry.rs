//! Logs: JSON lines through `tracing`, one object per line, fields flattened. The filter keeps
//! the SDK and HTTP stacks at `warn` so no request or response body is ever logged.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter; `RUST_LOG` replaces it when set.
pub const DEFAULT_FILTER: &str = "info,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_config=warn,aws_sdk_dynamodb=warn,aws_sdk_secretsmanager=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn,lambda_runtime=warn,lambda_http=warn";

/// The subscriber every function uses, writing to `writer` (stdout in Lambda, a buffer in tests).
pub fn subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// Installs the JSON subscriber on stdout for the process (once; later calls do nothing).
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout));
}
