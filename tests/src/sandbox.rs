//! The Vexora sandbox: a stand-in for Vexora's Japan API (`docs/vexora-api.md`) that checks what it
//! receives as Vexora would, remembers orders, sends signed webhooks with Vexora's retry schedule
//! (time-scaled), answers queries, and keeps a ledger of everything for assertions.
//!
//! Outcomes are scripted per order, by `POST /sandbox/script {"tradeNo", "behaviour"}` or by the
//! last two digits of the amount (see [`Behaviour::for_amount`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use vexora::signing::{self, ReceivedFields};

/// Vexora's documented retry schedule after a failed delivery (`docs/vexora-api.md` §5), before
/// time scaling.
pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
];

/// How the sandbox treats one payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// `0015` on submit, then a `0000` webhook.
    ProcessingThenSuccess,
    /// `0000` on submit and a `0000` webhook.
    ImmediateSuccess,
    /// `0015` on submit, then a `00029` webhook.
    ProcessingThenFailure,
    /// `code 8000`: nothing is created.
    Rejected,
    /// `code 5000`, but the payout was created and succeeds (webhook `0000`).
    SystemErrorButCreated,
    /// HTTP 502 with an HTML page, but the payout was created and succeeds.
    Html502ButCreated,
    /// The connection is dropped in the middle of the answer; the payout was created and succeeds.
    DropConnectionButCreated,
    /// The answer comes after `slow_answer`; the payout was created and succeeds.
    SlowButCreated,
    /// `0015`, success, but no webhook is ever sent: only a query tells.
    QueryOnly,
    /// `0015`, then webhooks `0000`, `0015`, `0000` (out of order and duplicated).
    DuplicateOutOfOrder,
    /// `code 5000` and nothing was created: a query answers `8000`.
    SystemErrorNotCreated,
}

impl Behaviour {
    pub const ALL: [Self; 11] = [
        Self::ProcessingThenSuccess,
        Self::ImmediateSuccess,
        Self::ProcessingThenFailure,
        Self::Rejected,
        Self::SystemErrorButCreated,
        Self::Html502ButCreated,
        Self::DropConnectionButCreated,
        Self::SlowButCreated,
        Self::QueryOnly,
        Self::DuplicateOutOfOrder,
        Self::SystemErrorNotCreated,
    ];

    /// By the amount's last two digits: `…11` immediate success, `…12` failure, `…13` rejected
    /// (8000), `…14` 5000 but created, `…15` HTML 502, `…16` dropped connection, `…17` slow,
    /// `…18` query only, `…19` duplicate and out-of-order webhooks, `…20` 5000 and not created;
    /// anything else processing then success.
    pub fn for_amount(yen: u64) -> Self {
        match yen % 100 {
            11 => Self::ImmediateSuccess,
            12 => Self::ProcessingThenFailure,
            13 => Self::Rejected,
            14 => Self::SystemErrorButCreated,
            15 => Self::Html502ButCreated,
            16 => Self::DropConnectionButCreated,
            17 => Self::SlowButCreated,
            18 => Self::QueryOnly,
            19 => Self::DuplicateOutOfOrder,
            20 => Self::SystemErrorNotCreated,
            _ => Self::ProcessingThenSuccess,
        }
    }

    /// An amount (≥ 100 yen) that selects this behaviour.
    pub fn amount(self) -> u64 {
        let suffix = match self {
            Self::ProcessingThenSuccess => 0,
            Self::ImmediateSuccess => 11,
            Self::ProcessingThenFailure => 12,
            Self::Rejected => 13,
            Self::SystemErrorButCreated => 14,
            Self::Html502ButCreated => 15,
            Self::DropConnectionButCreated => 16,
            Self::SlowButCreated => 17,
            Self::QueryOnly => 18,
            Self::DuplicateOutOfOrder => 19,
            Self::SystemErrorNotCreated => 20,
        };
        1000 + suffix
    }

