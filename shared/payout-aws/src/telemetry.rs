//! Logs: JSON lines through `tracing`, one object per line, fields flattened. The filter keeps
//! the SDK and HTTP stacks at `warn` so no request or response body is ever logged.

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The default filter; `RUST_LOG` replaces it when set. Directives are `level` and
/// `target=level`, comma-separated (`tracing_subscriber`'s `Targets`: no span or field filters,
/// which would link a regular-expression engine into every function for no use).
pub const DEFAULT_FILTER: &str = "info,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_config=warn,aws_sdk_dynamodb=warn,aws_sdk_secretsmanager=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn,lambda_runtime=warn,lambda_http=warn";

/// The subscriber every function uses, writing to `writer` (stdout in Lambda, a buffer in tests).
pub fn subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        // Everything reaches the filter below, which alone decides.
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .finish()
        .with(filter)
}

/// `RUST_LOG`'s directives, or the default when unset, empty or unreadable.
fn filter(directives: Option<&str>) -> Targets {
    directives
        .filter(|d| !d.trim().is_empty())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| DEFAULT_FILTER.parse().unwrap_or_default())
}

/// Installs the JSON subscriber on stdout for the process (once; later calls do nothing).
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout));
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn the_default_keeps_the_sdk_quiet_and_the_functions_at_info() {
        for directives in [None, Some(""), Some("  "), Some("info,=[bad")] {
            let f = filter(directives);
            assert!(
                f.would_enable("payout_webhook", &Level::INFO),
                "{directives:?}"
            );
            assert!(
                !f.would_enable("payout_webhook", &Level::DEBUG),
                "{directives:?}"
            );
            assert!(
                !f.would_enable("aws_smithy_runtime", &Level::INFO),
                "{directives:?}"
            );
            assert!(
                f.would_enable("aws_smithy_runtime", &Level::WARN),
                "{directives:?}"
            );
            assert!(
                !f.would_enable("hyper_util", &Level::INFO),
                "{directives:?}"
            );
        }
    }

    #[test]
    fn rust_log_replaces_the_default() {
        let f = filter(Some("debug,aws_smithy_runtime=error"));
        assert!(f.would_enable("payout_app", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime", &Level::WARN));
    }
}
