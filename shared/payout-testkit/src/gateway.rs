//! A Vexora gateway that answers from a script and remembers every call.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vexora::credentials::VexoraCredentials;
use vexora::{
    BalanceRequest, DisbursementRequest, Exchange, PayoutGateway, QueryRequest, parse_envelope,
};

/// An HTTP 200 answer with this `code`, `data.status` and `data.tradeNo`.
pub fn vexora_answer(code: &str, status: Option<&str>, trade_no: &str) -> Exchange {
    vexora_answer_with(code, status, trade_no, None)
}

/// [`vexora_answer`] that also states `data.amount`.
pub fn vexora_answer_with(
    code: &str,
    status: Option<&str>,
    trade_no: &str,
    amount: Option<&str>,
) -> Exchange {
    let mut data =
        serde_json::json!({"tradeNo": trade_no, "platFormTradeNo": format!("PF-{trade_no}")});
    if let Some(status) = status {
        data["status"] = status.into();
    }
    if let Some(amount) = amount {
        data["amount"] = amount.into();
    }
    if code == "8000" {
        data = serde_json::Value::Null;
    }
    let body =
        serde_json::json!({"code": code, "msg": "test", "success": code == "0000", "data": data});
    Exchange::Answered {
        http_status: 200,
        envelope: parse_envelope(body.to_string().as_bytes()),
    }
}

/// A `queryBalance` answer (HTTP 200, `code 0000`) with these amounts as Vexora sends them.
pub fn balance_answer(available: &str, freeze: &str, unsettled: &str) -> Exchange {
    let body = serde_json::json!({"code": "0000", "msg": "success", "success": true,
        "data": {"availableAmount": available, "freezeAmount": freeze, "unsettledAmount": unsettled}});
    Exchange::Answered {
        http_status: 200,
        envelope: parse_envelope(body.to_string().as_bytes()),
    }
}

#[derive(Debug)]
pub struct ScriptedGateway {
    balance_answer: Mutex<VecDeque<Exchange>>,
    balances: Mutex<Vec<BalanceRequest>>,
    /// What a query about a given `tradeNo` answers (a Vexora that holds those payouts).
    holds: Mutex<std::collections::HashMap<String, Exchange>>,
    submit_answer: Mutex<VecDeque<Exchange>>,
    default_answer: Exchange,
    query_answer: Mutex<VecDeque<Exchange>>,
    submits: Mutex<Vec<DisbursementRequest>>,
    queries: Mutex<Vec<QueryRequest>>,
    delay: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ScriptedGateway {
    /// Answers every submit and query with `answer` unless a scripted one is queued.
    pub fn answering(answer: Exchange) -> Self {
        Self {
            balance_answer: Mutex::default(),
            balances: Mutex::default(),
            holds: Mutex::default(),
            submit_answer: Mutex::default(),
            default_answer: answer,
            query_answer: Mutex::default(),
            submits: Mutex::default(),
            queries: Mutex::default(),
            delay: Duration::ZERO,
        }
    }

    /// Each call waits this long before answering (to hold a submit in flight).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Queries about `trade_no` answer `answer` (before any queued or default answer).
    pub fn holds(&self, trade_no: &str, answer: Exchange) {
        lock(&self.holds).insert(trade_no.to_owned(), answer);
    }

    /// How many queries asked about `trade_no`.
    pub fn queries_for(&self, trade_no: &str) -> usize {
        lock(&self.queries)
            .iter()
            .filter(|q| q.trade_no == trade_no)
            .count()
    }

    pub fn then_query(&self, answer: Exchange) {
        lock(&self.query_answer).push_back(answer);
    }

    pub fn then_submit(&self, answer: Exchange) {
        lock(&self.submit_answer).push_back(answer);
    }

    pub fn submits(&self) -> Vec<DisbursementRequest> {
        lock(&self.submits).clone()
    }

    pub fn queries(&self) -> Vec<QueryRequest> {
        lock(&self.queries).clone()
    }

    /// The next balance query answers `answer` (then the default, 1,000,000 yen available).
    pub fn then_balance(&self, answer: Exchange) {
        lock(&self.balance_answer).push_back(answer);
    }

    pub fn balance_queries(&self) -> Vec<BalanceRequest> {
        lock(&self.balances).clone()
    }
}

impl PayoutGateway for ScriptedGateway {
    async fn submit(
        &self,
        _credentials: &VexoraCredentials,
        body: &DisbursementRequest,
    ) -> Exchange {
        lock(&self.submits).push(body.clone());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let next = lock(&self.submit_answer).pop_front();
        next.unwrap_or_else(|| self.default_answer.clone())
    }

    async fn query(&self, _credentials: &VexoraCredentials, body: &QueryRequest) -> Exchange {
        lock(&self.queries).push(body.clone());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(held) = lock(&self.holds).get(&body.trade_no) {
            return held.clone();
        }
        let next = lock(&self.query_answer).pop_front();
        next.unwrap_or_else(|| self.default_answer.clone())
    }

    async fn balance(&self, _credentials: &VexoraCredentials, body: &BalanceRequest) -> Exchange {
        lock(&self.balances).push(body.clone());
        let next = lock(&self.balance_answer).pop_front();
        next.unwrap_or_else(|| balance_answer("1000000", "0", "0"))
    }
}

/// Vexora on loopback, minus the socket and the bookkeeping: answers `0000`/`0015` to a submit
/// and `0000`/`0000` to a query, for the request's own `tradeNo` (benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoGateway;

impl PayoutGateway for EchoGateway {
    async fn submit(&self, _: &VexoraCredentials, body: &DisbursementRequest) -> Exchange {
        vexora_answer("0000", Some("0015"), &body.trade_no)
    }

    async fn query(&self, _: &VexoraCredentials, body: &QueryRequest) -> Exchange {
        vexora_answer("0000", Some("0000"), &body.trade_no)
    }

    async fn balance(&self, _: &VexoraCredentials, _: &BalanceRequest) -> Exchange {
        balance_answer("1000000", "0", "0")
    }
}

/// Metrics that go nowhere (benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl payout_app::metrics::Metrics for NoMetrics {
    fn count(&self, _: &'static str, _: u64) {}
}

/// Metrics kept in memory for assertions.
#[derive(Debug, Default)]
pub struct RecordingMetrics(Mutex<Vec<(&'static str, u64)>>);

impl RecordingMetrics {
    /// The sum of every count of `name`.
    pub fn total(&self, name: &str) -> u64 {
        lock(&self.0)
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

impl payout_app::metrics::Metrics for RecordingMetrics {
    fn count(&self, name: &'static str, value: u64) {
        lock(&self.0).push((name, value));
    }
}
