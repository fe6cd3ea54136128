//! HTTP ⇄ domain for Vexora's status notifications (contract § Webhook, `vexora-api.md` §5):
//! authenticate the raw fields first, then apply the report with one guarded write.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use payout_core::domain::{Amount, TradeNo, whole_yen};
use payout_core::metrics::{self, Metrics};
use payout_core::order::{Anomaly, Decision, HistoryEntry, OrderStatus, decide};
use payout_core::secrets::{Keyring, SecretSource};
use payout_core::signing::ReceivedFields;
use payout_core::store::{OrderStore, StoreError, Transition, Transitioned};
use payout_core::vexora::{Outcome, VexoraAnswer, status_outcome};

/// Notifications are small; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Fields of a notification that may be kept on an order: no names, accounts or free text.
const KEPT_FIELDS: [&str; 7] = [
    "tradeNo",
    "platFormTradeNo",
    "status",
    "amount",
    "successTime",
    "timestamp",
    "utr",
];

/// The function's dependencies, built once at init.
#[derive(Debug)]
pub struct App<S, K, M> {
    pub store: S,
    pub keyring: Keyring<K>,
    pub metrics: M,
    /// When a `PROCESSING` order is next due for the reconciler.
    pub processing_age: chrono::Duration,
    pub clock: fn() -> DateTime<Utc>,
}

