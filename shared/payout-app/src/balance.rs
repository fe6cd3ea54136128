//! The merchant's balance at Vexora (`queryBalance`): one reading rule for `GET /balance` and
//! the scheduled `VexoraAvailableBalance` metric, and the short cache in front of it.
//!
//! A balance is only ever what Vexora said just now: an answer that is not `code 0000` with
//! three whole, non-negative yen amounts is no balance (`503 vexora_unavailable`), never a zero
//! or a guess that a batch pre-check would trust.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics::{self, Metrics};
use crate::secrets::{SecretStore, Secrets};
use vexora::credentials::SecretError;
use vexora::{BalanceRequest, Exchange, PayoutGateway, ReportedAmount};

/// How long a reading is served again before Vexora is asked anew (at most 30 s:
/// docs/contract.md § `GET /balance`), counted from before the call, so no reading is older than
/// this when served.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a failure is answered again without asking Vexora: a merchant polling a broken
/// balance does not turn into a stream of calls at Vexora.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// The largest balance read from Vexora: what a JSON number carries exactly (2^53 - 1). A
/// balance is not a payout: it may exceed [`payout_domain::Amount::MAX_YEN`], the largest
/// payout, which is below it.
pub const MAX_BALANCE_YEN: u64 = (1 << 53) - 1;
const _: () = assert!(payout_domain::Amount::MAX_YEN < MAX_BALANCE_YEN);

/// The balance as the API answers it (whole yen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub available_amount: u64,
    pub freeze_amount: u64,
    pub unsettled_amount: u64,
    pub currency: &'static str,
    /// RFC 3339: when Vexora gave this reading.
    pub as_of: String,
}

/// Why there is no balance to show.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("the Vexora secret could not be read")]
    Secret(#[from] SecretError),
    #[error("Vexora gave no usable balance: {0}")]
    Unavailable(&'static str),
}

/// Reads a `queryBalance` exchange: HTTP 200, `code 0000`, and all three amounts present as
/// whole, non-negative yen below 2^53.
pub fn from_exchange(exchange: &Exchange, as_of: DateTime<Utc>) -> Result<Balance, &'static str> {
    let Exchange::Answered {
        http_status,
        envelope,
    } = exchange
    else {
        return Err("no answer");
    };
    if *http_status != 200 {
        return Err("not HTTP 200");
    }
    let envelope = envelope.as_ref().ok_or("not a JSON object")?;
    if envelope.code.as_deref() != Some("0000") {
        return Err("not code 0000");
    }
    let data = envelope.data.as_ref().ok_or("no data")?;
    let yen = |text: Option<&String>| match text.map(|t| ReportedAmount::parse(t)) {
        None => Err("an amount is missing"),
        Some(Some(ReportedAmount::Whole(yen))) if yen <= MAX_BALANCE_YEN => Ok(yen),
        Some(_) => Err("an amount is not whole yen below 2^53"),
    };
    Ok(Balance {
        available_amount: yen(data.available_amount.as_ref())?,
        freeze_amount: yen(data.freeze_amount.as_ref())?,
        unsettled_amount: yen(data.unsettled_amount.as_ref())?,
        currency: "JPY",
        as_of: payout_domain::timestamp(as_of),
    })
}

/// Asks Vexora now (signed like every request); a failed call counts as `VexoraUnavailable`.
pub async fn query<G, K, M>(
    gateway: &G,
    secrets: &Secrets<K>,
    metrics: &M,
    now: DateTime<Utc>,
) -> Result<Balance, BalanceError>
where
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
{
    let version = secrets.current().await?;
    let credentials = &version.credentials;
    let body = BalanceRequest::signed(now.timestamp_millis(), &credentials.app_secret);
    let exchange = gateway.balance(credentials, &body).await;
    from_exchange(&exchange, now).map_err(|problem| {
        metrics.count(metrics::VEXORA_UNAVAILABLE, 1);
        tracing::warn!(problem, "queryBalance gave no usable balance");
        BalanceError::Unavailable(problem)
    })
}

/// The last reading, served for [`CACHE_TTL`]; a failure for [`FAILURE_TTL`]. Concurrent
/// requests past the TTL wait for one call (single flight).
#[derive(Debug)]
pub struct BalanceCache {
    ttl: Duration,
    failure_ttl: Duration,
    held: tokio::sync::Mutex<Option<(Instant, Option<Balance>)>>,
}

impl Default for BalanceCache {
    fn default() -> Self {
        Self::new(CACHE_TTL)
    }
}

impl BalanceCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            failure_ttl: ttl.min(FAILURE_TTL),
            held: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get<G, K, M>(
        &self,
        gateway: &G,
        secrets: &Secrets<K>,
        metrics: &M,
        now: DateTime<Utc>,
    ) -> Result<Balance, BalanceError>
    where
        G: PayoutGateway,
        K: SecretStore,
        M: Metrics,
    {
        let mut held = self.held.lock().await;
        match held.as_ref() {
            Some((at, Some(balance))) if at.elapsed() < self.ttl => return Ok(balance.clone()),
            Some((at, None)) if at.elapsed() < self.failure_ttl => {
                return Err(BalanceError::Unavailable(
                    "the last reading failed moments ago",
                ));
            }
            _ => {}
        }
        let asked = Instant::now();
        let reading = query(gateway, secrets, metrics, now).await;
        *held = Some((asked, reading.as_ref().ok().cloned()));
        reading
    }
}
