//! Vexora's Japan payout API: wire types (`docs/vexora-api.md` §3–§4), the HTTP client, and the
//! one mapping from what came back to a payout [`Outcome`].

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use url::Url;

use crate::domain::{PayoutRequest, TradeNo};
use crate::json::{self, RawObject};
use crate::order::{Reported, VexoraAnswer};
use crate::secrets::VexoraCredentials;
use crate::signing;

pub const DISBURSEMENTS_PATH: &str = "/v1/vexora/disbursements";
pub const QUERY_PATH: &str = "/v1/vexora/queryPayOutResult";
pub const BALANCE_PATH: &str = "/v1/vexora/queryBalance";
pub const MERCHANT_HEADER: &str = "merchantNo";
/// The most of an answer's body that is read; Vexora's answers are a few hundred bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Payout submit body (`docs/vexora-api.md` §3). Every value is a string; `remark` is left out
/// when absent, never `null`.
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

/// Payout query body (`queryPayOutResult`), `docs/vexora-api.md` §1.
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

/// Balance query body (`queryBalance`), `docs/vexora-api.md` §1: only the timestamp is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRequest {
    pub timestamp: String,
    pub sign: String,
}

impl BalanceRequest {
    pub fn signed(timestamp_ms: i64, secret: &SecretString) -> Self {
        let timestamp = timestamp_ms.to_string();
        let sign = signing::sign([("timestamp", timestamp.as_str())], secret);
        Self { timestamp, sign }
    }
}

/// Vexora's answer envelope (`docs/vexora-api.md` §3), read leniently: any field may be missing,
/// a number, a string or a boolean (types drift between Vexora's pages, `docs/vexora-api.md` §4).
/// Numbers keep the text they arrived as, so an amount is never rounded through a float.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub code: Option<String>,
    pub msg: Option<String>,
    pub success: Option<String>,
    pub timestamp: Option<String>,
    pub data: Option<EnvelopeData>,
}

/// `data` of an answer, `docs/vexora-api.md` §3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeData {
    pub trade_no: Option<String>,
    pub plat_form_trade_no: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
    pub amount: Option<String>,
    /// `queryBalance` only (`docs/vexora-api.md` §1).
    pub available_amount: Option<String>,
    pub freeze_amount: Option<String>,
    pub unsettled_amount: Option<String>,
}

/// A scalar as text: strings unescaped, numbers and booleans in their textual form as received;
/// `null`, empty strings, objects and arrays as absent.
fn lenient_text(raw: Option<&RawValue>) -> Option<String> {
    match json::scalar(raw?)? {
        json::Scalar::Text(text) => Some(text).filter(|t| !t.is_empty()),
        json::Scalar::Null | json::Scalar::Nested => None,
    }
}

/// Which call an exchange belongs to: `code 8000` means different things on each
/// (`docs/vexora-api.md` §4).
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
    /// `00029`: the payout failed, no money was sent.
    Failed,
    /// A submit `code 8000` with no platform order: Vexora refused the request. A request-level
    /// refusal, outranked by any report about the payout itself
    /// (docs/contract.md § Evidence ranks): it fails only an order about which nothing else is
    /// known.
    Refused,
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
            Self::Failed | Self::Refused => Reported::Failed,
            Self::Unconfirmed(_) | Self::NotReceived(_) => Reported::Unknown,
        }
    }

    /// A short machine-readable label for logs and metrics (no PII, no free text).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Unconfirmed(_) => "unconfirmed",
            Self::NotReceived(_) => "not_received",
        }
    }
}

/// Vexora's payout status code (`docs/vexora-api.md` §4), exhaustively: what a status says is
/// decided here only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VexoraStatus {
    /// `0000`: the money was sent (final).
    Succeeded,
    /// `0015`: processing.
    Processing,
    /// `00029`: failed, no money sent (final).
    Failed,
    /// Anything else, `0001` (partial, documented for collections only) included: never a
    /// failure; the order stays non-final and is flagged.
    Undocumented(String),
}

