//! HTTP ⇄ domain for the merchant API (contract § `POST /payouts`, § `GET /payouts/{tradeNo}`):
//! routing, the submit flow, idempotency answers, and the order view.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use payout_core::apply::{Applied, Applier, Report, Schedule, settle_abandoned};
use payout_core::domain::{FieldError, PayoutRequest, TradeNo, ValidationErrors};
use payout_core::intent::{Intent, store_intent};
use payout_core::metrics::Metrics;
use payout_core::order::{Order, OrderStatus};
use payout_core::resolve::query_and_apply;
use payout_core::secrets::{SecretStore, Secrets};
use payout_core::store::{OrderStore, timestamp};
use payout_core::vexora::{DisbursementRequest, Exchange, Operation, Outcome, PayoutGateway};
use serde::Serialize;
use url::Url;

/// Bodies larger than this are refused before parsing (a payout is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A merchant may make `?refresh=true` query Vexora about one order at most this often.
pub const REFRESH_INTERVAL: chrono::Duration = chrono::Duration::seconds(10);

/// How many times a generated `tradeNo` is drawn again if it collides with an existing one.
const GENERATED_TRADE_NO_ATTEMPTS: usize = 3;

/// The function's dependencies, built once at init and lent to every request.
#[derive(Debug)]
pub struct App<S, G, K, M> {
    pub store: S,
    pub gateway: G,
    pub secrets: Secrets<K>,
    pub metrics: M,
    pub notify_url: Url,
    /// Age after which a `PENDING` order is stored as `UNCONFIRMED` ([`payout_core::order::pending_abandoned_after`]).
    pub abandoned_after: chrono::Duration,
    pub schedule: Schedule,
    pub clock: fn() -> DateTime<Utc>,
}

