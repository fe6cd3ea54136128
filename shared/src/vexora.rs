//! Vexora's Japan payout API: wire types (`vexora-api.md` §3–§4), the HTTP client, and the one
//! mapping from what came back to a payout [`Outcome`].

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use url::Url;

use crate::domain::{PayoutRequest, TradeNo};
use crate::order::Reported;
use crate::secrets::VexoraCredentials;
use crate::signing;

pub const DISBURSEMENTS_PATH: &str = "/v1/vexora/disbursements";
pub const QUERY_PATH: &str = "/v1/vexora/queryPayOutResult";
pub const MERCHANT_HEADER: &str = "merchantNo";

/// Payout submit body, §3. Every value is a string; `remark` is left out when absent, never `null`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisbursementRequest {
    pub sign: String,
    pub timestamp: String,
    pub trade_no: String,
    pub amount: String,
    pub bank_code: String,
    pub bank_number: String,
    pub user_id: String,
    pub mobile: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub notify_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
}

impl std::fmt::Debug for DisbursementRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisbursementRequest")
            .field("trade_no", &self.trade_no)
            .field("amount", &self.amount)
            .finish_non_exhaustive()
    }
}

impl DisbursementRequest {
    /// Builds and signs the body for one payout.
    pub fn signed(
        payout: &PayoutRequest,
        trade_no: &TradeNo,
        notify_url: &Url,
        timestamp_ms: i64,
        secret: &SecretString,
    ) -> Self {
        let mut body = Self {
            sign: String::new(),
            timestamp: timestamp_ms.to_string(),
            trade_no: trade_no.as_str().to_owned(),
            amount: payout.amount.yen().to_string(),
            bank_code: payout.bank_code.as_str().to_owned(),
            bank_number: payout.bank_number.expose().to_owned(),
            user_id: payout.user_id.as_str().to_owned(),
            mobile: payout.mobile.expose().to_owned(),
            email: payout.email.expose().to_owned(),
            firstname: payout.firstname.expose().to_owned(),
            lastname: payout.lastname.expose().to_owned(),
            notify_url: notify_url.as_str().to_owned(),
            remark: payout.remark.as_ref().map(|r| r.as_str().to_owned()),
        };
        body.sign = signing::sign(body.fields(), secret);
        body
    }

    /// The signed fields, by their wire names.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("timestamp", self.timestamp.as_str()),
            ("tradeNo", &self.trade_no),
            ("amount", &self.amount),
            ("bankCode", &self.bank_code),
            ("bankNumber", &self.bank_number),
            ("userId", &self.user_id),
            ("mobile", &self.mobile),
            ("email", &self.email),
            ("firstname", &self.firstname),
            ("lastname", &self.lastname),
            ("notifyUrl", &self.notify_url),
            ("remark", self.remark.as_deref().unwrap_or("")),
        ]
        .into_iter()
    }
}

/// Payout query body (`queryPayOutResult`), §1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    pub trade_no: String,
    pub timestamp: String,
    pub sign: String,
}

impl QueryRequest {
    pub fn signed(trade_no: &TradeNo, timestamp_ms: i64, secret: &SecretString) -> Self {
        let timestamp = timestamp_ms.to_string();
        let sign = signing::sign(
            [
                ("tradeNo", trade_no.as_str()),
                ("timestamp", timestamp.as_str()),
            ],
            secret,
        );
        Self {
            trade_no: trade_no.as_str().to_owned(),
            timestamp,
            sign,
        }
    }
}

/// Vexora's answer envelope, §3, read leniently: any field may be missing, a number, a string
/// or a boolean (types drift between Vexora's pages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    #[serde(default, deserialize_with = "lenient_text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub msg: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub success: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "lenient_data")]
    pub data: Option<EnvelopeData>,
}

/// `data` of an answer, §3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeData {
    #[serde(default, deserialize_with = "lenient_text")]
    pub trade_no: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub plat_form_trade_no: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub amount: Option<String>,
}

/// A scalar as text: strings as they are, numbers and booleans in their textual form; `null`,
/// empty strings, objects and arrays as absent.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::String(_) | Value::Null | Value::Array(_) | Value::Object(_) => None,
    })
}

fn lenient_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EnvelopeData>, D::Error> {
    Ok(match Value::deserialize(d)? {
        value @ Value::Object(_) => serde_json::from_value(value).ok(),
        _ => None,
    })
}

/// Which call an exchange belongs to: `code 8000` means different things on each (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Submit,
    Query,
}

/// Why a call certainly did not reach Vexora: no byte of the request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// DNS, TCP connect (refused, unreachable, connect timeout) or TLS handshake failed.
    Connect,
    /// The request could not be built (a bad base URL); nothing left the process.
    Build,
}

/// What happened on the wire for one call. Short-lived (returned, matched, dropped), so the
/// size of the answer variant does not matter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Exchange {
    /// Certainly not received by Vexora.
    NotSent(NotSent),
    /// The request may have been received, but no answer came within the timeout.
    TimedOut,
    /// The connection failed after the request was (possibly) sent.
    Dropped,
    /// An HTTP answer. `envelope` is `None` when the body was not a JSON object.
    Answered {
        http_status: u16,
        envelope: Option<Envelope>,
    },
}

/// Why an outcome is unknown. Every one of these may hide a payout that was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    Timeout,
    ConnectionDropped,
    HttpStatus(u16),
    NotJson,
    /// `code 5000`: provider system error.
    ProviderError,
    /// `code 8000` on submit while `data` names a platform order.
    RejectedWithPlatformOrder,
    /// `code 8000` on a query: Vexora did not find or would not say. Never a failure.
    QueryRejected,
    UndocumentedCode(String),
    UndocumentedStatus(String),
    MissingStatus,
    /// The answer names another order than the one asked about.
    TradeNoMismatch,
}