impl VexoraStatus {
    pub fn parse(status: &str) -> Self {
        match status {
            "0000" => Self::Succeeded,
            "0015" => Self::Processing,
            "00029" => Self::Failed,
            other => Self::Undocumented(bounded(other, MAX_STATUS_CHARS)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Succeeded => "0000",
            Self::Processing => "0015",
            Self::Failed => "00029",
            Self::Undocumented(other) => other,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Succeeded => Outcome::Succeeded,
            Self::Processing => Outcome::Accepted,
            Self::Failed => Outcome::Failed,
            Self::Undocumented(other) => {
                Outcome::Unconfirmed(Unknown::UndocumentedStatus(other.clone()))
            }
        }
    }
}

/// Maps a payout status code (`docs/vexora-api.md` §4) to what it reports. Used for answers and
/// webhooks alike.
pub fn status_outcome(status: &str) -> Outcome {
    VexoraStatus::parse(status).outcome()
}

/// Text from Vexora kept on an order is cut to a bound, so no item can grow towards
/// DynamoDB's 400 KB limit whatever Vexora (or a forger) sends.
pub const MAX_STATUS_CHARS: usize = 16;
/// Free text (`message`) kept from an answer or notification.
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Any other single value kept (platform order number, amount, times).
pub const MAX_VALUE_CHARS: usize = 64;

/// `text` cut to at most `max` characters.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The amount a report states (`docs/vexora-api.md` §5): compared with the order's as whole yen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedAmount {
    /// The report carries no amount (a submit or query answer may not).
    NotStated,
    /// Whole yen: `1500`, `"1500"`, `"1500.00"`.
    Whole(u64),
    /// A number with a non-zero fraction (`1500.50`): it matches no order.
    NotWhole,
}

impl ReportedAmount {
    /// From the text Vexora sent; `None` when it is not a plain decimal number (`1e3`, `-5`,
    /// `abc`), which a signed notification must not carry.
    pub fn parse(text: &str) -> Option<Self> {
        let number = crate::domain::PlainDecimal::parse(text)?;
        if !number.is_whole {
            return Some(Self::NotWhole);
        }
        // More digits than u64 holds cannot be any order's amount.
        Some(number.whole.parse().map_or(Self::NotWhole, Self::Whole))
    }
}

/// Fields only a payout submit carries (`docs/vexora-api.md` §3). A signed body with any of them
/// is a submit body (re-split or replayed), never a notification
/// (docs/contract.md § Security rules for signed bodies).
pub const SUBMIT_ONLY_FIELDS: [&str; 8] = [
    "bankCode",
    "bankNumber",
    "mobile",
    "email",
    "firstname",
    "lastname",
    "notifyUrl",
    "userId",
];

/// Fields of a notification that may be kept on an order: no names, accounts or free text.
pub const KEPT_FIELDS: [&str; 7] = [
    "tradeNo",
    "platFormTradeNo",
    "status",
    "amount",
    "successTime",
    "timestamp",
    "utr",
];

/// Why a notification is refused with `401` (docs/contract.md § Security rules for signed bodies):
/// its signature cannot be trusted to mean what the fields say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A field name that is not a letter followed by letters and digits.
    FieldName,
    /// A field only a payout submit carries.
    SubmitOnlyField,
    /// A field given twice.
    DuplicateField,
    MissingAmount,
    /// An amount that is not a plain decimal number.
    MalformedAmount,
    /// A status that is not 1–16 digits.
    MalformedStatus,
    /// The signed text could be split into other fields naming another order, status or amount.
    Ambiguous,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::FieldName => "field_name",
            Self::SubmitOnlyField => "submit_only_field",
            Self::DuplicateField => "duplicate_field",
            Self::MissingAmount => "missing_amount",
            Self::MalformedAmount => "malformed_amount",
            Self::MalformedStatus => "malformed_status",
            Self::Ambiguous => "ambiguous",
        }
    }
}

