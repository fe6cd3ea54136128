//! The ports as the simulation provides them: the testkit's in-memory store, a Vexora that
//! keeps a ledger and sends webhooks, and an SQS queue, each call stopping at a gate where the
//! seed decides when it goes on and what befalls it.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use payout_app::batch::{
    Adopted, BatchId, BatchMessage, BatchQueue, BatchRecord, BatchStore, QueueError,
};
use payout_app::store::{
    Annotation, CheckClaim, Created, DueCursor, DuePage, OrderStore, StoreError, Transition,
    Transitioned,
};
use payout_domain::TradeNo;
use payout_domain::order::Order;
use payout_testkit::{InMemoryStore, balance_answer};
use vexora::credentials::VexoraCredentials;
use vexora::{
    BalanceRequest, DisbursementRequest, Exchange, NotSent, PayoutGateway, QueryRequest,
    parse_envelope,
};

use crate::world::{
    AnswerKind, Create, Grant, Note, Point, QueryFate, RequestFate, Shared, StoreFate,
    VexoraPayout, gate, lock,
};

fn unavailable() -> StoreError {
    StoreError::Unavailable(Box::new(aws_sdk_dynamodb::Error::InternalServerError(
        aws_sdk_dynamodb::types::error::InternalServerError::builder()
            .message("simulated DynamoDB failure")
            .build(),
    )))
}

/// The operations that write (the others only read: they fail or answer).
pub fn writes(operation: &str) -> bool {
    !matches!(
        operation,
        "get" | "get_many" | "get_batch" | "due_for_check"
    )
}

/// DynamoDB: the in-memory store behind gates; every change of an order is checked.
#[derive(Debug, Clone)]
pub struct SimStore {
    pub inner: Arc<InMemoryStore>,
    pub world: Shared,
}

impl SimStore {
    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        order: Option<&TradeNo>,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: Fn() -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>> + Send,
        T: Send,
    {
        let fate = match gate(&self.world, Point::Store(operation, key.to_owned())).await {
            Grant::Store(fate) => fate,
            _ => StoreFate::Ok,
        };
        if fate == StoreFate::FailBefore {
            return Err(unavailable());
        }
        let first = self.observed(order, &f).await;
        match fate {
            StoreFate::Ok | StoreFate::FailBefore => first,
            StoreFate::FailAfter => Err(unavailable()),
            StoreFate::RetryLater => {
                let _ = gate(&self.world, Point::StoreRetry(operation, key.to_owned())).await;
                self.observed(order, &f).await
            }
        }
    }

    async fn observed<T, F, Fut>(&self, order: Option<&TradeNo>, f: &F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let before = order.and_then(|t| self.inner.snapshot(t));
        let result = f().await;
        if let Some(t) = order {
            let after = self.inner.snapshot(t);
            lock(&self.world).stored(t.as_str(), before.as_ref(), after.as_ref());
        }
        result
    }

    pub fn snapshot(&self, trade_no: &str) -> Option<Order> {
        TradeNo::parse(trade_no)
            .ok()
            .and_then(|t| self.inner.snapshot(&t))
    }
}

impl OrderStore for SimStore {
    async fn create(&self, order: &Order) -> Result<Created, StoreError> {
        let t = &order.trade_no;
        self.call("create", t.as_str(), Some(t), || self.inner.create(order))
            .await
    }

    async fn get(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        self.call("get", trade_no.as_str(), None, || self.inner.get(trade_no))
            .await
    }

    async fn transition(
        &self,
        trade_no: &TradeNo,
        transition: &Transition,
    ) -> Result<Transitioned, StoreError> {
        self.call("transition", trade_no.as_str(), Some(trade_no), || {
            self.inner.transition(trade_no, transition)
        })
        .await
    }

    async fn delete_pending(
        &self,
        trade_no: &TradeNo,
        intent_id: &str,
    ) -> Result<bool, StoreError> {
        self.call("delete_pending", trade_no.as_str(), Some(trade_no), || {
            self.inner.delete_pending(trade_no, intent_id)
        })
        .await
    }

    async fn claim_check(
        &self,
        trade_no: &TradeNo,
        claim: &CheckClaim,
    ) -> Result<bool, StoreError> {
        self.call("claim_check", trade_no.as_str(), Some(trade_no), || {
            self.inner.claim_check(trade_no, claim)
        })
        .await
    }