/// What an exchange means for the payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `0015`: Vexora accepted the payout and is processing it.
    Accepted,
    /// `0000`: the money was sent.
    Succeeded,
    /// `00029`, or a submit `code 8000` with no platform order: no money was sent.
    Failed,
    /// Vexora may or may not have the payout; only a later query or webhook can tell.
    Unconfirmed(Unknown),
    /// Vexora certainly did not receive the call.
    NotReceived(NotSent),
}

impl Outcome {
    /// What this outcome reports about the order. `NotReceived` reports nothing certain about
    /// the payout; the caller decides what a call that never left means for it.
    pub fn reported(&self) -> Reported {
        match self {
            Self::Accepted => Reported::Processing,
            Self::Succeeded => Reported::Succeeded,
            Self::Failed => Reported::Failed,
            Self::Unconfirmed(_) | Self::NotReceived(_) => Reported::Unknown,
        }
    }

    /// A short machine-readable label for logs and metrics (no PII, no free text).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unconfirmed(_) => "unconfirmed",
            Self::NotReceived(_) => "not_received",
        }
    }
}

/// Maps a payout status code (§4) to what it reports. Used for answers and webhooks alike.
pub fn status_outcome(status: &str) -> Outcome {
    match status {
        "0000" => Outcome::Succeeded,
        "0015" => Outcome::Accepted,
        "00029" => Outcome::Failed,
        // `0001` (partial) is documented for collections only; anything else is undocumented.
        other => Outcome::Unconfirmed(Unknown::UndocumentedStatus(other.to_owned())),
    }
}

/// The one mapping from an exchange to an outcome (§4). Never `Failed` on a guess.
pub fn outcome(operation: Operation, trade_no: &TradeNo, exchange: &Exchange) -> Outcome {
    let envelope = match exchange {
        Exchange::NotSent(why) => return Outcome::NotReceived(*why),
        Exchange::TimedOut => return Outcome::Unconfirmed(Unknown::Timeout),
        Exchange::Dropped => return Outcome::Unconfirmed(Unknown::ConnectionDropped),
        Exchange::Answered {
            http_status,
            envelope: _,
        } if !(200..300).contains(http_status) => {
            return Outcome::Unconfirmed(Unknown::HttpStatus(*http_status));
        }
        Exchange::Answered {
            http_status: _,
            envelope: None,
        } => return Outcome::Unconfirmed(Unknown::NotJson),
        Exchange::Answered {
            http_status: _,
            envelope: Some(envelope),
        } => envelope,
    };
    let data = envelope.data.as_ref();
    if let Some(answered) = data.and_then(|d| d.trade_no.as_deref())
        && answered != trade_no.as_str()
    {
        return Outcome::Unconfirmed(Unknown::TradeNoMismatch);
    }
    let platform_order = data.and_then(|d| d.plat_form_trade_no.as_deref()).is_some();
    match (envelope.code.as_deref(), operation) {
        (Some("0000"), _) => match data.and_then(|d| d.status.as_deref()) {
            Some(status) => status_outcome(status),
            None => Outcome::Unconfirmed(Unknown::MissingStatus),
        },
        (Some("5000"), _) => Outcome::Unconfirmed(Unknown::ProviderError),
        (Some("8000"), Operation::Submit) if !platform_order => Outcome::Failed,
        (Some("8000"), Operation::Submit) => {
            Outcome::Unconfirmed(Unknown::RejectedWithPlatformOrder)
        }
        (Some("8000"), Operation::Query) => Outcome::Unconfirmed(Unknown::QueryRejected),
        (Some(other), _) => Outcome::Unconfirmed(Unknown::UndocumentedCode(other.to_owned())),
        (None, _) => Outcome::Unconfirmed(Unknown::UndocumentedCode(String::new())),
    }
}

/// What Vexora last said about an order, as kept on it: `{code, status, message}` plus the
/// platform order number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexoraAnswer {
    pub code: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
    #[serde(rename = "platFormTradeNo")]
    pub plat_form_trade_no: Option<String>,
}

impl Exchange {
    /// The parts of an answer worth keeping on the order; `None` when nothing usable came back.
    pub fn answer(&self) -> Option<VexoraAnswer> {
        match self {
            Self::Answered {
                envelope: Some(envelope),
                ..
            } => {
                let data = envelope.data.clone().unwrap_or_default();
                Some(VexoraAnswer {
                    code: envelope.code.clone(),
                    status: data.status,
                    message: data.message.or_else(|| envelope.msg.clone()),
                    plat_form_trade_no: data.plat_form_trade_no,
                })
            }
            Self::Answered { envelope: None, .. }
            | Self::NotSent(_)
            | Self::TimedOut
            | Self::Dropped => None,
        }
    }
}

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
}

impl VexoraClient {
    /// `timeout` bounds a whole call; connecting is bounded by the smaller of it and 3 s so
    /// that an unreachable host is reported as "not sent" quickly.
    pub fn new(base_url: &Url, timeout: Duration) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // A redirected POST could be replayed elsewhere: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            http,
            disbursements: join(base_url, DISBURSEMENTS_PATH),
            query: join(base_url, QUERY_PATH),
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
        match response.bytes().await {
            Ok(bytes) => Exchange::Answered {
                http_status,
                envelope: parse_envelope(&bytes),
            },
            Err(e) => transport_failure(&e),
        }
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// A JSON object body as an envelope; anything else (HTML, text, arrays) is `None`.
pub fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => serde_json::from_value(value).ok(),
        _ => None,
    }
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

#[cfg(test)]
mod tests;