/// Why a verified body is not a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationError {
    /// `401`: see [`Refusal`].
    Refused(Refusal),
    /// `400`: `tradeNo` or `status` is missing.
    Missing(&'static str),
    /// `404`: `tradeNo` is not of a shape any order has.
    UnknownTradeNo,
}

/// A status notification (`docs/vexora-api.md` §5), read from fields whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub trade_no: TradeNo,
    pub status: VexoraStatus,
    pub amount: ReportedAmount,
    /// The amount as received (bounded), for the audit trail.
    pub amount_text: String,
    pub plat_form_trade_no: Option<String>,
    pub message: Option<String>,
    /// PII-free fields ([`KEPT_FIELDS`]) as received, bounded, for an anomaly record.
    pub kept: std::collections::BTreeMap<String, String>,
}

fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric())
}

impl Notification {
    /// The rules that need no secret, checked before the signature so that bodies no
    /// notification can have never cost a secret read: field names, submit-only fields.
    pub fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), Refusal> {
        for name in names {
            if name == signing::SIGN_FIELD {
                continue;
            }
            if !is_field_name(name) {
                return Err(Refusal::FieldName);
            }
            if SUBMIT_ONLY_FIELDS.contains(&name) {
                return Err(Refusal::SubmitOnlyField);
            }
        }
        Ok(())
    }

    /// Reads a notification from its fields; trust it only once the signature verified. Vexora
    /// joins `k=v` pairs with no separator, so the same signature also covers other splits of
    /// the same text; the shapes required here make `tradeNo`, `status` and `amount` the only
    /// possible split.
    pub fn parse(fields: &signing::ReceivedFields) -> Result<Self, NotificationError> {
        use NotificationError::{Missing, Refused};
        Self::check_names(fields.names()).map_err(Refused)?;
        let trade_no_text = fields.get("tradeNo").ok_or(Missing("tradeNo"))?;
        let status_text = fields.get("status").ok_or(Missing("status"))?;
        let amount_text = fields
            .get("amount")
            .ok_or(Refused(Refusal::MissingAmount))?;
        if status_text.is_empty()
            || status_text.len() > MAX_STATUS_CHARS
            || !status_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Refused(Refusal::MalformedStatus));
        }
        let amount = ReportedAmount::parse(amount_text).ok_or(Refused(Refusal::MalformedAmount))?;
        let trade_no =
            TradeNo::parse(trade_no_text).map_err(|_| NotificationError::UnknownTradeNo)?;
        if is_ambiguous(fields) {
            return Err(Refused(Refusal::Ambiguous));
        }
        Ok(Self {
            status: VexoraStatus::parse(status_text),
            amount,
            amount_text: bounded(amount_text, MAX_VALUE_CHARS),
            plat_form_trade_no: fields
                .get("platFormTradeNo")
                .map(|p| bounded(p, MAX_VALUE_CHARS)),
            message: fields.get("message").map(|m| bounded(m, MAX_MESSAGE_CHARS)),
            kept: fields
                .iter()
                .filter(|(k, v)| KEPT_FIELDS.contains(k) && !v.is_empty())
                .map(|(k, v)| (k.to_owned(), bounded(v, MAX_VALUE_CHARS)))
                .collect(),
            trade_no,
        })
    }
}

