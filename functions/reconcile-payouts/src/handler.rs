//! One reconciler run: find due unresolved orders through the index (no scan), claim each so
//! overlapping runs never query twice, store abandoned `PENDING` orders as `UNCONFIRMED`,
//! resolve with the shared query (`payout_app::query`), back off, mark orders past the age limit for manual
//! review, and start no order the function's remaining time cannot finish.

use std::time::Instant;

use chrono::{DateTime, Utc};
use payout_app::apply::{Applied, Applier, Schedule, backoff, settle_abandoned};
use payout_app::metrics::{self, Metrics};
use payout_app::query::query_and_apply;
use payout_app::secrets::{SecretStore, Secrets};
use payout_app::store::{CheckClaim, DueCursor, OrderStore, StoreError};
use payout_aws::time_budget::MARGIN;
use payout_domain::TradeNo;
use payout_domain::order::OrderStatus;
use serde::Serialize;
use vexora::PayoutGateway;

/// Orders read from the index per page.
const PAGE_SIZE: i32 = 25;

/// The reconciler's dependencies and policy, built once at init.
#[derive(Debug)]
pub struct Reconciler<S, G, K, M, Q> {
    pub store: S,
    pub gateway: G,
    pub secrets: Secrets<K>,
    pub metrics: M,
    /// A `PENDING` order younger than this may still have its submit running.
    pub abandoned_after: chrono::Duration,
    pub schedule: Schedule,
    pub give_up_after: chrono::Duration,
    /// At most this many orders are checked (and queried) per run.
    pub max_orders: u32,
    /// The batch queue: a queued item whose message was lost is put on it again.
    pub queue: Option<Q>,
}

/// What a run did; also the function's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Orders queried in this run.
    pub checked: u32,
    /// Orders the run moved to a final state.
    pub resolved: u32,
    /// Orders queried and still not final.
    pub still_pending: u32,
    /// Orders past the age limit, marked for manual review.
    pub flagged: u32,
    /// Due orders left alone (taken by an overlapping run, or not due any more).
    pub skipped: u32,
    /// The run stopped before its deadline with due orders left (an order cut short keeps its
    /// claim and is checked again after its back-off); the next run takes the rest.
    pub out_of_time: bool,
    /// Queued batch items put on the batch queue again (their message was lost).
    pub requeued: u32,
    /// Queued items that no accepted batch lists (a batch request failed half-way), waiting
    /// for a retry of the batch; counted in `StuckOrders`.
    pub half_stored: u32,
    /// Half-stored items withdrawn (personal data removed): no accepted batch listed them
    /// within a day.
    pub withdrawn: u32,
    /// Vexora's available balance, read after the orders (published as the
    /// `VexoraAvailableBalance` metric); absent when Vexora could not tell or time ran out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_balance: Option<u64>,
}

/// What the run did with one order, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Resolved,
    Advanced,
    Unchanged,
    Anomaly,
    Unknown,
    Error,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Advanced => "advanced",
            Self::Unchanged => "unchanged",
            Self::Anomaly => "anomaly",
            Self::Unknown => "unknown",
            Self::Error => "error",
        }
    }
}

