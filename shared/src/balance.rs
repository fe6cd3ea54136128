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
use crate::secrets::{SecretError, SecretStore, Secrets};
use crate::vexora::{BalanceRequest, Exchange, PayoutGateway, ReportedAmount};

/// How long a reading is served again before Vexora is asked anew (at most 30 s:
/// docs/contract.md § `GET /balance`), counted from before the call, so no reading is older than
/// this when served.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a failure is answered again without asking Vexora: a merchant polling a broken
/// balance does not turn into a stream of calls at Vexora.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// The largest balance read from Vexora: what a JSON number carries exactly (2^53 - 1). A
/// balance is not a payout: it may exceed [`crate::domain::Amount::MAX_YEN`], the largest
/// payout, which is below it.
pub const MAX_BALANCE_YEN: u64 = (1 << 53) - 1;
const _: () = assert!(crate::domain::Amount::MAX_YEN < MAX_BALANCE_YEN);

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
        as_of: crate::domain::timestamp(as_of),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{
        FakeSecretStore, RecordingMetrics, ScriptedGateway, balance_answer, vexora_answer,
    };
    use crate::vexora::{NotSent, parse_envelope};

    fn now() -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 26, 3, 0, 0).unwrap()
    }

    async fn secrets() -> Secrets<FakeSecretStore> {
        crate::testkit::secrets("balance-secret")
    }

    #[test]
    fn only_code_0000_with_whole_yen_is_a_balance() {
        let good = from_exchange(&balance_answer("120000", "1500", "0"), now()).unwrap();
        assert_eq!(
            (
                good.available_amount,
                good.freeze_amount,
                good.unsettled_amount
            ),
            (120_000, 1500, 0)
        );
        assert_eq!(good.as_of, "2026-11-26T03:00:00.000Z");
        // Numbers as JSON numbers, and a zero fraction, are the same whole yen.
        let numbers = parse_envelope(
            br#"{"code":"0000","data":{"availableAmount":5000.0,"freezeAmount":0,"unsettledAmount":7}}"#,
        );
        let exchange = Exchange::Answered {
            http_status: 200,
            envelope: numbers,
        };
        assert_eq!(
            from_exchange(&exchange, now()).unwrap().available_amount,
            5000
        );

        let missing = parse_envelope(br#"{"code":"0000","data":{"availableAmount":"100"}}"#);
        let missing = Exchange::Answered {
            http_status: 200,
            envelope: missing,
        };
        assert!(
            from_exchange(&missing, now()).is_err(),
            "freeze and unsettled are not guessed"
        );
        for (bad, why) in [
            (balance_answer("12.5", "0", "0"), "a fraction"),
            (balance_answer("-5", "0", "0"), "negative"),
            (balance_answer("1e6", "0", "0"), "exponent"),
            (balance_answer("", "0", "0"), "empty available"),
            (balance_answer("100", "abc", "0"), "text frozen"),
            (
                balance_answer("9007199254740992", "0", "0"),
                "2^53: not exact in JSON",
            ),
            (vexora_answer("5000", None, "X"), "system error"),
            (vexora_answer("8000", None, "X"), "refused"),
            (Exchange::TimedOut, "timeout"),
            (Exchange::NotSent(NotSent::Connect), "not connected"),
            (
                Exchange::Answered {
                    http_status: 502,
                    envelope: None,
                },
                "HTML 502",
            ),
            (
                Exchange::Answered {
                    http_status: 500,
                    envelope: parse_envelope(br#"{"code":"0000","data":{"availableAmount":"1"}}"#),
                },
                "a 500 that looks fine",
            ),
        ] {
            assert!(from_exchange(&bad, now()).is_err(), "{why}");
        }
    }

    #[tokio::test]
    async fn the_request_is_signed_over_the_timestamp() {
        let gateway = ScriptedGateway::answering(Exchange::TimedOut);
        let secrets = secrets().await;
        let metrics = RecordingMetrics::default();
        query(&gateway, &secrets, &metrics, now()).await.unwrap();
        let sent = gateway.balance_queries();
        assert_eq!(sent.len(), 1);
        let version = secrets.current().await.unwrap();
        let expected = crate::signing::sign(
            [("timestamp", sent[0].timestamp.as_str())],
            &version.credentials.app_secret,
        );
        assert_eq!(sent[0].sign, expected);
        assert_eq!(sent[0].timestamp, now().timestamp_millis().to_string());
    }

    #[tokio::test]
    async fn a_reading_is_served_for_30_s_and_a_failure_for_5_s() {
        let gateway = ScriptedGateway::answering(Exchange::TimedOut);
        let secrets = secrets().await;
        let metrics = RecordingMetrics::default();

        let cache = BalanceCache::default();
        gateway.then_balance(Exchange::TimedOut);
        for _ in 0..3 {
            assert!(matches!(
                cache.get(&gateway, &secrets, &metrics, now()).await,
                Err(BalanceError::Unavailable(_))
            ));
        }
        assert_eq!(
            gateway.balance_queries().len(),
            1,
            "a failure is answered again, not asked again, for a few seconds"
        );
        assert_eq!(metrics.total(metrics::VEXORA_UNAVAILABLE), 1);

        let good = BalanceCache::default();
        gateway.then_balance(balance_answer("700", "0", "0"));
        let first = good.get(&gateway, &secrets, &metrics, now()).await.unwrap();
        gateway.then_balance(balance_answer("1", "0", "0"));
        let second = good.get(&gateway, &secrets, &metrics, now()).await.unwrap();
        assert_eq!(first, second, "served from the cache");
        assert_eq!(second.available_amount, 700);
        assert_eq!(gateway.balance_queries().len(), 2);

        // Past its TTL the cache asks again, after a reading as after a failure. (The "1"
        // queued above was never taken: the cached reading answered.)
        let expired = BalanceCache::new(Duration::ZERO);
        let get = || expired.get(&gateway, &secrets, &metrics, now());
        assert_eq!(get().await.unwrap().available_amount, 1);
        gateway.then_balance(Exchange::TimedOut);
        assert!(get().await.is_err());
        gateway.then_balance(balance_answer("9", "0", "0"));
        assert_eq!(get().await.unwrap().available_amount, 9);
    }
}
