//! HTTP ⇄ domain for the merchant API (docs/contract.md § `POST /payouts`,
//! docs/contract.md § `GET /payouts/{tradeNo}`, docs/contract.md § `GET /balance`): routing, the
//! submit flow, idempotency, reads and refreshes, and the balance. What a request came to and
//! its HTTP answer are `answer`; batches are `batches`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use payout_app::apply::{Applied, Applier, Schedule, settle_abandoned};
use payout_app::balance::{BalanceCache, BalanceError};
use payout_app::batch::{BatchQueue, BatchStore};
use payout_app::intent::{Intent, store_intent};
use payout_app::metrics::Metrics;
use payout_app::query::query_and_apply;
use payout_app::secrets::{SecretStore, Secrets};
use payout_app::store::OrderStore;
use payout_domain::order::{Order, OrderStatus};
use payout_domain::{PayoutRequest, TradeNo, ValidationErrors};
use url::Url;
use vexora;
use vexora::{Exchange, PayoutGateway};

/// Bodies larger than this are refused before parsing (a payout is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A merchant may make `?refresh=true` query Vexora about one order at most this often.
pub const REFRESH_INTERVAL: chrono::Duration = chrono::Duration::seconds(10);

/// How many times a generated `tradeNo` is drawn again if it collides with an existing one.
const GENERATED_TRADE_NO_ATTEMPTS: usize = 3;

/// The function's dependencies, built once at init and lent to every request.
#[derive(Debug)]
pub struct App<S, G, K, M, Q> {
    pub store: S,
    pub gateway: G,
    pub secrets: Secrets<K>,
    pub metrics: M,
    pub notify_url: Url,
    /// Age after which a `PENDING` order is stored as `UNCONFIRMED` ([`payout_domain::order::pending_abandoned_after`]).
    pub abandoned_after: chrono::Duration,
    pub schedule: Schedule,
    pub clock: fn() -> DateTime<Utc>,
    /// `GET /balance` readings, kept for [`payout_app::balance::CACHE_TTL`].
    pub balance: BalanceCache,
    /// Where batch items wait (`PAYOUT_BATCH_QUEUE_URL`); `None`: batches are not served.
    pub queue: Option<Q>,
}

mod answer;
mod batches;

use answer::{Answer, Refresh};

