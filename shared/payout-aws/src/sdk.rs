//! One HTTP client and one TLS stack for the whole process: reqwest (HTTP/1.1) over rustls with
//! ring, for every AWS client and for Vexora.
//!
//! The SDK's own `default-https-client` feature brings a second client (hyper with HTTP/2) and
//! rustls with aws-lc-rs; together they cost about a megabyte of every deployment zip, for
//! endpoints (DynamoDB, SQS, Secrets Manager, EventBridge) that this service reaches over
//! HTTP/1.1. Every SDK configuration in the workspace is loaded through [`sdk_defaults`], so
//! each client gets [`https_client`].

use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

pub use vexora::install_crypto;

/// The SDK's HTTP client: [`ReqwestHttpClient`] with the SDK's connect timeout.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// The SDK configuration every deployed client is built from: [`sdk_defaults`] with the bounded
/// timeouts ([`crate::time_budget::aws_timeouts`]); the SDK honours `AWS_REGION` and
/// `AWS_ENDPOINT_URL`.
pub async fn load() -> aws_config::SdkConfig {
    sdk_defaults()
        .timeout_config(crate::time_budget::aws_timeouts())
        .load()
        .await
}

/// `aws_config::defaults` with [`https_client`], and without stalled-stream protection: it wraps
/// every request and response body in a throughput monitor with its own timers, for bodies of a
/// few hundred bytes whose whole call is already bounded by the attempt and operation timeouts
/// ([`crate::time_budget::aws_timeouts`]).
pub fn sdk_defaults() -> ConfigLoader {
    // A dated behavior version, not `latest()`: an SDK upgrade must not change retries,
    // timeouts or defaults without a change here that says so. No SDK crate has the
    // `behavior-version-latest` feature either, so a client built otherwise fails loudly.
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .http_client(https_client())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
}

/// An SDK HTTP client over reqwest: one connection pool per connect timeout the SDK asks for
/// (in practice one), no proxy taken from the environment, no redirects. Bodies are in memory
/// (every request this service makes is); a streaming body is refused, never half-sent.
///
/// Connection poisoning: the SDK asks to drop the connection of a call that failed transiently
/// (a 5xx, a timeout) so its retry does not reuse it. reqwest does not name a pooled connection,
/// so poisoning renews the pool: the next call opens a fresh connection (rare: only after
/// such a failure).
#[derive(Debug, Default)]
pub struct ReqwestHttpClient {
    pools: std::sync::Mutex<Vec<std::sync::Arc<Pool>>>,
}

/// One reqwest client (its connection pool) for one connect timeout, renewed when poisoned.
#[derive(Debug)]
struct Pool {
    connect_timeout: Option<Duration>,
    client: std::sync::Mutex<reqwest::Client>,
    /// How many times it was renewed (tests).
    renewed: std::sync::atomic::AtomicUsize,
}

