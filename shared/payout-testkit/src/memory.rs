//! In-memory fakes of the ports with the same semantics as the real adapters (the store's
//! behaviour tests run against both).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use payout_domain::TradeNo;
use payout_domain::order::{Order, OrderStatus};
use secrecy::{ExposeSecret, SecretString};

use payout_app::secrets::{SecretStore, Stage, StoredSecret};
use payout_app::store::{
    Annotation, CheckClaim, Created, DueCursor, DuePage, OrderStore, StoreError, Transition,
    Transitioned,
};
use vexora::credentials::{SecretError, VexoraCredentials};

/// Orders in a map. `set_unavailable(true)` makes every call fail as if DynamoDB were down.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    orders: Mutex<BTreeMap<TradeNo, Order>>,
    unavailable: AtomicBool,
    failing_operations: Mutex<BTreeSet<&'static str>>,
    /// Operations that apply their write and then fail, as when DynamoDB's answer is lost.
    failing_after_applying: Mutex<BTreeMap<&'static str, usize>>,
    calls: AtomicUsize,
    /// Queued batch items' requests, by `tradeNo` ([`payout_app::batch`]).
    payloads: Mutex<BTreeMap<String, String>>,
    batches: Mutex<BTreeMap<String, payout_app::batch::BatchRecord>>,
    /// The ids of the annotation writes that landed, per order (the item's `keptWrites`).
    kept: Mutex<BTreeSet<(String, String)>>,
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

    /// Ends every failure [`InMemoryStore::fail_operation`] set up.
    pub fn heal(&self) {
        self.failing_operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Makes the named operation apply its write and then report an error, `times` times (a
    /// write that landed but whose answer was lost).
    pub fn fail_after_applying(&self, operation: &'static str, times: usize) {
        self.failing_after_applying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(operation, times);
    }

    fn applied_then_failed(&self, operation: &'static str) -> Result<(), StoreError> {
        let mut failing = self
            .failing_after_applying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failing.get_mut(operation) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(unavailable())
            }
            _ => Ok(()),
        }
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
            return Err(unavailable());
        }
        Ok(())
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable(Box::new(aws_sdk_dynamodb::Error::InternalServerError(
        aws_sdk_dynamodb::types::error::InternalServerError::builder()
            .message("in-memory store set unavailable")
            .build(),
    )))
}

