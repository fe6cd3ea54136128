//! HTTP ⇄ domain for Vexora's status notifications (docs/contract.md § Webhook,
//! `docs/vexora-api.md` §5):
//! authenticate the raw fields first, then apply the report with one guarded write.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use payout_app::apply::{Applied, Applier, Report, Schedule};
use payout_app::metrics::{self, Metrics};
use payout_app::secrets::{Keyring, SecretStore};
use payout_app::store::OrderStore;
use payout_domain::TradeNo;
use payout_domain::order::{AnomalyReason, OrderStatus};
use vexora::signing::{FieldsError, ReceivedFields, SIGN_FIELD};
use vexora::{Notification, NotificationError, Refusal, ReportedAmount};

/// Notifications are small; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The function's dependencies, built once at init.
#[derive(Debug)]
pub struct App<S, K, M> {
    pub store: S,
    pub keyring: Keyring<K>,
    pub metrics: M,
    pub schedule: Schedule,
    pub clock: fn() -> DateTime<Utc>,
}

/// What happened to one notification: the log's `verdict` and the answer to Vexora.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Applied(OrderStatus),
    Duplicate,
    Stale,
    /// Kept as an anomaly (a contradiction, another amount, an undocumented status).
    Flagged(AnomalyReason),
    /// The signature did not verify.
    Unauthorized,
    /// The body breaks a rule for signed bodies (docs/contract.md § Security rules).
    Refused(Refusal),
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
            Self::Flagged(reason) => reason.label(),
            Self::Unauthorized => "unauthorized",
            Self::Refused(refusal) => refusal.label(),
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownOrder => "unknown_order",
            Self::StorageError => "storage_error",
            Self::SecretError => "secret_error",
        }
    }

    /// What Vexora expects (`docs/vexora-api.md` §5): `200 OK` (plain text) once the report is
    /// durably handled.
    fn response(self) -> Response<Body> {
        let (status, text) = match self {
            Self::Applied(_) | Self::Duplicate | Self::Stale | Self::Flagged(_) => {
                (StatusCode::OK, "OK")
            }
            Self::Unauthorized | Self::Refused(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
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
    K: SecretStore,
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

impl<S, K, M> App<S, K, M>
where
    S: OrderStore,
    K: SecretStore,
    M: Metrics,
{
    async fn notify(&self, body: &[u8]) -> (Verdict, Option<TradeNo>) {
        if body.len() > MAX_BODY_BYTES {
            return (Verdict::TooLarge, None);
        }
        let fields = match ReceivedFields::from_json(body) {
            Ok(fields) => fields,
            Err(FieldsError::Duplicate(_)) => {
                return self.refuse(Verdict::Refused(Refusal::DuplicateField));
            }
            Err(FieldsError::NotAnObject | FieldsError::NestedValue(_)) => {
                return (Verdict::BadRequest, None);
            }
        };
        // Rules that need no secret first: such bodies never cost a secret read.
        if let Err(refusal) = Notification::check_names(fields.names()) {
            return self.refuse(Verdict::Refused(refusal));
        }
        if fields.get(SIGN_FIELD).is_none() {
            return self.refuse(Verdict::Unauthorized);
        }
        let now = (self.clock)();
        match self.authenticate(&fields, now).await {
            Ok(true) => {}
            Ok(false) => return self.refuse(Verdict::Unauthorized),
            Err(verdict) => return (verdict, None),
        }
        // Authenticated: only now are the values trusted enough to be typed.
        let notification = match Notification::parse(&fields) {
            Ok(notification) => notification,
            Err(NotificationError::Missing(_)) => return (Verdict::BadRequest, None),
            Err(NotificationError::Refused(refusal)) => {
                return self.refuse(Verdict::Refused(refusal));
            }
            Err(NotificationError::UnknownTradeNo) => return (Verdict::UnknownOrder, None),
        };
        let trade_no = notification.trade_no.clone();
        let applier = Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: self.schedule,
        };
        let applied = applier
            .apply(&trade_no, &Report::from_notification(&notification), now)
            .await;
        let verdict = match applied {
            Ok(Applied::Moved(order)) => Verdict::Applied(order.status),
            Ok(Applied::Duplicate(_)) => Verdict::Duplicate,
            // A notification always says something; nothing to do is not news.
            Ok(Applied::Stale(_) | Applied::Unknown) => Verdict::Stale,
            Ok(Applied::Flagged(_, reason)) => Verdict::Flagged(reason),
            Ok(Applied::NotFound) => Verdict::UnknownOrder,
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "storing the notification failed");
                Verdict::StorageError
            }
        };
        (verdict, Some(trade_no))
    }

    /// Whether a known secret signed `fields`. A failure re-reads the secret (a rotation may have
    /// happened) only for a notification that could be genuine: it names an order we hold, for
    /// its amount. Forged bodies about nothing we know never cost a secret read; the rest cost at
    /// most one per interval ([`payout_app::secrets::MIN_REFRESH_INTERVAL`]).
    async fn authenticate(
        &self,
        fields: &ReceivedFields,
        now: DateTime<Utc>,
    ) -> Result<bool, Verdict> {
        let secret_error = |e: vexora::credentials::SecretError| {
            tracing::error!(error = %e, "the Vexora secret could not be read");
            Verdict::SecretError
        };
        if self
            .keyring
            .verify(fields, now)
            .await
            .map_err(secret_error)?
            .is_some()
        {
            return Ok(true);
        }
        let Ok(claimed) = Notification::parse(fields) else {
            return Ok(false);
        };
        let known = match self.store.get(&claimed.trade_no).await {
            Ok(order) => order,
            Err(e) => {
                tracing::error!(error = %e, "reading the order for a refresh failed");
                return Err(Verdict::StorageError);
            }
        };
        let plausible =
            known.is_some_and(|order| claimed.amount == ReportedAmount::Whole(order.amount.yen()));
        if !plausible {
            return Ok(false);
        }
        Ok(self
            .keyring
            .verify_refreshed(fields, now)
            .await
            .map_err(secret_error)?
            .is_some())
    }

    fn refuse(&self, verdict: Verdict) -> (Verdict, Option<TradeNo>) {
        self.metrics.count(metrics::WEBHOOK_SIGNATURE_REJECTED, 1);
        (verdict, None)
    }
}

#[cfg(test)]
mod tests;
