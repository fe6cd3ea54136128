//! The balance flow over the in-memory store.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use payout_app::balance::*;
use payout_app::metrics;
use payout_app::secrets::Secrets;
use std::time::Duration;
use vexora::Exchange;

use payout_testkit::{
    FakeSecretStore, RecordingMetrics, ScriptedGateway, balance_answer, vexora_answer,
};
use vexora::{NotSent, parse_envelope};

fn now() -> DateTime<Utc> {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 26, 3, 0, 0).unwrap()
}

async fn secrets() -> Secrets<FakeSecretStore> {
    payout_testkit::secrets("balance-secret")
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
    let expected = vexora::signing::sign(
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
