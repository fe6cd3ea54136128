//! In-memory fakes of the ports with the same semantics as the real adapters (the store's
//! behaviour tests run against both).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::domain::TradeNo;
use crate::order::{Anomaly, HistoryEntry, Order, OrderStatus};
use crate::secrets::{SecretError, SecretSource, Stage, VexoraCredentials};
use crate::store::{
    Created, DueCursor, DuePage, OrderStore, StoreError, Transition, Transitioned, schema,
};

/// Orders in a map. `set_unavailable(true)` makes every call fail as if DynamoDB were down.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    orders: Mutex<BTreeMap<TradeNo, Order>>,
    unavailable: AtomicBool,
    failing_operations: Mutex<BTreeSet<&'static str>>,
    calls: AtomicUsize,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    /// Makes only the named operation (`create`, `get`, `transition`, `delete_pending`,
    /// `record_anomaly`, `due_for_check`) fail, e.g. recording an answer after a stored intent.
    pub fn fail_operation(&self, operation: &'static str) {
        self.failing_operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(operation);
    }

    /// How many store calls were made (the fake's equivalent of DynamoDB requests).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Puts an order as it is, bypassing every rule (to arrange a test).
    pub fn insert(&self, order: Order) {
        self.lock().insert(order.trade_no.clone(), order);
    }

    pub fn snapshot(&self, trade_no: &TradeNo) -> Option<Order> {
        self.lock().get(trade_no).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<TradeNo, Order>> {
        self.orders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, operation: &'static str) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failing_operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(operation);
        if failing || self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(Box::new(
                aws_sdk_dynamodb::Error::InternalServerError(
                    aws_sdk_dynamodb::types::error::InternalServerError::builder()
                        .message("in-memory store set unavailable")
                        .build(),
                ),
            )));
        }
        Ok(())
    }
}

impl OrderStore for InMemoryStore {
    async fn create(&self, order: &Order) -> Result<Created, StoreError> {
        self.enter("create")?;
        let mut orders = self.lock();
        if let Some(existing) = orders.get(&order.trade_no) {
            return Ok(Created::AlreadyExists(Box::new(existing.clone())));
        }
        orders.insert(order.trade_no.clone(), order.clone());
        Ok(Created::Created)
    }

    async fn get(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        self.enter("get")?;
        Ok(self.lock().get(trade_no).cloned())
    }

    async fn transition(
        &self,
        trade_no: &TradeNo,
        t: &Transition,
    ) -> Result<Transitioned, StoreError> {
        self.enter("transition")?;
        if OrderStatus::allowed_sources(t.to).is_empty() {
            return Err(StoreError::ImpossibleTransition(t.to));
        }
        let mut orders = self.lock();
        let Some(order) = orders.get_mut(trade_no) else {
            return Ok(Transitioned::NotFound);
        };
        if !t.allows(order) {
            return Ok(Transitioned::Rejected(order.clone()));
        }
        if let Some(entry) = &t.history
            && order.history.len() < schema::MAX_HISTORY_KEPT
        {
            order.history.push(entry.clone());
        }
        order.status = t.to;
        order.version += 1;
        order.updated_at = t.at;
        if let Some(answer) = &t.answer {
            order.vexora = Some(answer.clone());
            if let Some(p) = &answer.plat_form_trade_no {
                order.plat_form_trade_no = Some(p.clone());
            }
        }
        if t.to.is_final() {
            order.check_after = None;
        } else if let Some(at) = t.check_after {
            order.check_after = Some(at);
        }
        Ok(Transitioned::Applied(order.clone()))
    }