    fn creates_order(self) -> bool {
        !matches!(self, Self::Rejected | Self::SystemErrorNotCreated)
    }

    /// The final status Vexora holds for a created order.
    fn final_status(self) -> &'static str {
        match self {
            Self::ProcessingThenFailure => "00029",
            _ => "0000",
        }
    }

    /// The webhooks sent, in order.
    fn webhooks(self) -> Vec<&'static str> {
        match self {
            Self::QueryOnly | Self::Rejected | Self::SystemErrorNotCreated => vec![],
            Self::DuplicateOutOfOrder => vec!["0000", "0015", "0000"],
            other => vec![other.final_status()],
        }
    }
}

/// Sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub merchant_no: String,
    pub app_secret: String,
    /// Multiplies Vexora's retry schedule (e.g. 0.001 turns 2 s into 2 ms).
    pub time_scale: f64,
    /// How long a payout "processes" before its webhook is sent.
    pub processing_time: Duration,
    /// How long a `SlowButCreated` answer takes.
    pub slow_answer: Duration,
    /// Accepted distance of a request's `timestamp` from the sandbox's clock.
    pub timestamp_window: Duration,
    /// The merchant's balance before any payout: `queryBalance` answers it less what was paid
    /// (`0000`) and less what is held for payouts in progress (`0015`, as `freezeAmount`).
    pub starting_balance: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            merchant_no: "0000000001".into(),
            app_secret: "sandbox-app-secret".into(),
            time_scale: 1.0,
            processing_time: Duration::from_millis(500),
            slow_answer: Duration::from_secs(15),
            timestamp_window: Duration::from_secs(300),
            starting_balance: 100_000_000,
        }
    }
}

/// One payout Vexora holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxOrder {
    pub trade_no: String,
    pub plat_form_trade_no: String,
    pub amount: String,
    pub status: String,
    pub notify_url: String,
    pub remark: Option<String>,
    pub behaviour: Behaviour,
}

/// One webhook delivery attempt and how the receiver answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub trade_no: String,
    pub status: String,
    pub attempt: u32,
    /// The receiver's HTTP status, or `None` when it could not be reached.
    pub http_status: Option<u16>,
    /// Whether the answer was exactly `200` + `OK`.
    pub acknowledged: bool,
    /// Whether it was signed with a secret that replaced the original one.
    pub rotated_secret: bool,
}

/// Everything the sandbox saw and did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Submit calls that passed authentication, per `tradeNo` (the never-pay-twice invariant).
    pub submits: BTreeMap<String, u32>,
    pub queries: BTreeMap<String, u32>,
    pub deliveries: Vec<Delivery>,
    /// Requests refused (bad header, signature, fields or timestamp), with the reason.
    pub rejections: Vec<String>,
    pub orders: BTreeMap<String, SandboxOrder>,
}

struct Inner {
    config: SandboxConfig,
    secret: Mutex<String>,
    /// The secret before the last rotation: requests signed with it are still accepted (the
    /// merchant's functions pick up a new secret within their cache TTL).
    previous_secret: Mutex<Option<String>>,
    /// Per `tradeNo`, how many more delivery attempts fail (injected faults).
    failing_deliveries: Mutex<HashMap<String, u32>>,
    /// Webhook tasks still running (delivering or waiting to retry).
    deliveries_running: tokio::sync::watch::Sender<usize>,
    ledger: Mutex<Ledger>,
    /// Raw submit bodies as received, per `tradeNo` (kept out of the ledger: they carry PII).
    captured: Mutex<HashMap<String, Vec<Bytes>>>,
    scripts: Mutex<HashMap<String, Behaviour>>,
    webhooks_paused: Mutex<bool>,
    /// `queryBalance` answers `code 5000` while set.
    balance_outage: Mutex<bool>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running sandbox.
#[derive(Clone)]
pub struct Sandbox {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}

impl Sandbox {
    /// Serves the sandbox on `listener` until the process ends.
    pub async fn start(config: SandboxConfig, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            secret: Mutex::new(config.app_secret.clone()),
            previous_secret: Mutex::default(),
            failing_deliveries: Mutex::default(),
            deliveries_running: tokio::sync::watch::Sender::new(0),
            config,
            ledger: Mutex::default(),
            captured: Mutex::default(),
            scripts: Mutex::default(),
            webhooks_paused: Mutex::new(false),
            balance_outage: Mutex::new(false),
            http,
        });
        let sandbox = Self { addr, inner };
        let app = Router::new()
            .route("/v1/vexora/disbursements", post(disbursements))
            .route("/v1/vexora/queryPayOutResult", post(query))
            .route("/v1/vexora/queryBalance", post(balance))
            .route("/sandbox/script", post(script))
            .route("/sandbox/rotate", post(rotate))
            .route("/sandbox/ledger", get(ledger))
            .route("/sandbox/balance-outage", post(balance_outage))
            .with_state(sandbox.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(sandbox)
    }