/// What happened to one notification: the log's `verdict` and the answer to Vexora.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Applied(OrderStatus),
    Duplicate,
    Stale,
    Anomaly,
    AmountMismatch,
    UndocumentedStatus,
    Unauthorized,
    BadRequest,
    TooLarge,
    MethodNotAllowed,
    UnknownOrder,
    StorageError,
    SecretError,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Applied(_) => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Anomaly => "anomaly",
            Self::AmountMismatch => "amount_mismatch",
            Self::UndocumentedStatus => "undocumented_status",
            Self::Unauthorized => "unauthorized",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownOrder => "unknown_order",
            Self::StorageError => "storage_error",
            Self::SecretError => "secret_error",
        }
    }

    /// Vexora's contract: `200 OK` (plain text) once the report is durably handled.
    fn response(self) -> Response<Body> {
        let (status, text) = match self {
            Self::Applied(_)
            | Self::Duplicate
            | Self::Stale
            | Self::Anomaly
            | Self::AmountMismatch
            | Self::UndocumentedStatus => (StatusCode::OK, "OK"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest => (StatusCode::BAD_REQUEST, "bad request"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload too large"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            Self::UnknownOrder => (StatusCode::NOT_FOUND, "not found"),
            Self::StorageError | Self::SecretError => {
                (StatusCode::SERVICE_UNAVAILABLE, "retry later")
            }
        };
        let mut response = Response::new(Body::Text(text.to_owned()));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self == Self::MethodNotAllowed {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Handles one delivery. Every outcome is a response; nothing here panics.
pub async fn handle<S, K, M>(app: &App<S, K, M>, request: Request) -> Response<Body>
where
    S: OrderStore,
    K: SecretSource,
    M: Metrics,
{
    let started = Instant::now();
    let (verdict, trade_no) = if request.method() == Method::POST {
        app.notify(request.body().as_ref()).await
    } else {
        (Verdict::MethodNotAllowed, None)
    };
    let response = verdict.response();
    let to = match verdict {
        Verdict::Applied(to) => Some(to.as_str()),
        _ => None,
    };
    tracing::info!(
        trade_no = trade_no.as_ref().map(TradeNo::as_str),
        verdict = verdict.label(),
        transition = to,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "notification"
    );
    response
}

/// A notification that passed authentication, as typed values.
struct Report {
    trade_no: TradeNo,
    status: String,
    outcome: Outcome,
    /// The amount as received, and as whole yen when it reads as such.
    amount_text: Option<String>,
    amount: Option<Option<u64>>,
    plat_form_trade_no: Option<String>,
    message: Option<String>,
    kept: std::collections::BTreeMap<String, String>,
}

impl<S, K, M> App<S, K, M>
where
    S: OrderStore,
    K: SecretSource,
    M: Metrics,
{
    async fn notify(&self, body: &[u8]) -> (Verdict, Option<TradeNo>) {
        if body.len() > MAX_BODY_BYTES {
            return (Verdict::TooLarge, None);
        }
        let Ok(fields) = ReceivedFields::from_json(body) else {
            return (Verdict::BadRequest, None);
        };
        match self.keyring.verify(&fields).await {
            Ok(Some(_stage)) => {}
            Ok(None) => {
                self.metrics.count(metrics::WEBHOOK_SIGNATURE_REJECTED, 1);
                return (Verdict::Unauthorized, None);
            }
            Err(e) => {
                tracing::error!(error = %e, "the Vexora secret could not be read");
                return (Verdict::SecretError, None);
            }
        }
        // Authenticated: only now are the values trusted enough to be typed.
        let (Some(trade_no), Some(status)) = (fields.get("tradeNo"), fields.get("status")) else {
            return (Verdict::BadRequest, None);
        };
        let Ok(trade_no) = TradeNo::parse(trade_no) else {
            return (Verdict::UnknownOrder, None);
        };
        let report = Report {
            status: status.to_owned(),
            outcome: status_outcome(status),
            amount_text: fields.get("amount").map(str::to_owned),
            amount: fields.get("amount").map(whole_yen),
            plat_form_trade_no: fields.get("platFormTradeNo").map(str::to_owned),
            message: fields.get("message").map(str::to_owned),
            kept: fields
                .iter()
                .filter(|(k, v)| KEPT_FIELDS.contains(k) && !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            trade_no: trade_no.clone(),
        };
        match self.apply(&report).await {
            Ok(verdict) => (verdict, Some(trade_no)),
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "storing the notification failed");
                (Verdict::StorageError, Some(trade_no))
            }
        }
    }

    async fn apply(&self, report: &Report) -> Result<Verdict, StoreError> {
        let now = (self.clock)();
        let entry = HistoryEntry {
            at: now,
            source: "webhook".into(),
            status: report.status.clone(),
            plat_form_trade_no: report.plat_form_trade_no.clone(),
            amount: report.amount_text.clone(),
        };
        let expected_amount = match report.amount {
            None => None,
            Some(Some(yen)) => Amount::new(yen).ok(),
            Some(None) => None,
        };
        let amount_unreadable = matches!(report.amount, Some(None))
            || matches!(report.amount, Some(Some(yen)) if Amount::new(yen).is_err());
        if amount_unreadable {
            // Not a whole amount (e.g. `1500.50`): it cannot match any order. Keep it, move nothing.
            return match self.store.get(&report.trade_no).await? {
                None => Ok(Verdict::UnknownOrder),
                Some(_) => {
                    self.flag(report, &entry, "amount_mismatch", Verdict::AmountMismatch)
                        .await
                }
            };
        }
        let reported = report.outcome.reported();
        let transition = Transition {
            answer: Some(VexoraAnswer {
                code: None,
                status: Some(report.status.clone()),
                message: report.message.clone(),
                plat_form_trade_no: report.plat_form_trade_no.clone(),
            }),
            expected_amount,
            history: Some(entry.clone()),
            check_after: (reported.target() == OrderStatus::Processing)
                .then_some(now + self.processing_age),
            ..Transition::to(reported.target(), now)
        };
        let current = match self.store.transition(&report.trade_no, &transition).await? {
            Transitioned::NotFound => return Ok(Verdict::UnknownOrder),
            Transitioned::Applied(order) => {
                if let Outcome::Unconfirmed(_) = report.outcome {
                    return self
                        .flag_only(report, "undocumented_status", Verdict::UndocumentedStatus)
                        .await;
                }
                return Ok(Verdict::Applied(order.status));
            }
            Transitioned::Rejected(current) => current,
        };
        if let Some(amount) = expected_amount
            && amount != current.amount
        {
            return self
                .flag(report, &entry, "amount_mismatch", Verdict::AmountMismatch)
                .await;
        }
        if let Outcome::Unconfirmed(_) = report.outcome {
            return self
                .flag(
                    report,
                    &entry,
                    "undocumented_status",
                    Verdict::UndocumentedStatus,
                )
                .await;
        }
        match decide(current.status, reported) {
            Decision::Duplicate => self.keep(report, &entry, Verdict::Duplicate).await,
            Decision::Stale => self.keep(report, &entry, Verdict::Stale).await,
            Decision::Anomaly => {
                self.flag(report, &entry, "contradicts_final_state", Verdict::Anomaly)
                    .await
            }
            // The guard and the returned item are the same version, so a rejected move cannot
            // be allowed; should it ever be, answer 503 so Vexora delivers again.
            Decision::Move(_) => Ok(Verdict::StorageError),
        }
    }

    async fn keep(
        &self,
        report: &Report,
        entry: &HistoryEntry,
        verdict: Verdict,
    ) -> Result<Verdict, StoreError> {
        self.store.append_history(&report.trade_no, entry).await?;
        Ok(verdict)
    }

    /// Keeps the notification and an anomaly on the order, raises the alarm metric.
    async fn flag(
        &self,
        report: &Report,
        entry: &HistoryEntry,
        reason: &str,
        verdict: Verdict,
    ) -> Result<Verdict, StoreError> {
        self.store.append_history(&report.trade_no, entry).await?;
        self.flag_only(report, reason, verdict).await
    }

    async fn flag_only(
        &self,
        report: &Report,
        reason: &str,
        verdict: Verdict,
    ) -> Result<Verdict, StoreError> {
        let anomaly = Anomaly {
            at: (self.clock)(),
            source: "webhook".into(),
            reason: reason.into(),
            report: report.kept.clone(),
        };
        self.store
            .record_anomaly(&report.trade_no, &anomaly)
            .await?;
        self.metrics.count(metrics::WEBHOOK_ANOMALY, 1);
        tracing::warn!(
            trade_no = report.trade_no.as_str(),
            reason,
            "webhook anomaly recorded"
        );
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests;
