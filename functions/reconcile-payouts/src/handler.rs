//! One reconciler run: find due unresolved orders through the index (no scan), claim each so
//! overlapping runs never query twice, resolve it with the shared resolver, back off, and mark
//! orders past the age limit for manual review.

use chrono::{DateTime, Utc};
use payout_core::domain::TradeNo;
use payout_core::metrics::{self, Metrics};
use payout_core::order::OrderStatus;
use payout_core::resolve::{Resolved, backoff, query_and_apply};
use payout_core::secrets::SecretSource;
use payout_core::store::{DueCursor, OrderStore, StoreError};
use payout_core::vexora::PayoutGateway;
use serde::Serialize;

/// Orders read from the index per page.
const PAGE_SIZE: i32 = 25;

/// The reconciler's dependencies and policy, built once at init.
#[derive(Debug)]
pub struct Reconciler<S, G, K, M> {
    pub store: S,
    pub gateway: G,
    pub secrets: K,
    pub metrics: M,
    /// A `PENDING` order younger than this may still have its submit running.
    pub abandoned_after: chrono::Duration,
    pub processing_age: chrono::Duration,
    pub give_up_after: chrono::Duration,
    /// At most this many orders are checked (and queried) per run.
    pub max_orders: u32,
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
}

impl<S, G, K, M> Reconciler<S, G, K, M>
where
    S: OrderStore,
    G: PayoutGateway,
    K: SecretSource,
    M: Metrics,
{
    /// Checks due orders, oldest first, until none are due or `max_orders` were checked.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<RunReport, StoreError> {
        let mut report = RunReport::default();
        let mut cursor: Option<DueCursor> = None;
        'pages: loop {
            let page = self.store.due_for_check(now, PAGE_SIZE, cursor).await?;
            for trade_no in &page.trade_nos {
                if report.checked >= self.max_orders {
                    break 'pages;
                }
                self.check(trade_no, now, &mut report).await;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for (name, value) in [
            (metrics::RECONCILE_CHECKED, report.checked),
            (metrics::RECONCILE_RESOLVED, report.resolved),
            (metrics::RECONCILE_STILL_PENDING, report.still_pending),
            (metrics::STUCK_ORDERS, report.flagged),
        ] {
            self.metrics.count(name, u64::from(value));
        }
        tracing::info!(
            checked = report.checked,
            resolved = report.resolved,
            still_pending = report.still_pending,
            flagged = report.flagged,
            skipped = report.skipped,
            "reconcile run"
        );
        Ok(report)
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
        if order.status == OrderStatus::Pending && now - order.created_at < self.abandoned_after {
            report.skipped += 1;
            return;
        }
        let stuck = now - order.created_at >= self.give_up_after;
        let next = now + backoff(order.check_attempts);
        match self
            .store
            .claim_check(trade_no, seen, next, now, stuck)
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
        let from = order.effective_status(now, self.abandoned_after);
        let result = query_and_apply(
            &self.store,
            &self.gateway,
            &self.secrets,
            &order,
            now,
            self.processing_age,
        )
        .await;
        let (action, to) = match &result {
            Ok(Resolved::Moved(o)) if o.status.is_final() => ("resolved", o.status),
            Ok(Resolved::Moved(o)) => ("advanced", o.status),
            Ok(Resolved::Unchanged(o)) => ("unchanged", o.status),
            Ok(Resolved::Anomaly(o)) => ("anomaly", o.status),
            Ok(Resolved::Unknown) => ("unknown", from),
            Err(_) => ("error", from),
        };
        if to.is_final() && action == "resolved" {
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
            action,
            from = from.as_str(),
            to = to.as_str(),
            attempt = order.check_attempts + 1,
            manual_review = stuck && !to.is_final(),
            "order checked"
        );
    }
}

#[cfg(test)]
mod tests;