    /// `http://127.0.0.1:port`, the `VEXORA_BASE_URL` to use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ledger(&self) -> Ledger {
        lock(&self.inner.ledger).clone()
    }

    /// While `on`, `queryBalance` answers `code 5000` (a system error).
    pub fn balance_outage(&self, on: bool) {
        *lock(&self.inner.balance_outage) = on;
    }

    /// `(availableAmount, freezeAmount)` from the ledger: the starting balance less what was
    /// paid and what is held for payouts in progress.
    pub fn balance(&self) -> (u64, u64) {
        let ledger = lock(&self.inner.ledger);
        let sum = |status: &str| -> u64 {
            ledger
                .orders
                .values()
                .filter(|o| o.status == status)
                .filter_map(|o| o.amount.parse::<u64>().ok())
                .sum()
        };
        let (paid, frozen) = (sum("0000"), sum("0015"));
        (
            self.inner
                .config
                .starting_balance
                .saturating_sub(paid)
                .saturating_sub(frozen),
            frozen,
        )
    }

    /// Scripts the behaviour of one `tradeNo` (overrides the amount rule).
    pub fn script(&self, trade_no: &str, behaviour: Behaviour) {
        lock(&self.inner.scripts).insert(trade_no.to_owned(), behaviour);
    }

    /// A new app secret: webhooks are signed with it from now on; requests signed with it or
    /// with the one before are accepted (Vexora's behaviour during a switch-over is not
    /// documented; this is the overlap a merchant needs while caches expire).
    pub fn rotate(&self, app_secret: &str) {
        let old = std::mem::replace(&mut *lock(&self.inner.secret), app_secret.to_owned());
        *lock(&self.inner.previous_secret) = Some(old);
    }

    /// The next `attempts` delivery attempts for `trade_no` fail, alternately reaching the
    /// receiver with its answer lost (the receiver then sees a duplicate) and not reaching it.
    pub fn fail_deliveries(&self, trade_no: &str, attempts: u32) {
        lock(&self.inner.failing_deliveries).insert(trade_no.to_owned(), attempts);
    }

    /// Waits until no webhook is being delivered or waiting for a retry, or `within` passes.
    /// Returns whether it became quiet.
    pub async fn deliveries_settled(&self, within: Duration) -> bool {
        let mut running = self.inner.deliveries_running.subscribe();
        tokio::time::timeout(within, running.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The raw bodies of the authenticated submit calls for `trade_no` (what an eavesdropper
    /// on the merchant's traffic to Vexora would hold).
    pub fn submitted_bodies(&self, trade_no: &str) -> Vec<Bytes> {
        lock(&self.inner.captured)
            .get(trade_no)
            .cloned()
            .unwrap_or_default()
    }

    /// Submit calls seen for one `tradeNo`.
    pub fn submits(&self, trade_no: &str) -> u32 {
        self.ledger().submits.get(trade_no).copied().unwrap_or(0)
    }

    /// Sends a webhook for a known order now (tests of duplicates and forgeries use it).
    pub async fn send_webhook(&self, trade_no: &str, status: &str) -> Option<Delivery> {
        let order = lock(&self.inner.ledger).orders.get(trade_no).cloned()?;
        Some(self.deliver_once(&order, status, 1).await)
    }

    fn secret(&self) -> SecretString {
        SecretString::from(lock(&self.inner.secret).clone())
    }

    fn behaviour_for(&self, trade_no: &str, amount: u64) -> Behaviour {
        lock(&self.inner.scripts)
            .get(trade_no)
            .copied()
            .unwrap_or_else(|| Behaviour::for_amount(amount))
    }

    fn reject(&self, reason: String) -> Response {
        lock(&self.inner.ledger).rejections.push(reason.clone());
        answer(
            json!({"code": "8000", "msg": reason, "success": false, "timestamp": now_ms().to_string()}),
        )
    }

    /// Header and signature, as Vexora checks them. `Err` carries the refusal to send.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<ReceivedFields, Box<Response>> {
        let merchant = headers.get("merchantNo").and_then(|v| v.to_str().ok());
        if merchant != Some(self.inner.config.merchant_no.as_str()) {
            return Err(Box::new(
                self.reject("merchantNo header missing or unknown".into()),
            ));
        }
        let Ok(fields) = ReceivedFields::from_json(body) else {
            return Err(Box::new(
                self.reject("body is not a flat JSON object".into()),
            ));
        };
        let raw: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some((name, _)) = raw
            .as_object()
            .and_then(|o| o.iter().find(|(_, v)| !v.is_string()))
        {
            return Err(Box::new(
                self.reject(format!("field {name} is not a string")),
            ));
        }
        let previous = lock(&self.inner.previous_secret)
            .clone()
            .map(SecretString::from);
        if !fields.verify(&self.secret()) && !previous.is_some_and(|p| fields.verify(&p)) {
            return Err(Box::new(self.reject("signature mismatch".into())));
        }
        let fresh = fields
            .get("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| {
                (now_ms() - t).unsigned_abs()
                    <= self.inner.config.timestamp_window.as_millis() as u64
            });
        if !fresh {
            return Err(Box::new(self.reject(
                "timestamp missing, not milliseconds, or outside the window".into(),
            )));
        }
        Ok(fields)
    }

    fn webhooks_later(&self, order: SandboxOrder) {
        let sandbox = self.clone();
        self.inner.deliveries_running.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            tokio::time::sleep(sandbox.inner.config.processing_time).await;
            for status in order.behaviour.webhooks() {
                sandbox.deliver_with_retries(&order, status).await;
            }
            sandbox
                .inner
                .deliveries_running
                .send_modify(|n| *n = n.saturating_sub(1));
        });
    }

    async fn deliver_with_retries(&self, order: &SandboxOrder, status: &str) {
        for attempt in 1..=(RETRY_SCHEDULE.len() as u32 + 1) {
            if self.deliver_once(order, status, attempt).await.acknowledged {
                return;
            }
            let Some(wait) = RETRY_SCHEDULE.get(attempt as usize - 1) else {
                return;
            };
            tokio::time::sleep(wait.mul_f64(self.inner.config.time_scale)).await;
        }
    }

    async fn deliver_once(&self, order: &SandboxOrder, status: &str, attempt: u32) -> Delivery {
        let mut fields: Vec<(&str, String)> = vec![
            ("platFormTradeNo", order.plat_form_trade_no.clone()),
            ("tradeNo", order.trade_no.clone()),
            ("amount", order.amount.clone()),
            ("status", status.to_owned()),
            (
                "message",
                if status == "00029" {
                    "payout failed"
                } else {
                    "success"
                }
                .to_owned(),
            ),
            ("timestamp", now_ms().to_string()),
        ];
        if status == "0000" {
            let tokyo = chrono::Utc::now() + chrono::Duration::hours(9);
            fields.push(("successTime", tokyo.format("%Y-%m-%d %H:%M:%S").to_string()));
        }
        if let Some(remark) = &order.remark {
            fields.push(("remark", remark.clone()));
        }
        let sign = signing::sign(fields.iter().map(|(k, v)| (*k, v.as_str())), &self.secret());
        let mut body: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        body.insert("sign".into(), sign.into());
        let paused = *lock(&self.inner.webhooks_paused);
        let injected = {
            let mut failing = lock(&self.inner.failing_deliveries);
            match failing.get_mut(&order.trade_no) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    Some(*left % 2 == 0)
                }
                _ => None,
            }
        };
        let sent = if paused || injected == Some(false) {
            None
        } else {
            self.inner
                .http
                .post(&order.notify_url)
                .json(&body)
                .send()
                .await
                .ok()
        };
        let (http_status, acknowledged) = match sent {
            // The receiver got it, but its answer is lost on the way back.
            Some(_) if injected == Some(true) => (None, false),
            Some(response) => {
                let code = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                (Some(code), code == 200 && text == "OK")
            }
            None => (None, false),
        };
        let delivery = Delivery {
            trade_no: order.trade_no.clone(),
            status: status.to_owned(),
            attempt,
            http_status,
            acknowledged,
            rotated_secret: lock(&self.inner.previous_secret).is_some(),
        };
        lock(&self.inner.ledger).deliveries.push(delivery.clone());
        delivery
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn answer(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn valid_submit(fields: &ReceivedFields) -> Result<u64, String> {
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let get = |name: &str| fields.get(name).ok_or(format!("{name} is required"));
    let trade_no = get("tradeNo")?;
    if trade_no.len() > 32 {
        return Err("tradeNo longer than 32".into());
    }
    let amount = get("amount")?;
    let yen = amount
        .parse::<u64>()
        .ok()
        .filter(|y| *y >= 100 && digits(amount, 1, 20))
        .ok_or("amount must be whole yen >= 100")?;
    if !digits(get("bankCode")?, 4, 4) {
        return Err("bankCode must be 4 digits".into());
    }
    if !digits(get("bankNumber")?, 1, 20) {
        return Err("bankNumber must be digits".into());
    }
    let mobile = get("mobile")?;
    if !digits(mobile, 11, 11) || !mobile.starts_with('0') {
        return Err("mobile must be 11 digits from 0".into());
    }
    for name in ["userId", "email", "firstname", "lastname"] {
        get(name)?;
    }
    let notify = get("notifyUrl")?;
    if !(notify.starts_with("https://")
        || notify.starts_with("http://127.0.0.1")
        || notify.starts_with("http://localhost"))
    {
        return Err("notifyUrl must be https".into());
    }
    Ok(yen)
}

async fn disbursements(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match sandbox.authenticate(&headers, &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let trade_no = fields.get("tradeNo").unwrap_or_default().to_owned();
    *lock(&sandbox.inner.ledger)
        .submits
        .entry(trade_no.clone())
        .or_default() += 1;
    lock(&sandbox.inner.captured)
        .entry(trade_no.clone())
        .or_default()
        .push(body.clone());
    let yen = match valid_submit(&fields) {
        Ok(yen) => yen,
        Err(reason) => return sandbox.reject(reason),
    };
    let behaviour = sandbox.behaviour_for(&trade_no, yen);
    let existing = lock(&sandbox.inner.ledger).orders.get(&trade_no).cloned();
    if let Some(existing) = existing {
        // Vexora's behaviour on a duplicate is undocumented; answer like a rejection that
        // names the existing platform order (our client reads that as unconfirmed).
        return answer(
            json!({"code": "8000", "msg": "duplicate tradeNo", "success": false,
            "data": {"tradeNo": trade_no, "platFormTradeNo": existing.plat_form_trade_no}}),
        );
    }
    let initial = match behaviour {
        Behaviour::ImmediateSuccess => "0000",
        _ => "0015",
    };
    let order = SandboxOrder {
        trade_no: trade_no.clone(),
        plat_form_trade_no: format!("VX{}", uuid::Uuid::new_v4().simple()),
        amount: yen.to_string(),
        status: behaviour.final_status().to_owned(),
        notify_url: fields.get("notifyUrl").unwrap_or_default().to_owned(),
        remark: fields.get("remark").map(str::to_owned),
        behaviour,
    };
    if behaviour.creates_order() {
        lock(&sandbox.inner.ledger)
            .orders
            .insert(trade_no.clone(), order.clone());
        sandbox.webhooks_later(order.clone());
    }
    let accepted = json!({"code": "0000", "msg": "success", "success": true, "timestamp": now_ms().to_string(),
        "data": {"tradeNo": trade_no, "platFormTradeNo": order.plat_form_trade_no, "status": initial,
                 "message": "accepted", "remark": order.remark}});
    match behaviour {
        Behaviour::Rejected => sandbox.reject("rejected by script".into()),
        Behaviour::SystemErrorButCreated | Behaviour::SystemErrorNotCreated => {
            answer(json!({"code": "5000", "msg": "system error", "success": false}))
        }
        Behaviour::Html502ButCreated => (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        Behaviour::SlowButCreated => {
            tokio::time::sleep(sandbox.inner.config.slow_answer).await;
            answer(accepted)
        }
        Behaviour::DropConnectionButCreated => {
            // The head goes out, then the body fails: hyper closes the connection mid-answer.
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by the sandbox",
                ))
            });
            (StatusCode::OK, axum::body::Body::from_stream(broken)).into_response()
        }
        Behaviour::ProcessingThenSuccess
        | Behaviour::ImmediateSuccess
        | Behaviour::ProcessingThenFailure
        | Behaviour::QueryOnly
        | Behaviour::DuplicateOutOfOrder => answer(accepted),
    }
}

