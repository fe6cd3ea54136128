//! What one merchant request came to ([`Answer`]: one outcome per request, for payouts, the
//! balance and batches) and its one mapping to an HTTP answer: status, error body, the order
//! view (docs/contract.md § Order JSON).

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use payout_app::balance::Balance;
use payout_app::batch::{BatchId, BatchView};
use payout_domain::order::{Order, OrderStatus};
use payout_domain::timestamp;
use payout_domain::{FieldError, TradeNo};
use serde::Serialize;

/// How a refresh went (`GET ?refresh=true`); the order is answered either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    Moved,
    Unchanged,
    Unknown,
    RateLimited,
    Failed,
}

/// What one request came to: its one status mapping (`response`) and its log label (`label`).
#[derive(Debug)]
pub(super) enum Answer {
    // `POST /payouts` and `GET /payouts/{tradeNo}`.
    /// A new order and Vexora's answer recorded (`label` is that answer's): `201` when definite,
    /// `202` when unconfirmed.
    Recorded(Box<Order>, &'static str),
    /// Vexora's answer could not be recorded: the order is shown `UNCONFIRMED` (`202`).
    Unrecorded(Box<Order>),
    /// The same payout again: the stored order (`200`), no call.
    Duplicate(Box<Order>),
    Found(Box<Order>),
    Refreshed(Box<Order>, Refresh),
    Invalid(Vec<FieldError>),
    TooLarge,
    InvalidQuery(String),
    NoRoute,
    NotFound(Option<TradeNo>),
    MethodNotAllowed(&'static str),
    InFlight(TradeNo),
    IdempotencyMismatch(TradeNo),
    /// The secret could not be read before anything was stored or sent.
    SecretUnavailable,
    /// Our storage failed before anything was sent to Vexora: safe to retry (with this tradeNo).
    StorageUnavailable(Option<TradeNo>),
    /// An earlier intent for this tradeNo was withdrawn meanwhile: a retry starts afresh.
    Withdrawn(TradeNo),
    /// Reading an order failed.
    ReadUnavailable(TradeNo),
    /// Vexora could not be reached at all; nothing was sent and nothing was kept.
    VexoraUnreachable(TradeNo),
    // `GET /balance`.
    /// Vexora's reading.
    Balance(Balance),
    /// Vexora gave no usable reading (or the secret could not be read).
    BalanceUnavailable,
    // `POST /batches` and `GET /batches/{batchId}`.
    /// Stored and queued (`202`).
    BatchAccepted(BatchId, usize),
    /// `GET /batches/{id}`, or the same batch again (`200`).
    Batch(Box<BatchView>),
    /// The batch's total is more than Vexora's available balance; nothing stored.
    InsufficientBalance {
        total: u64,
        available: u64,
    },
    /// The batchId was used for other items.
    BatchMismatch(BatchId),
    /// Item `i`'s tradeNo belongs to another payout.
    ItemMismatch(TradeNo, usize),
    /// Item `i`'s payout is being submitted on its own right now (and may yet be withdrawn
    /// unsent): the batch cannot count it as sent; retry shortly.
    ItemInFlight(TradeNo, usize),
    /// Storage failed while storing or reading a batch.
    BatchUnavailable(BatchId),
    BatchTooLarge,
    /// No batch queue is configured.
    BatchesOff,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [FieldError]>,
    /// The payout the answer is about, so a retry can name it (it may have been generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    trade_no: Option<&'a str>,
    /// The batch the answer is about (it may have been generated): retry with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<&'a str>,
}

impl Answer {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Recorded(_, label) => label,
            Self::Unrecorded(_) => "unrecorded",
            Self::Duplicate(_) => "duplicate",
            Self::Found(_) => "found",
            Self::Refreshed(_, Refresh::Moved) => "refreshed_moved",
            Self::Refreshed(_, Refresh::Unchanged) => "refreshed_unchanged",
            Self::Refreshed(_, Refresh::Unknown) => "refreshed_unknown",
            Self::Refreshed(_, Refresh::RateLimited) => "refresh_rate_limited",
            Self::Refreshed(_, Refresh::Failed) => "refresh_failed",
            Self::Invalid(_) => "invalid",
            Self::TooLarge => "too_large",
            Self::InvalidQuery(_) => "invalid_query",
            Self::NoRoute => "no_route",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::InFlight(_) => "in_flight",
            Self::IdempotencyMismatch(_) => "mismatch",
            Self::SecretUnavailable => "secret_unavailable",
            Self::StorageUnavailable(_) | Self::ReadUnavailable(_) => "storage_error",
            Self::Withdrawn(_) => "withdrawn",
            Self::VexoraUnreachable(_) => "not_received",
            Self::Balance(_) => "balance",
            Self::BalanceUnavailable => "balance_unavailable",
            Self::BatchAccepted(..) => "batch_accepted",
            Self::Batch(_) => "batch",
            Self::InsufficientBalance { .. } => "insufficient_balance",
            Self::BatchMismatch(_) | Self::ItemMismatch(..) => "mismatch",
            Self::ItemInFlight(..) => "in_flight",
            Self::BatchUnavailable(_) => "storage_error",
            Self::BatchTooLarge => "too_large",
            Self::BatchesOff => "batches_off",
        }
    }