    async fn claim_refresh(
        &self,
        trade_no: &TradeNo,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> Result<bool, StoreError> {
        self.call("claim_refresh", trade_no.as_str(), Some(trade_no), || {
            self.inner.claim_refresh(trade_no, now, min_interval)
        })
        .await
    }

    async fn annotate(
        &self,
        trade_no: &TradeNo,
        annotation: &Annotation,
    ) -> Result<Option<Order>, StoreError> {
        self.call("annotate", trade_no.as_str(), Some(trade_no), || {
            self.inner.annotate(trade_no, annotation)
        })
        .await
    }

    async fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> Result<DuePage, StoreError> {
        self.call("due_for_check", "index", None, || {
            self.inner.due_for_check(now, limit, start.clone())
        })
        .await
    }
}

impl BatchStore for SimStore {
    async fn create_queued(&self, order: &Order, payload: &str) -> Result<Created, StoreError> {
        let t = &order.trade_no;
        self.call("create_queued", t.as_str(), Some(t), || {
            self.inner.create_queued(order, payload)
        })
        .await
    }

    async fn claim_queued(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        now: DateTime<Utc>,
        check_after: DateTime<Utc>,
    ) -> Result<Option<(Order, String)>, StoreError> {
        self.call("claim_queued", trade_no.as_str(), Some(trade_no), || {
            self.inner.claim_queued(trade_no, attempt, now, check_after)
        })
        .await
    }

    async fn requeue(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        check_after: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.call("requeue", trade_no.as_str(), Some(trade_no), || {
            self.inner.requeue(trade_no, attempt, check_after)
        })
        .await
    }

    async fn adopt_queued(
        &self,
        trade_no: &TradeNo,
        batch_id: &BatchId,
        now: DateTime<Utc>,
    ) -> Result<Adopted, StoreError> {
        self.call("adopt_queued", trade_no.as_str(), Some(trade_no), || {
            self.inner.adopt_queued(trade_no, batch_id, now)
        })
        .await
    }

    async fn withdraw_queued(
        &self,
        trade_no: &TradeNo,
        listed_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.call("withdraw_queued", trade_no.as_str(), Some(trade_no), || {
            self.inner.withdraw_queued(trade_no, listed_at)
        })
        .await
    }

    async fn put_batch(&self, record: &BatchRecord) -> Result<Option<BatchRecord>, StoreError> {
        self.call("put_batch", record.batch_id.as_str(), None, || {
            self.inner.put_batch(record)
        })
        .await
    }

    async fn commit_batch(&self, batch_id: &BatchId) -> Result<(), StoreError> {
        self.call("commit_batch", batch_id.as_str(), None, || {
            self.inner.commit_batch(batch_id)
        })
        .await
    }

    async fn get_batch(&self, batch_id: &BatchId) -> Result<Option<BatchRecord>, StoreError> {
        self.call("get_batch", batch_id.as_str(), None, || {
            self.inner.get_batch(batch_id)
        })
        .await
    }