/// Whether the signed text (the canonical string) can be split into fields other than those
/// received with a different `tradeNo`, `status` or `amount`. Given the shapes checked before
/// (status digits, amount a decimal number, names `[A-Za-z][A-Za-z0-9]*`):
/// - each of `tradeNo=`, `status=`, `amount=` must occur once in the text, so every split puts
///   those fields where they were received;
/// - `status` and `amount` end where a name (a letter) starts, so their ends are fixed;
/// - `tradeNo` may contain letters, so the name after it must not be splittable into a tail of
///   the order number and a shorter name that still sorts after `tradeNo`.
fn is_ambiguous(fields: &signing::ReceivedFields) -> bool {
    let canonical = signing::canonical_string(fields.iter());
    if ["tradeNo=", "status=", "amount="]
        .iter()
        .any(|key| canonical.matches(key).count() != 1)
    {
        return true;
    }
    let Some(trade_no) = fields.get("tradeNo") else {
        return true;
    };
    let next = fields
        .iter()
        .filter(|(name, value)| {
            *name > "tradeNo" && *name != signing::SIGN_FIELD && !value.is_empty()
        })
        .map(|(name, _)| name)
        .next();
    let Some(next) = next else {
        return false;
    };
    let joined = format!("{trade_no}{next}");
    let bytes = joined.as_bytes();
    (1..bytes.len())
        .filter(|&cut| cut != trade_no.len())
        .any(|cut| {
            let (head, tail) = joined.split_at(cut);
            head.len() <= TradeNo::MAX_LEN
                && head.bytes().all(crate::domain::TradeNo::allows)
                && is_field_name(tail)
                && tail > "tradeNo"
        })
}

/// The one mapping from an exchange to an outcome (`docs/vexora-api.md` §4). Never `Failed` on a
/// guess.
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
    match (VexoraCode::parse(envelope.code.as_deref()), operation) {
        (VexoraCode::Accepted, _) => match data.and_then(|d| d.status.as_deref()) {
            Some(status) => status_outcome(status),
            None => Outcome::Unconfirmed(Unknown::MissingStatus),
        },
        (VexoraCode::SystemError, _) => Outcome::Unconfirmed(Unknown::ProviderError),
        (VexoraCode::Rejected, Operation::Submit) if !platform_order => Outcome::Refused,
        (VexoraCode::Rejected, Operation::Submit) => {
            Outcome::Unconfirmed(Unknown::RejectedWithPlatformOrder)
        }
        (VexoraCode::Rejected, Operation::Query) => Outcome::Unconfirmed(Unknown::QueryRejected),
        (VexoraCode::Undocumented(code), _) => {
            Outcome::Unconfirmed(Unknown::UndocumentedCode(code))
        }
    }
}

/// Vexora's answer `code` (`docs/vexora-api.md` §4), exhaustively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VexoraCode {
    /// `0000`: the request was accepted; the payout's state is `data.status`.
    Accepted,
    /// `5000`: provider system error; the order may or may not exist.
    SystemError,
    /// `8000`: refused (on a submit: nothing created unless `data` names a platform order; on
    /// a query: not found or will not say).
    Rejected,
    /// Anything else, or none (empty).
    Undocumented(String),
}

impl VexoraCode {
    pub fn parse(code: Option<&str>) -> Self {
        match code {
            Some("0000") => Self::Accepted,
            Some("5000") => Self::SystemError,
            Some("8000") => Self::Rejected,
            Some(other) => Self::Undocumented(bounded(other, MAX_STATUS_CHARS)),
            None => Self::Undocumented(String::new()),
        }
    }
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
        crate::aws::install_crypto();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(crate::time_budget::VEXORA_CONNECT))
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

/// A JSON object body as an envelope; anything else (HTML, text, arrays, a field given twice)
/// is `None`.
pub fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let object = RawObject::parse(body).ok()?;
    let data = object
        .get("data")
        .filter(|raw| raw.get().starts_with('{'))
        .and_then(|raw| RawObject::parse(raw.get().as_bytes()).ok())
        .map(|data| EnvelopeData {
            trade_no: lenient_text(data.get("tradeNo")),
            plat_form_trade_no: lenient_text(data.get("platFormTradeNo")),
            status: lenient_text(data.get("status")),
            message: lenient_text(data.get("message")),
            amount: lenient_text(data.get("amount")),
            available_amount: lenient_text(data.get("availableAmount")),
            freeze_amount: lenient_text(data.get("freezeAmount")),
            unsettled_amount: lenient_text(data.get("unsettledAmount")),
        });
    Some(Envelope {
        code: lenient_text(object.get("code")),
        msg: lenient_text(object.get("msg")),
        success: lenient_text(object.get("success")),
        timestamp: lenient_text(object.get("timestamp")),
        data,
    })
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