    pub(super) fn batch_id(&self) -> Option<&str> {
        match self {
            Self::BatchAccepted(b, _) | Self::BatchMismatch(b) | Self::BatchUnavailable(b) => {
                Some(b.as_str())
            }
            Self::Batch(view) => Some(view.batch_id.as_str()),
            _ => None,
        }
    }

    pub(super) fn trade_no(&self) -> Option<&TradeNo> {
        match self {
            Self::Recorded(o, _)
            | Self::Unrecorded(o)
            | Self::Duplicate(o)
            | Self::Found(o)
            | Self::Refreshed(o, _) => Some(&o.trade_no),
            Self::NotFound(t) | Self::StorageUnavailable(t) => t.as_ref(),
            Self::InFlight(t)
            | Self::IdempotencyMismatch(t)
            | Self::Withdrawn(t)
            | Self::ReadUnavailable(t)
            | Self::VexoraUnreachable(t) => Some(t),
            Self::Invalid(_)
            | Self::TooLarge
            | Self::InvalidQuery(_)
            | Self::NoRoute
            | Self::MethodNotAllowed(_)
            | Self::SecretUnavailable
            | Self::Balance(_)
            | Self::BalanceUnavailable
            | Self::BatchAccepted(..)
            | Self::Batch(_)
            | Self::InsufficientBalance { .. }
            | Self::BatchMismatch(_)
            | Self::BatchUnavailable(_)
            | Self::BatchTooLarge
            | Self::BatchesOff => None,
            Self::ItemMismatch(t, _) | Self::ItemInFlight(t, _) => Some(t),
        }
    }