    async fn get_many(&self, trade_nos: &[TradeNo]) -> Result<Vec<Order>, StoreError> {
        self.call("get_many", "items", None, || self.inner.get_many(trade_nos))
            .await
    }
}

/// Vexora: a ledger of payouts by `tradeNo`, webhooks for every change, answers as chosen.
#[derive(Debug, Clone)]
pub struct SimVexora {
    pub world: Shared,
}

fn answered(http_status: u16, body: Option<serde_json::Value>) -> Exchange {
    Exchange::Answered {
        http_status,
        envelope: body.and_then(|b| parse_envelope(b.to_string().as_bytes())),
    }
}

fn envelope(code: &str, data: Option<serde_json::Value>) -> Exchange {
    answered(
        200,
        Some(serde_json::json!({
            "code": code, "msg": "simulated", "success": code == "0000",
            "data": data.unwrap_or(serde_json::Value::Null),
        })),
    )
}

fn data(trade_no: &str, p: &VexoraPayout, amount: u64) -> serde_json::Value {
    serde_json::json!({
        "tradeNo": trade_no, "platFormTradeNo": p.platform, "status": p.status,
        "amount": amount.to_string(), "message": "simulated",
    })
}

impl PayoutGateway for SimVexora {
    async fn submit(&self, _: &VexoraCredentials, body: &DisbursementRequest) -> Exchange {
        let t = body.trade_no.clone();
        let fate = match gate(&self.world, Point::VexoraRequest(t.clone())).await {
            Grant::Request(fate) => fate,
            _ => RequestFate::Lost,
        };
        let (create, answer) = match fate {
            RequestFate::NotSent => return Exchange::NotSent(NotSent::Connect),
            RequestFate::Lost => return Exchange::TimedOut,
            RequestFate::Arrives { create, answer } => (create, answer),
        };
        let amount: u64 = body.amount.parse().unwrap_or(0);
        let payout = {
            let mut w = lock(&self.world);
            let me = w.current;
            w.sent_by.insert(me);
            *w.submits.entry(t.clone()).or_default() += 1;
            match create {
                Create::Processing | Create::Paid => {
                    let status = if create == Create::Paid {
                        "0000"
                    } else {
                        "0015"
                    };
                    let platform = format!("PF{}", w.vexora.len() + 1);
                    let p = w.vexora.entry(t.clone()).or_insert(VexoraPayout {
                        platform,
                        amount,
                        status,
                        created: 0,
                    });
                    p.created += 1;
                    let p = p.clone();
                    if p.created > 1 {
                        w.violation(format!("{t}: Vexora created a second payout (paid twice)"));
                    }
                    w.outbox.push(Note {
                        trade_no: t.clone(),
                        status: p.status,
                        attempts: 0,
                    });
                    w.note(|| format!("  vexora creates {t} ({status})"));
                    Some(p)
                }
                Create::Refused | Create::SystemError => {
                    w.note(|| format!("  vexora refuses {t} ({create:?})"));
                    None
                }
            }
        };
        let _ = gate(&self.world, Point::VexoraAnswer(t.clone())).await;
        match (answer, &payout, create) {
            (AnswerKind::TimedOut, ..) => Exchange::TimedOut,
            (AnswerKind::Dropped, ..) => Exchange::Dropped,
            (AnswerKind::Http502, ..) => answered(502, None),
            (AnswerKind::NotJson, ..) => answered(200, None),
            (_, None, Create::SystemError) => envelope("5000", None),
            (_, None, _) => envelope("8000", None),
            (AnswerKind::Plain, Some(p), _) => envelope("0000", Some(data(&t, p, amount))),
            (AnswerKind::OtherAmount, Some(p), _) => {
                envelope("0000", Some(data(&t, p, amount + 1)))
            }
            (AnswerKind::Code8000, Some(_), _) => envelope("8000", None),
            (AnswerKind::Code5000WithData, Some(p), _) => {
                envelope("5000", Some(data(&t, p, amount)))
            }
            (AnswerKind::Code5000, Some(_), _) => envelope("5000", None),
        }
    }

    async fn query(&self, _: &VexoraCredentials, body: &QueryRequest) -> Exchange {
        let t = body.trade_no.clone();
        let fate = match gate(&self.world, Point::VexoraQuery(t.clone())).await {
            Grant::Query(fate) => fate,
            _ => QueryFate::TimedOut,
        };
        match fate {
            QueryFate::TimedOut => Exchange::TimedOut,
            QueryFate::Code5000 => envelope("5000", None),
            QueryFate::Answer => {
                let held = lock(&self.world).vexora.get(&t).cloned();
                match held {
                    Some(p) => envelope("0000", Some(data(&t, &p, p.amount))),
                    None => envelope("8000", None),
                }
            }
        }
    }

    async fn balance(&self, _: &VexoraCredentials, _: &BalanceRequest) -> Exchange {
        balance_answer("100000000", "0", "0")
    }
}

/// SQS: messages kept in the world until a worker takes them.
#[derive(Debug, Clone)]
pub struct SimQueue {
    pub world: Shared,
}

impl BatchQueue for SimQueue {
    async fn send(&self, messages: &[BatchMessage]) -> Result<usize, QueueError> {
        if gate(&self.world, Point::Queue).await == Grant::Queue(false) {
            return Err(QueueError);
        }
        let mut w = lock(&self.world);
        for m in messages {
            let id = w.next_message;
            w.next_message += 1;
            let body = serde_json::to_string(m).unwrap_or_default();
            w.queue.push(crate::world::Message { id, body });
        }
        Ok(messages.len())
    }
}
