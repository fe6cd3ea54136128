//! The HTTP client: one reused connection pool (rustls with ring, no redirects, no proxy), and
//! the port ([`PayoutGateway`]) the flows use to talk to Vexora.

use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::credentials::VexoraCredentials;
use crate::transformers::{Exchange, NotSent};
use crate::wire::{
    BALANCE_PATH, BalanceRequest, DISBURSEMENTS_PATH, DisbursementRequest, MAX_ANSWER_BYTES,
    MERCHANT_HEADER, QUERY_PATH, QueryRequest, parse_envelope,
};

/// Makes ring rustls' process-wide provider (reqwest's TLS, here and in the AWS SDK's client).
/// Idempotent: a provider already installed stays.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Connecting is bounded by the smaller of this and a call's timeout, so an unreachable host is
/// reported as "not sent" quickly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The port the functions use to talk to Vexora.
pub trait PayoutGateway: Send + Sync {
    fn submit(
        &self,
        credentials: &VexoraCredentials,
        body: &DisbursementRequest,
    ) -> impl std::future::Future<Output = Exchange> + Send;

    fn query(
        &self,
        credentials: &VexoraCredentials,
        body: &QueryRequest,
    ) -> impl std::future::Future<Output = Exchange> + Send;

    fn balance(
        &self,
        credentials: &VexoraCredentials,
        body: &BalanceRequest,
    ) -> impl std::future::Future<Output = Exchange> + Send;
}

impl PayoutGateway for VexoraClient {
    async fn submit(
        &self,
        credentials: &VexoraCredentials,
        body: &DisbursementRequest,
    ) -> Exchange {
        self.post(&self.disbursements, credentials, body).await
    }

    async fn query(&self, credentials: &VexoraCredentials, body: &QueryRequest) -> Exchange {
        self.post(&self.query, credentials, body).await
    }

    async fn balance(&self, credentials: &VexoraCredentials, body: &BalanceRequest) -> Exchange {
        self.post(&self.balance, credentials, body).await
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the Vexora HTTP client")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// Vexora's HTTP API over one reused connection pool (rustls, no redirects).
#[derive(Debug, Clone)]
pub struct VexoraClient {
    http: reqwest::Client,
    disbursements: Url,
    query: Url,
    balance: Url,
}

impl VexoraClient {
    /// `timeout` bounds a whole call; connecting is bounded by the smaller of it and 3 s so
    /// that an unreachable host is reported as "not sent" quickly.
    pub fn new(base_url: &Url, timeout: Duration) -> Result<Self, ClientBuildError> {
        install_crypto();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            // A redirected POST could be replayed elsewhere: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            // Signed payouts go to Vexora directly, never through a proxy named by whatever
            // the environment holds (HTTPS_PROXY, ALL_PROXY, ...).
            .no_proxy()
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            http,
            disbursements: join(base_url, DISBURSEMENTS_PATH),
            query: join(base_url, QUERY_PATH),
            balance: join(base_url, BALANCE_PATH),
        })
    }

    async fn post<B: Serialize>(
        &self,
        url: &Url,
        credentials: &VexoraCredentials,
        body: &B,
    ) -> Exchange {
        let sent = self
            .http
            .post(url.clone())
            .header(MERCHANT_HEADER, credentials.merchant_no.as_str())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return transport_failure(&e),
        };
        let http_status = response.status().as_u16();
        let mut response = response;
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                    body.extend_from_slice(&chunk);
                }
                // Larger than any answer Vexora documents: not read further, not an answer.
                Ok(Some(_)) => {
                    return Exchange::Answered {
                        http_status,
                        envelope: None,
                    };
                }
                Ok(None) => break,
                Err(e) => return transport_failure(&e),
            }
        }
        Exchange::Answered {
            http_status,
            envelope: parse_envelope(&body),
        }
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

fn transport_failure(e: &reqwest::Error) -> Exchange {
    if e.is_builder() {
        Exchange::NotSent(NotSent::Build)
    } else if e.is_connect() {
        // hyper reports a connect error only before the request is written.
        Exchange::NotSent(NotSent::Connect)
    } else if e.is_timeout() {
        Exchange::TimedOut
    } else {
        Exchange::Dropped
    }
}