impl<S, G, K, M, Q> Reconciler<S, G, K, M, Q>
where
    S: OrderStore + payout_app::batch::BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
    Q: payout_app::batch::BatchQueue,
{
    /// Checks due orders, oldest first, until none are due, `max_orders` were checked, or
    /// `deadline` (less a margin) comes: the run always answers in time. An order cut short
    /// mid-check is safe: every write is guarded and its claim brings it back after its back-off.
    pub async fn run(
        &self,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<RunReport, StoreError> {
        let mut report = RunReport::default();
        let mut cursor: Option<DueCursor> = None;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(MARGIN)
        };
        // The scheduled balance reading (LowBalanceAlarm), first, so that a backlog of orders
        // never starves it; bounded by the run's time like everything else.
        let time = left();
        if !time.is_zero() {
            let reading = tokio::time::timeout(
                time,
                payout_app::balance::query(&self.gateway, &self.secrets, &self.metrics, now),
            )
            .await;
            match reading {
                Ok(Ok(balance)) => {
                    self.metrics
                        .count(metrics::VEXORA_AVAILABLE_BALANCE, balance.available_amount);
                    report.available_balance = Some(balance.available_amount);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "no balance reading this run"),
                Err(_) => tracing::warn!("no balance reading this run: out of time"),
            }
        }
        'pages: loop {
            let read =
                tokio::time::timeout(left(), self.store.due_for_check(now, PAGE_SIZE, cursor));
            let Ok(page) = read.await else {
                report.out_of_time = true;
                break;
            };
            let page = page?;
            for trade_no in &page.trade_nos {
                if report.checked >= self.max_orders {
                    break 'pages;
                }
                let time = left();
                let in_time = !time.is_zero()
                    && tokio::time::timeout(time, self.check(trade_no, now, &mut report))
                        .await
                        .is_ok();
                if !in_time {
                    report.out_of_time = true;
                    break 'pages;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for (name, value) in [
            (metrics::RECONCILE_RUN, 1),
            (metrics::RECONCILE_CHECKED, report.checked),
            (metrics::RECONCILE_RESOLVED, report.resolved),
            (metrics::RECONCILE_STILL_PENDING, report.still_pending),
            (metrics::STUCK_ORDERS, report.flagged + report.half_stored),
        ] {
            self.metrics.count(name, u64::from(value));
        }
        tracing::info!(
            checked = report.checked,
            resolved = report.resolved,
            still_pending = report.still_pending,
            flagged = report.flagged,
            skipped = report.skipped,
            out_of_time = report.out_of_time,
            "reconcile run"
        );
        Ok(report)
    }

    /// A batch item still queued when it is due: its message was lost (or is in the dead-letter
    /// queue). It goes on the queue again, once per back-off (claimed like a check, so
    /// overlapping runs queue it once); a worker sends it once whatever the copies.
    async fn requeue(
        &self,
        order: &payout_domain::order::Order,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut RunReport,
    ) {
        let Some(queue) = &self.queue else {
            report.skipped += 1;
            return;
        };
        // Only an item that an accepted (committed) batch lists is sent. One that none lists is
        // half-stored (its batch request failed half-way): it waits for a batch that lists it,
        // and is withdrawn once none did for a day (docs/contract.md § Half-stored batches).
        let Ok(committed) =
            payout_app::batch::listed_by_an_accepted_batch(&self.store, order).await
        else {
            report.skipped += 1;
            return;
        };
        let withdraw_at = order.updated_at + payout_app::batch::HALF_STORED_KEPT;
        if !committed && now >= withdraw_at {
            match self
                .store
                .withdraw_queued(&order.trade_no, order.updated_at)
                .await
            {
                Ok(true) => {
                    report.withdrawn += 1;
                    tracing::warn!(
                        trade_no = order.trade_no.as_str(),
                        action = "withdrawn",
                        "a half-stored batch item that no accepted batch lists was withdrawn"
                    );
                }
                Ok(false) | Err(_) => report.skipped += 1,
            }
            return;
        }
        if !committed {
            report.half_stored += 1;
        }
        let next = now + payout_app::batch::REQUEUE_AFTER.max(backoff(order.check_attempts));
        let claim = CheckClaim {
            seen,
            next: if committed {
                next
            } else {
                next.min(withdraw_at)
            },
            now,
            manual_review: false,
        };
        match self.store.claim_check(&order.trade_no, &claim).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                report.skipped += 1;
                return;
            }
        }
        if !committed {
            report.skipped += 1;
            return;
        }
        let message = payout_app::batch::BatchMessage {
            batch_id: order.batch_id.clone().unwrap_or_default(),
            trade_no: order.trade_no.as_str().to_owned(),
        };
        match queue.send(std::slice::from_ref(&message)).await {
            Ok(1) => {
                report.requeued += 1;
                tracing::info!(
                    trade_no = order.trade_no.as_str(),
                    batch_id = message.batch_id,
                    action = "requeued",
                    "a queued batch item went on the queue again"
                );
            }
            _ => {
                report.skipped += 1;
                tracing::warn!(
                    trade_no = order.trade_no.as_str(),
                    "queueing a batch item again failed"
                );
            }
        }
    }

    async fn check(&self, trade_no: &TradeNo, now: DateTime<Utc>, report: &mut RunReport) {
        let order = match self.store.get(trade_no).await {
            Ok(Some(order)) => order,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "reading the order failed");
                report.skipped += 1;
                return;
            }
        };
        let Some(seen) = order
            .check_after
            .filter(|at| *at <= now && !order.status.is_final())
        else {
            report.skipped += 1;
            return;
        };
        if order.queued {
            self.requeue(&order, seen, now, report).await;
            return;
        }
        if order.status == OrderStatus::Pending && !order.is_abandoned(now, self.abandoned_after) {
            report.skipped += 1;
            return;
        }
        // Counted from when its submit started (a batch item may have waited in the queue).
        let stuck = now - order.submit_started() >= self.give_up_after;
        let next = now + backoff(order.check_attempts);
        match self
            .store
            .claim_check(
                trade_no,
                &CheckClaim {
                    seen,
                    next,
                    now,
                    manual_review: stuck,
                },
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                report.skipped += 1;
                return;
            }
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "claiming the order failed");
                report.skipped += 1;
                return;
            }
        }
        report.checked += 1;
        let attempt = order.check_attempts + 1;
        let order = match settle_abandoned(&self.store, order, now, self.abandoned_after).await {
            Ok(Some(order)) => order,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(trade_no = trade_no.as_str(), error = %e, "storing an abandoned order as UNCONFIRMED failed");
                report.still_pending += 1;
                return;
            }
        };
        let from = order.status;
        let applier = Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: self.schedule,
        };
        let result = query_and_apply(&applier, &self.gateway, &self.secrets, &order, now).await;
        let (action, to) = match &result {
            Ok(Applied::Moved(o)) if o.status.is_final() => (Action::Resolved, o.status),
            Ok(Applied::Moved(o)) => (Action::Advanced, o.status),
            Ok(Applied::Duplicate(o) | Applied::Stale(o)) => (Action::Unchanged, o.status),
            Ok(Applied::Flagged(o, _)) => (Action::Anomaly, o.status),
            Ok(Applied::Unknown | Applied::NotFound) => (Action::Unknown, from),
            Err(_) => (Action::Error, from),
        };
        if action == Action::Resolved {
            report.resolved += 1;
        } else if !to.is_final() {
            report.still_pending += 1;
            if stuck {
                report.flagged += 1;
            }
        }
        if let Err(e) = &result {
            tracing::error!(trade_no = trade_no.as_str(), error = %e, "resolving the order failed");
        }
        tracing::info!(
            trade_no = trade_no.as_str(),
            action = action.label(),
            from = from.as_str(),
            to = to.as_str(),
            attempt,
            manual_review = stuck && !to.is_final(),
            "order checked"
        );
    }
}

pub use payout_aws::time_budget::deadline_of;

#[cfg(test)]
mod tests;