/// Handles one request. Every anticipated outcome is a response; nothing here panics.
pub async fn handle<S, G, K, M, Q>(app: &App<S, G, K, M, Q>, request: Request) -> Response<Body>
where
    S: OrderStore + BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
    Q: BatchQueue,
{
    let started = Instant::now();
    let path = route_path(&request);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let outcome = match (segments.as_slice(), request.method()) {
        (["payouts"], &Method::POST) => app.submit(request.body()).await,
        (["payouts"], _) => Answer::MethodNotAllowed("POST"),
        (["payouts", trade_no], &Method::GET) => app.read(trade_no, &request).await,
        (["payouts", _], _) => Answer::MethodNotAllowed("GET"),
        (["balance"], &Method::GET) => app.balance().await,
        (["balance"], _) => Answer::MethodNotAllowed("GET"),
        (["batches"], &Method::POST) => app.submit_batch(request.body().as_ref()).await,
        (["batches"], _) => Answer::MethodNotAllowed("POST"),
        (["batches", batch_id], &Method::GET) => app.read_batch(batch_id, &request).await,
        (["batches", _], _) => Answer::MethodNotAllowed("GET"),
        _ => Answer::NoRoute,
    };
    let response = outcome.response();
    tracing::info!(
        trade_no = outcome.trade_no().map(TradeNo::as_str),
        batch_id = outcome.batch_id(),
        outcome = outcome.label(),
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

impl<S, G, K, M, Q> App<S, G, K, M, Q>
where
    S: OrderStore + BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
    Q: BatchQueue,
{
    fn applier(&self) -> Applier<'_, S, M> {
        Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: self.schedule,
        }
    }

    async fn balance(&self) -> Answer {
        match self
            .balance
            .get(&self.gateway, &self.secrets, &self.metrics, (self.clock)())
            .await
        {
            Ok(balance) => Answer::Balance(balance),
            Err(BalanceError::Secret(e)) => {
                tracing::error!(error = %e, "the Vexora secret could not be read for the balance");
                Answer::BalanceUnavailable
            }
            Err(BalanceError::Unavailable(_)) => Answer::BalanceUnavailable,
        }
    }

    async fn submit(&self, body: &Body) -> Answer {
        let bytes: &[u8] = body.as_ref();
        if bytes.len() > MAX_BODY_BYTES {
            return Answer::TooLarge;
        }
        let payout = match PayoutRequest::from_json(bytes) {
            Ok(payout) => payout,
            Err(ValidationErrors(fields)) => return Answer::Invalid(fields),
        };
        // The secret comes first: failing here leaves nothing behind.
        let version = match self.secrets.current().await {
            Ok(version) => version,
            Err(e) => {
                tracing::error!(error = %e, "the Vexora secret could not be read");
                return Answer::SecretUnavailable;
            }
        };
        let credentials = &version.credentials;
        let order = match self.store_new(&payout).await {
            Ok(Intent::New(order)) => order,
            Ok(Intent::Existing(existing)) => match self.half_stored(existing).await {
                // A half-stored batch item, withdrawn: this payout is stored as never before.
                Ok(None) => match self.store_new(&payout).await {
                    Ok(Intent::New(order)) => order,
                    Ok(Intent::Existing(existing)) => return self.repeat(&payout, existing).await,
                    Err(trade_no) => return Answer::StorageUnavailable(trade_no),
                },
                Ok(Some(existing)) => return self.repeat(&payout, existing).await,
                Err(trade_no) => return Answer::StorageUnavailable(Some(trade_no)),
            },
            Err(trade_no) => return Answer::StorageUnavailable(trade_no),
        };
        let exchange = payout_app::submit::send(
            &self.gateway,
            credentials,
            &payout,
            &order,
            &self.notify_url,
        )
        .await;
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

    /// An existing order that is a half-stored batch item (queued, listed by no accepted batch:
    /// its batch request failed half-way) is withdrawn, so `POST /payouts` answers as for a
    /// payout never stored (docs/contract.md § Half-stored batches): `None`. Any other order is
    /// returned as it is. The `tradeNo` when storage failed (nothing was sent).
    async fn half_stored(&self, existing: Order) -> Result<Option<Order>, TradeNo> {
        // A batch request may still be storing it (and then accept it): only an item no batch
        // listed for longer than any request runs is half-stored; until then it is in flight.
        let settled =
            (self.clock)() - existing.updated_at >= payout_app::batch::HALF_STORED_SETTLED;
        if !existing.queued || !settled {
            return Ok(Some(existing));
        }
        match payout_app::batch::listed_by_an_accepted_batch(&self.store, &existing).await {
            Ok(true) => return Ok(Some(existing)),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(trade_no = existing.trade_no.as_str(), error = %e, "reading a batch failed");
                return Err(existing.trade_no);
            }
        }
        match self
            .store
            .withdraw_queued(&existing.trade_no, existing.updated_at)
            .await
        {
            Ok(true) => Ok(None),
            // Listed or taken meanwhile (or our delete landed and its retry was refused): answered
            // as it stands now.
            Ok(false) => match self.store.get(&existing.trade_no).await {
                Ok(now) => Ok(now),
                Err(_) => Err(existing.trade_no),
            },
            Err(e) => {
                tracing::error!(trade_no = existing.trade_no.as_str(), error = %e, "withdrawing a half-stored item failed");
                Err(existing.trade_no)
            }
        }
    }

    /// A second submit of a known `tradeNo`, answered from the stored order without a call.
    async fn repeat(&self, payout: &PayoutRequest, existing: Order) -> Answer {
        if existing.fingerprint != payout.fingerprint() {
            return Answer::IdempotencyMismatch(existing.trade_no);
        }
        let trade_no = existing.trade_no.clone();
        match self.settle(existing).await {
            // Withdrawn since (its submit never reached Vexora): a retry starts afresh.
            None => Answer::Withdrawn(trade_no),
            Some(stored) if stored.status == OrderStatus::Pending => Answer::InFlight(trade_no),
            Some(stored) => Answer::Duplicate(Box::new(stored)),
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

    /// Records Vexora's answer (the steps every submit shares, [`payout_app::submit::record`])
    /// and answers the merchant.
    async fn record(&self, order: Order, exchange: &Exchange) -> Answer {
        let trade_no = order.trade_no.clone();
        // Recorded on this submit's own order only, never on a later intent for the tradeNo.
        let report = payout_app::submit::report(&order, exchange);
        let not_received = matches!(report.outcome, vexora::Outcome::NotReceived(_));
        // Certainly not sent: withdraw the intent (only ours, only while PENDING) so that a
        // retry starts afresh.
        let intent = order.intent_id.as_deref().unwrap_or_default();
        let withdraw = || self.store.delete_pending(&trade_no, intent);
        match payout_app::submit::record(&self.applier(), &trade_no, &report, self.clock, withdraw)
            .await
        {
            payout_app::submit::Recorded::Undone => Answer::VexoraUnreachable(trade_no),
            // Our order is gone: only the withdrawal of an intent that never left removes one
            // (it landed though it reported an error). Nothing was sent and nothing is kept.
            payout_app::submit::Recorded::Applied(Applied::NotFound) if not_received => {
                Answer::VexoraUnreachable(trade_no)
            }
            // A webhook may have got there first: what is stored is the truth.
            payout_app::submit::Recorded::Applied(applied) => match applied.order() {
                Some(stored) => Answer::Recorded(Box::new(stored.clone()), report.outcome.label()),
                None => unrecorded(order),
            },
            // Certainly never sent, and whether the intent is still there cannot be told: the
            // truthful answer is that nothing was sent (a retry finds the order, if any, in
            // flight until it is abandoned, then answered as it stands).
            payout_app::submit::Recorded::Failed(_) if not_received => {
                Answer::VexoraUnreachable(trade_no)
            }
            payout_app::submit::Recorded::Failed(_) => unrecorded(order),
        }
    }

    async fn read(&self, trade_no: &str, request: &Request) -> Answer {
        let refresh = match parse_read_query(request) {
            Ok(refresh) => refresh,
            Err(message) => return Answer::InvalidQuery(message),
        };
        let Ok(trade_no) = TradeNo::parse(trade_no) else {
            return Answer::NotFound(None);
        };
        let order = match self.store.get(&trade_no).await {
            Ok(Some(order)) => self.settle(order).await,
            Ok(None) => None,
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "reading the order failed");
                return Answer::ReadUnavailable(trade_no);
            }
        };
        let Some(order) = order else {
            return Answer::NotFound(Some(trade_no));
        };
        let unresolved = !order.status.is_final() && order.status != OrderStatus::Pending;
        if refresh && unresolved {
            self.refresh(order).await
        } else {
            Answer::Found(Box::new(order))
        }
    }

    /// Resolves a non-final order once against Vexora's query API, at most once per
    /// [`REFRESH_INTERVAL`] per order. Any failure answers the stored order.
    async fn refresh(&self, order: Order) -> Answer {
        let now = (self.clock)();
        let refreshed = |order, how| Answer::Refreshed(Box::new(order), how);
        match self
            .store
            .claim_refresh(&order.trade_no, now, REFRESH_INTERVAL)
            .await
        {
            Ok(true) => {}
            Ok(false) => return refreshed(order, Refresh::RateLimited),
            Err(e) => {
                tracing::error!(trade_no = order.trade_no.as_str(), error = %e, "claiming a refresh failed");
                return refreshed(order, Refresh::Failed);
            }
        }
        let resolved =
            query_and_apply(&self.applier(), &self.gateway, &self.secrets, &order, now).await;
        match resolved {
            Ok(Applied::Moved(o)) => refreshed(o, Refresh::Moved),
            Ok(Applied::Duplicate(o) | Applied::Stale(o) | Applied::Flagged(o, _)) => {
                refreshed(o, Refresh::Unchanged)
            }
            Ok(Applied::Unknown | Applied::NotFound) => refreshed(order, Refresh::Unknown),
            Err(e) => {
                tracing::error!(trade_no = order.trade_no.as_str(), error = %e, "refresh failed");
                refreshed(order, Refresh::Failed)
            }
        }
    }
}

/// The intent is durable as `PENDING`; once abandoned it is stored `UNCONFIRMED` and the
/// reconciler resolves it by query. It is shown `UNCONFIRMED` now, never `FAILED`.
fn unrecorded(mut order: Order) -> Answer {
    order.status = OrderStatus::Unconfirmed;
    Answer::Unrecorded(Box::new(order))
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

#[cfg(test)]
mod tests;