async fn query(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = match sandbox.authenticate(&headers, &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let trade_no = fields.get("tradeNo").unwrap_or_default().to_owned();
    let order = {
        let mut ledger = lock(&sandbox.inner.ledger);
        *ledger.queries.entry(trade_no.clone()).or_default() += 1;
        ledger.orders.get(&trade_no).cloned()
    };
    match order {
        None => answer(json!({"code": "8000", "msg": "order not found", "success": false})),
        Some(o) => answer(json!({"code": "0000", "msg": "success", "success": true,
            "data": {"tradeNo": o.trade_no, "platFormTradeNo": o.plat_form_trade_no, "status": o.status,
                     "amount": o.amount, "message": "query"}})),
    }
}

async fn balance(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = sandbox.authenticate(&headers, &body) {
        return *refused;
    }
    if *lock(&sandbox.inner.balance_outage) {
        return answer(json!({"code": "5000", "msg": "system error", "success": false}));
    }
    let (available, frozen) = sandbox.balance();
    answer(json!({"code": "0000", "msg": "success", "success": true,
        "data": {"availableAmount": available.to_string(), "freezeAmount": frozen.to_string(),
                 "unsettledAmount": "0"}}))
}

async fn balance_outage(
    State(sandbox): State<Sandbox>,
    axum::Json(on): axum::Json<bool>,
) -> StatusCode {
    sandbox.balance_outage(on);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptRequest {
    trade_no: String,
    behaviour: Behaviour,
}

async fn script(
    State(sandbox): State<Sandbox>,
    axum::Json(req): axum::Json<ScriptRequest>,
) -> StatusCode {
    sandbox.script(&req.trade_no, req.behaviour);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RotateRequest {
    app_secret: String,
}

async fn rotate(
    State(sandbox): State<Sandbox>,
    axum::Json(req): axum::Json<RotateRequest>,
) -> StatusCode {
    sandbox.rotate(&req.app_secret);
    StatusCode::NO_CONTENT
}

async fn ledger(State(sandbox): State<Sandbox>) -> axum::Json<Ledger> {
    axum::Json(sandbox.ledger())
}