impl Pool {
    fn build(connect_timeout: Option<Duration>) -> Result<reqwest::Client, reqwest::Error> {
        install_crypto();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true);
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        builder.build()
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Drops every pooled connection: the calls in flight keep theirs, new calls connect anew.
    fn renew(&self) {
        if let Ok(fresh) = Self::build(self.connect_timeout) {
            *self
                .client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            self.renewed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl ReqwestHttpClient {
    fn pool(
        &self,
        connect_timeout: Option<Duration>,
    ) -> Result<std::sync::Arc<Pool>, reqwest::Error> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = pools.iter().find(|p| p.connect_timeout == connect_timeout) {
            return Ok(pool.clone());
        }
        let pool = std::sync::Arc::new(Pool {
            connect_timeout,
            client: std::sync::Mutex::new(Pool::build(connect_timeout)?),
            renewed: std::sync::atomic::AtomicUsize::new(0),
        });
        pools.push(pool.clone());
        Ok(pool)
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ReqwestConnector {
            http: self
                .pool(settings.connect_timeout())
                .map_err(|e| e.to_string()),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    http: Result<std::sync::Arc<Pool>, String>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let pool = self.http.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let pool = pool.map_err(|e| ConnectorError::user(e.into()))?;
            let http = pool.client();
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // What the SDK's connection poisoning marks for closure after a transient failure.
            if let Some(capture) = parts.extensions.get::<CaptureSmithyConnection>() {
                let pool = pool.clone();
                capture.set_connection_retriever(move || {
                    let pool = pool.clone();
                    Some(
                        ConnectionMetadata::builder()
                            .proxied(false)
                            .poison_fn(move || pool.renew())
                            .build(),
                    )
                });
            }
            let Some(bytes) = body.bytes() else {
                return Err(ConnectorError::user(
                    "a streaming request body: this client sends bodies held in memory".into(),
                ));
            };
            // The URI goes through `url::Url`, which normalizes paths: fine for the JSON
            // protocols this service calls (path `/`), not for S3-style keys.
            let mut builder = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes.to_vec());
            if let Some(timeout) = read_timeout {
                builder = builder.timeout(timeout);
            }
            let response = builder.send().await.map_err(connector_error)?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                headers.extend(
                    response
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            let body = response.bytes().await.map_err(connector_error)?;
            let answer = answer
                .body(SdkBody::from(body))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// As the SDK's own client classifies them: a request that could not be built (never sent, not
/// retried), a timeout, an I/O failure (retried as transient), or anything else (not retried).
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_builder() {
        ConnectorError::user(e.into())
    } else if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::http::HttpConnector;
    use wiremock::matchers::{body_string, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn connector(read_timeout: Option<Duration>) -> ReqwestConnector {
        ReqwestConnector {
            http: ReqwestHttpClient::default()
                .pool(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string()),
            read_timeout,
        }
    }

    #[tokio::test]
    async fn a_connection_the_sdk_poisons_is_not_reused() {
        // Issue 23: without connection metadata the SDK logs "unable to mark the connection for
        // closure ..." at ERROR on every retried 5xx or timeout, and reuses the connection.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let connector = connector(None);
        let capture = CaptureSmithyConnection::new();
        let mut call = request(&server.uri(), SdkBody::from("{}"));
        call.add_extension(capture.clone());

        let answer = connector.call(call).await.unwrap();

        assert_eq!(answer.status().as_u16(), 500);
        let connection = capture.get().expect("the call names its connection");
        let pool = connector.http.as_ref().unwrap();
        assert_eq!(pool.renewed.load(std::sync::atomic::Ordering::Relaxed), 0);
        connection.poison();
        assert_eq!(pool.renewed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    fn request(url: &str, body: SdkBody) -> HttpRequest {
        let request = http::Request::builder()
            .method("POST")
            .uri(url)
            .header("x-amz-target", "DynamoDB_20120810.PutItem")
            .header("content-type", "application/x-amz-json-1.0")
            .body(body)
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    #[tokio::test]
    async fn a_call_sends_method_headers_and_body_and_returns_the_whole_answer() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(header("x-amz-target", "DynamoDB_20120810.PutItem"))
            .and(body_string("{\"TableName\":\"t\"}"))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("x-amzn-requestid", "R1")
                    .set_body_string("{\"__type\":\"ConditionalCheckFailedException\"}"),
            )
            .expect(1)
            .mount(&server)
            .await;

        let answer = connector(None)
            .call(request(
                &format!("{}/", server.uri()),
                SdkBody::from("{\"TableName\":\"t\"}"),
            ))
            .await
            .unwrap();

        assert_eq!(answer.status().as_u16(), 400);
        assert_eq!(answer.headers().get("x-amzn-requestid"), Some("R1"));
        assert_eq!(
            answer.body().bytes(),
            Some(&b"{\"__type\":\"ConditionalCheckFailedException\"}"[..])
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_an_io_error_the_sdk_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);

        let e = connector(None)
            .call(request(&url, SdkBody::from("{}")))
            .await
            .unwrap_err();

        assert!(e.is_io(), "{e:?}");
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_timeout() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;

        let e = connector(Some(Duration::from_millis(100)))
            .call(request(&server.uri(), SdkBody::from("{}")))
            .await
            .unwrap_err();

        assert!(e.is_timeout(), "{e:?}");
    }

    #[tokio::test]
    async fn a_body_not_held_in_memory_is_refused_before_anything_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;

        let e = connector(None)
            .call(request(&server.uri(), SdkBody::taken()))
            .await
            .unwrap_err();

        assert!(e.is_user(), "{e:?}");
    }
}
