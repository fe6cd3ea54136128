//! The one TLS stack of the process: rustls with ring, for every AWS client and for Vexora.
//!
//! The SDK's own `default-https-client` feature brings rustls with aws-lc-rs; linking both
//! crypto libraries (or aws-lc-rs for the SDK and ring elsewhere) costs about a megabyte of
//! every deployment zip. Every SDK configuration in the workspace is loaded through
//! [`sdk_defaults`], so each client gets [`https_client`].

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// Makes ring rustls' process-wide provider (the Vexora client's TLS). Idempotent: a provider
/// already installed stays.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTPS (and plain HTTP, for emulators) over rustls with ring, system root certificates, one
/// connection pool.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// `aws_config::defaults` with [`https_client`], and without stalled-stream protection: it wraps
/// every request and response body in a throughput monitor with its own timers, for bodies of a
/// few hundred bytes whose whole call is already bounded by the attempt and operation timeouts
/// ([`crate::budget::aws_timeouts`]). Without the wrapper hyper also writes a request's head
/// and body in one system call (one loopback wake-up instead of two).
pub fn sdk_defaults() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
}
