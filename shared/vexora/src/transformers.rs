//! The one mapping from what came back to what it means for the payout: an exchange and
//! Vexora's codes (`docs/vexora-api.md` §4) to an [`Outcome`], never `Failed` on a guess.

use payout_domain::TradeNo;
use payout_domain::order::{Reported, VexoraAnswer};

use crate::wire::Envelope;

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
        let number = payout_domain::PlainDecimal::parse(text)?;
        if !number.is_whole {
            return Some(Self::NotWhole);
        }
        // More digits than u64 holds cannot be any order's amount.
        Some(number.whole.parse().map_or(Self::NotWhole, Self::Whole))
    }
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
