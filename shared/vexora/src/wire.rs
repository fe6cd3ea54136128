//! What travels to and from Vexora (`docs/vexora-api.md` §3–§4): the signed request bodies and
//! the answer envelope, read leniently.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::signing;
use payout_domain::json::{self, RawObject};
use payout_domain::{PayoutRequest, TradeNo};
use secrecy::SecretString;
use url::Url;

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