    pub(super) fn response(&self) -> Response<Body> {
        let order = |status, order: &Order| json(status, &OrderView::new(order));
        let (status, error, message) = match self {
            Self::Recorded(o, _) => {
                let status = match o.status {
                    OrderStatus::Pending | OrderStatus::Unconfirmed => StatusCode::ACCEPTED,
                    OrderStatus::Processing | OrderStatus::Succeeded | OrderStatus::Failed => {
                        StatusCode::CREATED
                    }
                };
                return order(status, o);
            }
            Self::Unrecorded(o) => return order(StatusCode::ACCEPTED, o),
            Self::Duplicate(o) | Self::Found(o) | Self::Refreshed(o, _) => {
                return order(StatusCode::OK, o);
            }
            Self::Balance(balance) => return json(StatusCode::OK, balance),
            Self::BatchAccepted(batch_id, items) => {
                return json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"batchId": batch_id.as_str(), "status": "ACCEPTED", "items": items}),
                );
            }
            Self::Batch(view) => return json(StatusCode::OK, view),
            Self::InsufficientBalance { total, available } => {
                let message = format!(
                    "the batch's new payouts total {total} yen; Vexora's available balance is {available} yen; nothing was stored"
                );
                return json(
                    StatusCode::CONFLICT,
                    &ErrorBody {
                        error: "insufficient_balance",
                        message: &message,
                        fields: None,
                        trade_no: None,
                        batch_id: None,
                    },
                );
            }
            Self::ItemMismatch(trade_no, i) => {
                let message = format!(
                    "items[{i}]'s tradeNo is already another payout's (a stored one, or an earlier item of this batch); nothing was stored"
                );
                return json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &ErrorBody {
                        error: "idempotency_mismatch",
                        message: &message,
                        fields: None,
                        trade_no: Some(trade_no.as_str()),
                        batch_id: None,
                    },
                );
            }
            Self::ItemInFlight(trade_no, i) => {
                let message = format!(
                    "items[{i}]'s payout is being submitted on its own right now; retry the batch with the same batchId shortly"
                );
                return json(
                    StatusCode::CONFLICT,
                    &ErrorBody {
                        error: "in_flight",
                        message: &message,
                        fields: None,
                        trade_no: Some(trade_no.as_str()),
                        batch_id: None,
                    },
                );
            }
            Self::BatchMismatch(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "this batchId was already used for other items",
            ),
            Self::BatchUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; retry with the same batchId (items already stored are sent once)",
            ),
            Self::BatchTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "a batch body must be at most 1 MiB",
            ),
            Self::BatchesOff => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "batches are not configured here (no PAYOUT_BATCH_QUEUE_URL)",
            ),
            Self::BalanceUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "vexora_unavailable",
                "Vexora could not tell the balance; retry shortly",
            ),
            Self::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "the payout is not valid; see fields",
            ),
            Self::InvalidQuery(message) => {
                (StatusCode::BAD_REQUEST, "invalid_query", message.as_str())
            }
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body must be at most 16 KiB",
            ),
            Self::NoRoute | Self::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such payout or route",
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            ),
            Self::InFlight(_) => (
                StatusCode::CONFLICT,
                "in_flight",
                "the first submit of this tradeNo is still in progress; retry shortly",
            ),
            Self::IdempotencyMismatch(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "this tradeNo was already used for a different payout",
            ),
            Self::SecretUnavailable | Self::StorageUnavailable(_) | Self::Withdrawn(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is unavailable; nothing was sent to Vexora; retry with the same tradeNo",
            ),
            Self::ReadUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; retry the read shortly",
            ),
            Self::VexoraUnreachable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "vexora_unreachable",
                "Vexora could not be reached; nothing was sent; retry with the same tradeNo",
            ),
        };
        let fields = match self {
            Self::Invalid(fields) => Some(fields.as_slice()),
            _ => None,
        };
        let mut response = json(
            status,
            &ErrorBody {
                error,
                message,
                fields,
                trade_no: self.trade_no().map(TradeNo::as_str),
                batch_id: self.batch_id(),
            },
        );
        if let Self::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The order as merchants see it (docs/contract.md § Order JSON). No PII: the account number is
/// masked.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderView<'a> {
    trade_no: &'a str,
    #[serde(rename = "platFormTradeNo")]
    plat_form_trade_no: Option<&'a str>,
    status: OrderStatus,
    amount: u64,
    currency: &'static str,
    bank_code: &'a str,
    bank_number: &'a str,
    user_id: &'a str,
    remark: Option<&'a str>,
    vexora: Option<VexoraView<'a>>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct VexoraView<'a> {
    code: Option<&'a str>,
    status: Option<&'a str>,
    message: Option<&'a str>,
}

impl<'a> OrderView<'a> {
    fn new(order: &'a Order) -> Self {
        Self {
            trade_no: order.trade_no.as_str(),
            plat_form_trade_no: order.plat_form_trade_no.as_deref(),
            status: order.status,
            amount: order.amount.yen(),
            currency: "JPY",
            bank_code: &order.bank_code,
            bank_number: &order.bank_number_masked,
            user_id: &order.user_id,
            remark: order.remark.as_deref(),
            vexora: order.vexora.as_ref().map(|v| VexoraView {
                code: v.code.as_deref(),
                status: v.status.as_deref(),
                message: v.message.as_deref(),
            }),
            created_at: timestamp(order.created_at),
            updated_at: timestamp(order.updated_at),
        }
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serializing these plain structs cannot fail; an empty object is a safe fallback anyway.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