/// Every answer that is not an order, with its one status mapping.
#[derive(Debug)]
enum ApiError {
    Validation(Vec<FieldError>),
    InvalidQuery(String),
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed(&'static str),
    InFlight,
    IdempotencyMismatch,
    /// Our storage or secret failed before anything was sent to Vexora: safe to retry.
    Unavailable,
    /// Reading an order failed: retry the read.
    ReadUnavailable,
    /// Vexora could not be reached at all; nothing was sent and nothing was kept.
    VexoraUnreachable,
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
}

impl ApiError {
    fn response(&self, trade_no: Option<&str>) -> Response<Body> {
        let (status, error, message) = match self {
            Self::Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "the payout is not valid; see fields",
            ),
            Self::InvalidQuery(message) => {
                (StatusCode::BAD_REQUEST, "invalid_query", message.as_str())
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body must be at most 16 KiB",
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such payout or route",
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            ),
            Self::InFlight => (
                StatusCode::CONFLICT,
                "in_flight",
                "the first submit of this tradeNo is still in progress; retry shortly",
            ),
            Self::IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "this tradeNo was already used for a different payout",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; nothing was sent to Vexora; retry with the same tradeNo",
            ),
            Self::ReadUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; retry the read shortly",
            ),
            Self::VexoraUnreachable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "vexora_unreachable",
                "Vexora could not be reached; nothing was sent; retry with the same tradeNo",
            ),
        };
        let fields = match self {
            Self::Validation(fields) => Some(fields.as_slice()),
            _ => None,
        };
        let trade_no = match self {
            Self::InFlight
            | Self::IdempotencyMismatch
            | Self::Unavailable
            | Self::ReadUnavailable
            | Self::VexoraUnreachable => trade_no,
            Self::Validation(_)
            | Self::InvalidQuery(_)
            | Self::PayloadTooLarge
            | Self::NotFound
            | Self::MethodNotAllowed(_) => None,
        };
        let mut response = json(
            status,
            &ErrorBody {
                error,
                message,
                fields,
                trade_no,
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

/// What the summary log line says about a request.
struct Summary {
    trade_no: Option<String>,
    outcome: &'static str,
}

impl Summary {
    fn new(trade_no: Option<&TradeNo>, outcome: &'static str) -> Self {
        Self {
            trade_no: trade_no.map(|t| t.as_str().to_owned()),
            outcome,
        }
    }
}

/// Handles one request. Every anticipated outcome is a response; nothing here panics.
pub async fn handle<S, G, K, M>(app: &App<S, G, K, M>, request: Request) -> Response<Body>
where
    S: OrderStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
{
    let started = Instant::now();
    let path = route_path(&request);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (result, summary) = match (segments.as_slice(), request.method()) {
        (["payouts"], &Method::POST) => app.submit(request.body()).await,
        (["payouts"], _) => (
            Err(ApiError::MethodNotAllowed("POST")),
            Summary::new(None, "method_not_allowed"),
        ),
        (["payouts", trade_no], &Method::GET) => app.read(trade_no, &request).await,
        (["payouts", _], _) => (
            Err(ApiError::MethodNotAllowed("GET")),
            Summary::new(None, "method_not_allowed"),
        ),
        _ => (Err(ApiError::NotFound), Summary::new(None, "no_route")),
    };
    let response = result.unwrap_or_else(|e| e.response(summary.trade_no.as_deref()));
    tracing::info!(
        trade_no = summary.trade_no.as_deref(),
        outcome = summary.outcome,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The path without the API Gateway stage, so routing works with `$default` and named stages.
fn route_path(request: &Request) -> String {
    let raw = request.raw_http_path();
    let raw = if raw.is_empty() {
        request.uri().path()
    } else {
        raw
    };
    #[allow(irrefutable_let_patterns)] // one variant with only the HTTP API feature enabled
    if let RequestContext::ApiGatewayV2(ctx) = request.request_context()
        && let Some(stage) = ctx.stage.as_deref().filter(|s| *s != "$default")
        && let Some(rest) = raw.strip_prefix('/').and_then(|r| r.strip_prefix(stage))
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return rest.to_owned();
    }
    raw.to_owned()
}

type Answer = (Result<Response<Body>, ApiError>, Summary);

impl<S, G, K, M> App<S, G, K, M>
where
    S: OrderStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
{
    fn applier(&self) -> Applier<'_, S, M> {
        Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: self.schedule,
        }
    }

    async fn submit(&self, body: &Body) -> Answer {
        let bytes: &[u8] = body.as_ref();
        if bytes.len() > MAX_BODY_BYTES {
            return (
                Err(ApiError::PayloadTooLarge),
                Summary::new(None, "too_large"),
            );
        }
        let payout = match PayoutRequest::from_json(bytes) {
            Ok(payout) => payout,
            Err(ValidationErrors(fields)) => {
                return (
                    Err(ApiError::Validation(fields)),
                    Summary::new(None, "invalid"),
                );
            }
        };
        // The secret comes first: failing here leaves nothing behind.
        let version = match self.secrets.current().await {
            Ok(version) => version,
            Err(e) => {
                tracing::error!(error = %e, "the Vexora secret could not be read");
                return (
                    Err(ApiError::Unavailable),
                    Summary::new(None, "secret_unavailable"),
                );
            }
        };
        let credentials = &version.credentials;
        let order = match self.store_new(&payout).await {
            Ok(Intent::New(order)) => order,
            Ok(Intent::Existing(existing)) => return self.repeat(&payout, existing).await,
            Err(trade_no) => {
                return (
                    Err(ApiError::Unavailable),
                    Summary::new(trade_no.as_ref(), "storage_error"),
                );
            }
        };
        let body = DisbursementRequest::signed(
            &payout,
            &order.trade_no,
            &self.notify_url,
            order.created_at.timestamp_millis(),
            &credentials.app_secret,
        );
        let exchange = self.gateway.submit(credentials, &body).await;
        self.record(order, &exchange).await
    }

    /// Stores a new `PENDING` order (exactly once, [`store_intent`]). Returns the existing order
    /// on a `tradeNo` conflict, or the `tradeNo` (if known) when storage failed.
    async fn store_new(&self, payout: &PayoutRequest) -> Result<Intent, Option<TradeNo>> {
        let attempts = match payout.trade_no {
            Some(_) => 1,
            None => GENERATED_TRADE_NO_ATTEMPTS,
        };
        let mut last = None;
        for _ in 0..attempts {
            let now = (self.clock)();
            let trade_no = payout
                .trade_no
                .clone()
                .unwrap_or_else(|| TradeNo::generate(now, &mut rand::rng()));
            let order = Order::pending(trade_no.clone(), payout, now, now + self.abandoned_after);
            match store_intent(&self.store, order).await {
                Ok(Intent::Existing(_)) if payout.trade_no.is_none() => last = Some(trade_no),
                Ok(intent) => return Ok(intent),
                Err(e) => {
                    tracing::error!(trade_no = trade_no.as_str(), error = %e, "storing the order failed");
                    return Err(Some(trade_no));
                }
            }
        }
        tracing::error!("generated tradeNo collided {GENERATED_TRADE_NO_ATTEMPTS} times");
        Err(last)
    }

    /// A second submit of a known `tradeNo`, answered from the stored order without a call.
    async fn repeat(&self, payout: &PayoutRequest, existing: Order) -> Answer {
        let trade_no = existing.trade_no.clone();
        let summary = |outcome| Summary::new(Some(&trade_no), outcome);
        if existing.fingerprint != payout.fingerprint() {
            return (Err(ApiError::IdempotencyMismatch), summary("mismatch"));
        }
        let Some(stored) = self.settle(existing).await else {
            // Withdrawn since (its submit never reached Vexora): a retry starts afresh.
            return (Err(ApiError::Unavailable), summary("withdrawn"));
        };
        match stored.status {
            OrderStatus::Pending => (Err(ApiError::InFlight), summary("in_flight")),
            _ => (
                Ok(order_response(StatusCode::OK, &stored)),
                summary("duplicate"),
            ),
        }
    }

    /// The order as it must be stored now: an abandoned `PENDING` order becomes `UNCONFIRMED`.
    /// If storing that fails the order is still shown `UNCONFIRMED` (never a 5xx, which would
    /// say nothing was sent, for an order that exists); the next reader stores it. `None` when
    /// the order is gone.
    async fn settle(&self, order: Order) -> Option<Order> {
        let now = (self.clock)();
        let abandoned = order.is_abandoned(now, self.abandoned_after);
        let shown = abandoned.then(|| Order {
            status: OrderStatus::Unconfirmed,
            ..order.clone()
        });
        match settle_abandoned(&self.store, order, now, self.abandoned_after).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(trade_no = shown.as_ref().map(|o| o.trade_no.as_str()), error = %e, "storing an abandoned order as UNCONFIRMED failed");
                shown
            }
        }
    }

    /// Records Vexora's answer (the one rule, [`Applier::apply`]) and answers the merchant.
    async fn record(&self, order: Order, exchange: &Exchange) -> Answer {
        let trade_no = order.trade_no.clone();
        let mut report = Report::from_exchange(Operation::Submit, &trade_no, exchange);
        // Recorded on this submit's own order only, never on a later intent for the tradeNo.
        report.intent.clone_from(&order.intent_id);
        let label = report.outcome.label();
        let not_received = matches!(report.outcome, Outcome::NotReceived(_));
        let withdrawn = (
            ApiError::VexoraUnreachable,
            Summary::new(Some(&trade_no), label),
        );
        if not_received {
            // Certainly not sent: withdraw the intent (only ours, only while PENDING) so that a
            // retry starts afresh.
            let intent = order.intent_id.as_deref().unwrap_or_default();
            match self.store.delete_pending(&trade_no, intent).await {
                Ok(true) => {
                    tracing::warn!(
                        trade_no = trade_no.as_str(),
                        "Vexora unreachable; order withdrawn"
                    );
                    return (Err(withdrawn.0), withdrawn.1);
                }
                Ok(false) | Err(_) => {
                    tracing::warn!(
                        trade_no = trade_no.as_str(),
                        "Vexora unreachable; withdrawing the order may have failed"
                    );
                }
            }
        }
        let applied = self
            .applier()
            .apply(&trade_no, &report, (self.clock)())
            .await;
        let stored = match &applied {
            // Our order is gone: only the withdrawal of an intent that never left removes one
            // (it landed though it reported an error). Nothing was sent and nothing is kept.
            Ok(Applied::NotFound) if not_received => return (Err(withdrawn.0), withdrawn.1),
            // A webhook may have got there first: what is stored is the truth.
            Ok(applied) => applied.order().cloned(),
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "recording Vexora's answer failed");
                None
            }
        };
        let Some(stored) = stored else {
            // The intent is durable as PENDING; once abandoned it is stored as UNCONFIRMED and
            // the reconciler resolves it by query. Never report it failed.
            let mut shown = order;
            shown.status = OrderStatus::Unconfirmed;
            return (
                Ok(order_response(StatusCode::ACCEPTED, &shown)),
                Summary::new(Some(&trade_no), "unrecorded"),
            );
        };
        let status = match stored.status {
            OrderStatus::Pending | OrderStatus::Unconfirmed => StatusCode::ACCEPTED,
            OrderStatus::Processing | OrderStatus::Succeeded | OrderStatus::Failed => {
                StatusCode::CREATED
            }
        };
        (
            Ok(order_response(status, &stored)),
            Summary::new(Some(&trade_no), label),
        )
    }

    async fn read(&self, trade_no: &str, request: &Request) -> Answer {
        let refresh = match parse_read_query(request) {
            Ok(refresh) => refresh,
            Err(message) => {
                return (
                    Err(ApiError::InvalidQuery(message)),
                    Summary::new(None, "invalid_query"),
                );
            }
        };
        let Ok(trade_no) = TradeNo::parse(trade_no) else {
            return (Err(ApiError::NotFound), Summary::new(None, "not_found"));
        };
        let found = match self.store.get(&trade_no).await {
            Ok(Some(order)) => self.settle(order).await,
            Ok(None) => None,
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "reading the order failed");
                return (
                    Err(ApiError::ReadUnavailable),
                    Summary::new(Some(&trade_no), "storage_error"),
                );
            }
        };
        let Some(order) = found else {
            return (
                Err(ApiError::NotFound),
                Summary::new(Some(&trade_no), "not_found"),
            );
        };
        let unresolved = !order.status.is_final() && order.status != OrderStatus::Pending;
        if !(refresh && unresolved) {
            return (
                Ok(order_response(StatusCode::OK, &order)),
                Summary::new(Some(&trade_no), "found"),
            );
        }
        let (order, outcome) = self.refresh(order).await;
        (
            Ok(order_response(StatusCode::OK, &order)),
            Summary::new(Some(&trade_no), outcome),
        )
    }

    /// Resolves a non-final order once against Vexora's query API, at most once per
    /// [`REFRESH_INTERVAL`] per order. Any failure answers the stored order.
    async fn refresh(&self, order: Order) -> (Order, &'static str) {
        let now = (self.clock)();
        match self
            .store
            .claim_refresh(&order.trade_no, now, REFRESH_INTERVAL)
            .await
        {
            Ok(true) => {}
            Ok(false) => return (order, "refresh_rate_limited"),
            Err(e) => {
                tracing::error!(trade_no = order.trade_no.as_str(), error = %e, "claiming a refresh failed");
                return (order, "refresh_failed");
            }
        }
        let resolved =
            query_and_apply(&self.applier(), &self.gateway, &self.secrets, &order, now).await;
        match resolved {
            Ok(Applied::Moved(o)) => (o, "refreshed_moved"),
            Ok(Applied::Duplicate(o) | Applied::Stale(o) | Applied::Flagged(o, _)) => {
                (o, "refreshed_unchanged")
            }
            Ok(Applied::Unknown | Applied::NotFound) => (order, "refreshed_unknown"),
            Err(e) => {
                tracing::error!(trade_no = order.trade_no.as_str(), error = %e, "refresh failed");
                (order, "refresh_failed")
            }
        }
    }
}

fn order_response(status: StatusCode, order: &Order) -> Response<Body> {
    json(status, &OrderView::new(order))
}

/// `refresh=true|false` is the only query parameter `GET` takes.
fn parse_read_query(request: &Request) -> Result<bool, String> {
    let params = request.query_string_parameters();
    let mut refresh = false;
    for (name, value) in params.iter() {
        match (name, value) {
            ("refresh", "true") => refresh = true,
            ("refresh", "false") => {}
            ("refresh", _) => return Err("`refresh` must be `true` or `false`".into()),
            (other, _) => {
                return Err(format!(
                    "unknown query parameter `{}`",
                    other.chars().take(64).collect::<String>()
                ));
            }
        }
    }
    Ok(refresh)
}

/// The order as merchants see it (contract § Order JSON). No PII: the account number is masked.
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

#[cfg(test)]
mod tests;