    async fn delete_pending(&self, trade_no: &TradeNo, version: u64) -> Result<bool, StoreError> {
        self.enter("delete_pending")?;
        let mut orders = self.lock();
        match orders.get(trade_no) {
            Some(o) if o.status == OrderStatus::Pending && o.version == version => {
                orders.remove(trade_no);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_check(
        &self,
        trade_no: &TradeNo,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
        manual_review: bool,
    ) -> Result<bool, StoreError> {
        self.enter("claim_check")?;
        let mut orders = self.lock();
        match orders.get_mut(trade_no) {
            Some(o)
                if !o.status.is_final()
                    && o.check_after.map(|c| c.timestamp_millis())
                        == Some(seen.timestamp_millis()) =>
            {
                o.check_after = Some(next);
                o.last_query_at = Some(now);
                o.check_attempts += 1;
                o.manual_review |= manual_review;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_refresh(
        &self,
        trade_no: &TradeNo,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> Result<bool, StoreError> {
        self.enter("claim_refresh")?;
        let mut orders = self.lock();
        match orders.get_mut(trade_no) {
            Some(o) if o.last_query_at.is_none_or(|at| at <= now - min_interval) => {
                o.last_query_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn append_history(
        &self,
        trade_no: &TradeNo,
        entry: &HistoryEntry,
    ) -> Result<(), StoreError> {
        self.enter("append_history")?;
        if let Some(order) = self.lock().get_mut(trade_no)
            && order.history.len() < schema::MAX_HISTORY_KEPT
        {
            order.history.push(entry.clone());
        }
        Ok(())
    }

    async fn record_anomaly(
        &self,
        trade_no: &TradeNo,
        anomaly: &Anomaly,
    ) -> Result<(), StoreError> {
        self.enter("record_anomaly")?;
        if let Some(order) = self.lock().get_mut(trade_no) {
            if order.anomalies.len() < schema::MAX_ANOMALIES_KEPT {
                order.anomalies.push(anomaly.clone());
            }
            order.anomaly_count += 1;
        }
        Ok(())
    }

    async fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> Result<DuePage, StoreError> {
        self.enter("due_for_check")?;
        // The fake returns everything due in one page; cursors are a real-adapter concern.
        let _ = start;
        let mut due: Vec<(DateTime<Utc>, TradeNo)> = self
            .lock()
            .values()
            .filter(|o| !o.status.is_final())
            .filter_map(|o| {
                o.check_after
                    .filter(|at| *at <= now)
                    .map(|at| (at, o.trade_no.clone()))
            })
            .collect();
        due.sort();
        due.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(DuePage {
            trade_nos: due.into_iter().map(|(_, t)| t).collect(),
            next: None,
        })
    }
}

/// Credentials per stage that behave like the caching client: reads serve the cached
/// version; `rotate` changes what Secrets Manager holds; `refresh` brings it into the cache.
/// Counts reads and refreshes so tests can assert "no fetch per request".
#[derive(Debug)]
pub struct StaticSecrets {
    cached: Mutex<Versions>,
    stored: Mutex<Versions>,
    reads: AtomicUsize,
    refreshes: AtomicUsize,
    unavailable: AtomicBool,
}

#[derive(Debug, Clone)]
struct Versions {
    current: Arc<VexoraCredentials>,
    previous: Option<Arc<VexoraCredentials>>,
}

impl Versions {
    fn stage(&self, stage: Stage) -> Result<Arc<VexoraCredentials>, SecretError> {
        match stage {
            Stage::Current => Ok(self.current.clone()),
            Stage::Previous => self
                .previous
                .clone()
                .ok_or(SecretError::NotFound(stage.label())),
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StaticSecrets {
    pub fn new(current: VexoraCredentials) -> Self {
        let versions = Versions {
            current: Arc::new(current),
            previous: None,
        };
        Self {
            cached: Mutex::new(versions.clone()),
            stored: Mutex::new(versions),
            reads: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            unavailable: AtomicBool::new(false),
        }
    }

    /// A new current version in the store; the old one becomes the previous. The cache is not
    /// touched, as with Secrets Manager and a caching client.
    pub fn rotate(&self, new: VexoraCredentials) {
        let mut stored = guard(&self.stored);
        let old = stored.current.clone();
        stored.previous = Some(old);
        stored.current = Arc::new(new);
    }

    /// Makes every read fail as if Secrets Manager were down.
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), SecretError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SecretError::Unavailable(
                "static secrets set unavailable".into(),
            ));
        }
        Ok(())
    }
}

impl SecretSource for StaticSecrets {
    async fn credentials(&self, stage: Stage) -> Result<Arc<VexoraCredentials>, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        guard(&self.cached).stage(stage)
    }

    async fn refresh(&self, stage: Stage) -> Result<Arc<VexoraCredentials>, SecretError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        let fresh = guard(&self.stored).clone();
        let mut cached = guard(&self.cached);
        match stage {
            Stage::Current => cached.current = fresh.current.clone(),
            Stage::Previous => cached.previous = fresh.previous.clone(),
        }
        fresh.stage(stage)
    }
}