impl OrderStore for InMemoryStore {
    async fn create(&self, order: &Order) -> Result<Created, StoreError> {
        self.enter("create")?;
        let mut orders = self.lock();
        if let Some(existing) = orders.get(&order.trade_no) {
            return Ok(Created::AlreadyExists(Box::new(existing.clone())));
        }
        orders.insert(order.trade_no.clone(), order.clone());
        drop(orders);
        self.applied_then_failed("create")?;
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
        if t.is_for_another_intent(order) {
            return Ok(Transitioned::NotFound);
        }
        if !t.allows(order) {
            if t.write_id.is_some() && order.last_write == t.write_id {
                return Ok(Transitioned::Applied(order.clone()));
            }
            return Ok(Transitioned::Rejected(order.clone()));
        }
        if t.says_paid() {
            order.reported_paid_at.get_or_insert(t.at);
        }
        guarded(&self.payloads).remove(trade_no.as_str());
        order.queued = false;
        if let Some(entry) = &t.history {
            order.history.push(entry.clone());
        }
        if let Some(anomaly) = &t.anomaly {
            order.anomalies.push(anomaly.clone());
            order.anomaly_count += 1;
            order.last_anomaly = Some(anomaly.clone());
        }
        if t.write_id.is_some() {
            order.last_write.clone_from(&t.write_id);
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
        let moved = order.clone();
        drop(orders);
        self.applied_then_failed("transition")?;
        Ok(Transitioned::Applied(moved))
    }

    async fn delete_pending(
        &self,
        trade_no: &TradeNo,
        intent_id: &str,
    ) -> Result<bool, StoreError> {
        self.enter("delete_pending")?;
        let mut orders = self.lock();
        match orders.get(trade_no) {
            Some(o)
                if o.status == OrderStatus::Pending
                    && o.intent_id.as_deref() == Some(intent_id)
                    && o.event_count() == 0 =>
            {
                orders.remove(trade_no);
                drop(orders);
                self.applied_then_failed("delete_pending")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_check(
        &self,
        trade_no: &TradeNo,
        claim: &CheckClaim,
    ) -> Result<bool, StoreError> {
        self.enter("claim_check")?;
        let mut orders = self.lock();
        match orders.get_mut(trade_no) {
            Some(o)
                if !o.status.is_final()
                    && o.check_after.map(|c| c.timestamp_millis())
                        == Some(claim.seen.timestamp_millis()) =>
            {
                o.check_after = Some(claim.next);
                o.last_query_at = Some(claim.now);
                o.check_attempts += 1;
                o.manual_review |= claim.manual_review;
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

    async fn annotate(
        &self,
        trade_no: &TradeNo,
        annotation: &Annotation,
    ) -> Result<Option<Order>, StoreError> {
        self.enter("annotate")?;
        let mut orders = self.lock();
        let Some(order) = orders.get_mut(trade_no) else {
            return Ok(None);
        };
        let id = (trade_no.as_str().to_owned(), annotation.write_id.clone());
        if !guarded(&self.kept).insert(id) {
            return Ok(Some(order.clone()));
        }
        if annotation.says_paid()
            && let Some(at) = annotation
                .history
                .as_ref()
                .map(|h| h.at)
                .or(annotation.anomaly.as_ref().map(|a| a.at))
        {
            order.reported_paid_at.get_or_insert(at);
        }
        if let Some(entry) = &annotation.history
            && annotation.history_room
        {
            order.history.push(entry.clone());
        }
        if let Some(anomaly) = &annotation.anomaly {
            if annotation.anomalies_room {
                order.anomalies.push(anomaly.clone());
            }
            order.anomaly_count += 1;
            order.last_anomaly = Some(anomaly.clone());
        }
        order.last_write = Some(annotation.write_id.clone());
        let kept = order.clone();
        drop(orders);
        self.applied_then_failed("annotate")?;
        Ok(Some(kept))
    }

    async fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> Result<DuePage, StoreError> {
        self.enter("due_for_check")?;
        // Paged as the index is: oldest first, `limit` a page, the cursor after the last one.
        let after = start.map(|c| (c.check_after_ms, c.trade_no));
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
        if let Some((at, trade_no)) = &after {
            due.retain(|(a, t)| {
                (a.timestamp_millis(), t.as_str().to_owned()) > (*at, trade_no.clone())
            });
        }
        let limit = usize::try_from(limit).unwrap_or(0);
        let more = due.len() > limit;
        due.truncate(limit);
        let next = due.last().filter(|_| more).map(|(at, t)| DueCursor {
            check_after_ms: at.timestamp_millis(),
            trade_no: t.as_str().to_owned(),
        });
        Ok(DuePage {
            trade_nos: due.into_iter().map(|(_, t)| t).collect(),
            next,
        })
    }
}

/// Secrets Manager in memory: versions with ids and creation dates; `put` makes a new current
/// version and the old one the previous, as `PutSecretValue` does. Counts reads so tests can
/// assert "no read per request".
#[derive(Debug)]
pub struct FakeSecretStore {
    versions: Mutex<Vec<StoredSecret>>,
    fetches: AtomicUsize,
    unavailable: AtomicBool,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeSecretStore {
    /// A store whose only version holds `value` (JSON), created at `created_at`.
    pub fn new(value: &str, created_at: DateTime<Utc>) -> Self {
        let store = Self {
            versions: Mutex::new(Vec::new()),
            fetches: AtomicUsize::new(0),
            unavailable: AtomicBool::new(false),
        };
        store.put(value, created_at);
        store
    }

    /// A new current version.
    pub fn put(&self, value: &str, created_at: DateTime<Utc>) {
        self.push(value, Some(created_at));
    }

    /// A new current version without a creation date.
    pub fn put_undated(&self, value: &str) {
        self.push(value, None);
    }

    fn push(&self, value: &str, created_at: Option<DateTime<Utc>>) {
        let mut versions = guard(&self.versions);
        let version_id = format!("v{}", versions.len() + 1);
        versions.push(StoredSecret {
            value: SecretString::from(value.to_owned()),
            version_id,
            created_at,
        });
    }

    /// A new current version with these credentials, created now.
    pub fn rotate(&self, credentials: &VexoraCredentials) {
        self.put(
            &super::secret_json(
                credentials.merchant_no.as_str(),
                credentials.app_secret.expose_secret(),
            ),
            Utc::now(),
        );
    }

    /// Makes every read fail as if Secrets Manager were down.
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    /// How many reads reached the store.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl SecretStore for FakeSecretStore {
    async fn fetch(&self, stage: Stage) -> Result<Option<StoredSecret>, SecretError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SecretError::Unavailable(
                "fake store set unavailable".into(),
            ));
        }
        let versions = guard(&self.versions);
        let back = match stage {
            Stage::Current => 1,
            Stage::Previous => 2,
        };
        Ok(versions
            .len()
            .checked_sub(back)
            .and_then(|i| versions.get(i))
            .cloned())
    }
}

fn guarded<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl payout_app::batch::BatchStore for InMemoryStore {
    async fn create_queued(&self, order: &Order, payload: &str) -> Result<Created, StoreError> {
        self.enter("create_queued")?;
        let mut orders = self.lock();
        if let Some(existing) = orders.get(&order.trade_no) {
            return Ok(Created::AlreadyExists(Box::new(existing.clone())));
        }
        let mut order = order.clone();
        order.queued = true;
        orders.insert(order.trade_no.clone(), order.clone());
        guarded(&self.payloads).insert(order.trade_no.as_str().to_owned(), payload.to_owned());
        drop(orders);
        self.applied_then_failed("create_queued")?;
        Ok(Created::Created)
    }

    async fn claim_queued(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        now: DateTime<Utc>,
        check_after: DateTime<Utc>,
    ) -> Result<Option<(Order, String)>, StoreError> {
        self.enter("claim_queued")?;
        let mut orders = self.lock();
        let Some(order) = orders.get_mut(trade_no) else {
            return Ok(None);
        };
        let Some(payload) = guarded(&self.payloads).get(trade_no.as_str()).cloned() else {
            return Ok(None);
        };
        if order.status != OrderStatus::Pending {
            return Ok(None);
        }
        if order.intent_id.is_some() {
            // Ours only if this very attempt took it.
            return Ok(
                (order.intent_id.as_deref() == Some(attempt)).then(|| (order.clone(), payload))
            );
        }
        order.queued = false;
        order.manual_review = false;
        order.intent_id = Some(attempt.to_owned());
        order.last_write = Some(attempt.to_owned());
        order.sent_at = Some(now);
        order.check_after = Some(check_after);
        let claimed = order.clone();
        drop(orders);
        self.applied_then_failed("claim_queued")?;
        Ok(Some((claimed, payload)))
    }

    async fn requeue(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        check_after: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.enter("requeue")?;
        let mut orders = self.lock();
        match orders.get_mut(trade_no) {
            Some(order)
                if order.status == OrderStatus::Pending
                    && order.intent_id.as_deref() == Some(attempt)
                    && guarded(&self.payloads).contains_key(trade_no.as_str()) =>
            {
                order.queued = true;
                order.intent_id = None;
                order.sent_at = None;
                order.check_after = Some(check_after);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn adopt_queued(
        &self,
        trade_no: &TradeNo,
        batch_id: &payout_app::batch::BatchId,
        now: DateTime<Utc>,
    ) -> Result<payout_app::batch::Adopted, StoreError> {
        use payout_app::batch::Adopted;
        self.enter("adopt_queued")?;
        let mut orders = self.lock();
        let Some(order) = orders.get_mut(trade_no) else {
            return Ok(Adopted::Gone);
        };
        let queued = order.status == OrderStatus::Pending
            && order.intent_id.is_none()
            && guarded(&self.payloads).contains_key(trade_no.as_str());
        if !queued {
            return Ok(Adopted::Taken(Box::new(order.clone())));
        }
        if !order.batch_ids.iter().any(|b| b == batch_id.as_str()) {
            order.batch_ids.push(batch_id.as_str().to_owned());
            order.batch_ids.sort();
        }
        order.updated_at = now;
        let adopted = order.clone();
        drop(orders);
        self.applied_then_failed("adopt_queued")?;
        Ok(Adopted::Listed(Box::new(adopted)))
    }

    async fn withdraw_queued(
        &self,
        trade_no: &TradeNo,
        listed_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.enter("withdraw_queued")?;
        let mut orders = self.lock();
        let mut payloads = guarded(&self.payloads);
        match orders.get(trade_no) {
            Some(o)
                if o.status == OrderStatus::Pending
                    && o.intent_id.is_none()
                    && payloads.contains_key(trade_no.as_str())
                    && o.event_count() == 0
                    && o.updated_at.timestamp_millis() == listed_at.timestamp_millis() =>
            {
                orders.remove(trade_no);
                payloads.remove(trade_no.as_str());
                drop((orders, payloads));
                self.applied_then_failed("withdraw_queued")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn put_batch(
        &self,
        record: &payout_app::batch::BatchRecord,
    ) -> Result<Option<payout_app::batch::BatchRecord>, StoreError> {
        self.enter("put_batch")?;
        let mut batches = guarded(&self.batches);
        if let Some(existing) = batches.get(record.batch_id.as_str()) {
            return Ok(Some(existing.clone()));
        }
        batches.insert(record.batch_id.as_str().to_owned(), record.clone());
        Ok(None)
    }

    async fn commit_batch(&self, batch_id: &payout_app::batch::BatchId) -> Result<(), StoreError> {
        self.enter("commit_batch")?;
        match guarded(&self.batches).get_mut(batch_id.as_str()) {
            Some(record) => {
                record.committed = true;
                Ok(())
            }
            None => Err(StoreError::Corrupt("batch")),
        }
    }

    async fn get_batch(
        &self,
        batch_id: &payout_app::batch::BatchId,
    ) -> Result<Option<payout_app::batch::BatchRecord>, StoreError> {
        self.enter("get_batch")?;
        Ok(guarded(&self.batches).get(batch_id.as_str()).cloned())
    }

    async fn get_many(&self, trade_nos: &[TradeNo]) -> Result<Vec<Order>, StoreError> {
        self.enter("get_many")?;
        let orders = self.lock();
        Ok(trade_nos
            .iter()
            .filter_map(|t| orders.get(t).cloned())
            .collect())
    }
}
