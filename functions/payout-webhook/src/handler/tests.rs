//! Webhook tests: real API Gateway v2 events, notifications signed by a test signer, in-memory
//! fakes for every row of the contract's table, and sequences against the moto server.

use super::*;
use chrono::TimeZone;
use payout_core::secrets::MIN_REFRESH_INTERVAL;
use payout_core::testkit::{self, InMemoryStore, RecordingMetrics, StaticSecrets, signed_json};
use serde_json::Value;

mod sequences;

const SECRET: &str = "CANARY-HOOK-SECRET-91c2";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
}

async fn app_with<S: OrderStore>(
    store: S,
    secrets: StaticSecrets,
) -> App<S, StaticSecrets, RecordingMetrics> {
    App {
        store,
        keyring: Keyring::load(secrets, MIN_REFRESH_INTERVAL).await.unwrap(),
        metrics: RecordingMetrics::default(),
        processing_age: chrono::Duration::minutes(15),
        clock: t0,
    }
}

async fn app() -> App<InMemoryStore, StaticSecrets, RecordingMetrics> {
    app_with(
        InMemoryStore::new(),
        StaticSecrets::new(testkit::credentials(SECRET)),
    )
    .await
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

/// Stores a `PENDING` order for 1500 yen.
async fn with_order<S: OrderStore>(store: &S, trade_no: &str) {
    let order = payout_core::order::Order::pending(
        tn(trade_no),
        &testkit::payout(trade_no, 1500),
        t0(),
        t0(),
    );
    store.create(&order).await.unwrap();
}

fn event(method: &str, body: Option<&str>) -> Request {
    let mut e: Value = serde_json::from_str(include_str!("../../events/notify.json")).unwrap();
    e["requestContext"]["http"]["method"] = method.into();
    e["body"] = body.map_or(Value::Null, Value::from);
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

fn report(trade_no: &str, status: &str) -> Vec<(&'static str, String)> {
    vec![
        ("platFormTradeNo", format!("PF-{trade_no}")),
        ("tradeNo", trade_no.to_owned()),
        ("amount", "1500".to_owned()),
        ("status", status.to_owned()),
        ("message", "ok".to_owned()),
        ("timestamp", "1795435205000".to_owned()),
    ]
}

fn signed(fields: &[(&'static str, String)], secret: &str) -> String {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    signed_json(&pairs, secret)
}

struct Delivered {
    status: u16,
    body: String,
    content_type: String,
}

async fn deliver<S: OrderStore, K: SecretSource, M: Metrics>(
    app: &App<S, K, M>,
    body: &str,
) -> Delivered {
    deliver_event(app, event("POST", Some(body))).await
}

async fn deliver_event<S: OrderStore, K: SecretSource, M: Metrics>(
    app: &App<S, K, M>,
    request: Request,
) -> Delivered {
    let response = handle(app, request).await;
    Delivered {
        status: response.status().as_u16(),
        body: String::from_utf8(response.body().to_vec()).unwrap(),
        content_type: response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned(),
    }
}

async fn status_of(
    app: &App<InMemoryStore, StaticSecrets, RecordingMetrics>,
    trade_no: &str,
) -> OrderStatus {
    app.store.snapshot(&tn(trade_no)).unwrap().status
}

#[tokio::test]
async fn a_valid_success_is_applied_and_acknowledged_with_plain_ok() {
    let app = app().await;
    with_order(&app.store, "W1").await;

    let answer = deliver(&app, &signed(&report("W1", "0000"), SECRET)).await;

    assert_eq!((answer.status, answer.body.as_str()), (200, "OK"));
    assert!(answer.content_type.starts_with("text/plain"));
    let order = app.store.snapshot(&tn("W1")).unwrap();
    assert_eq!(order.status, OrderStatus::Succeeded);
    assert_eq!(order.plat_form_trade_no.as_deref(), Some("PF-W1"));
    assert_eq!(order.history.len(), 1);
    assert_eq!(order.history[0].status, "0000");
    assert_eq!(
        order.check_after, None,
        "a final order leaves the unresolved index"
    );
}

#[tokio::test]
async fn bad_signatures_are_401_and_change_nothing() {
    let good = signed(&report("W2", "0000"), SECRET);
    let good_sign = serde_json::from_str::<Value>(&good).unwrap()["sign"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_sign = |sign: Option<&str>| {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        match sign {
            Some(s) => v["sign"] = s.into(),
            None => {
                v.as_object_mut().unwrap().remove("sign");
            }
        }
        v.to_string()
    };
    let tampered = good.replace("\"1500\"", "\"150000\"");
    let cases = [
        ("tampered value", tampered),
        (
            "wrong secret",
            signed(&report("W2", "0000"), "another-secret"),
        ),
        ("missing sign", with_sign(None)),
        ("empty sign", with_sign(Some(""))),
        (
            "null sign",
            good.replace(&format!("\"{good_sign}\""), "null"),
        ),
        ("truncated sign", with_sign(Some(&good_sign[..31]))),
    ];
    for (reason, body) in cases {
        let app = app().await;
        with_order(&app.store, "W2").await;

        let answer = deliver(&app, &body).await;

        assert_eq!(answer.status, 401, "{reason}");
        let order = app.store.snapshot(&tn("W2")).unwrap();
        assert_eq!(order.status, OrderStatus::Pending, "{reason}");
        assert!(order.history.is_empty(), "{reason}");
        assert_eq!(
            app.metrics.total(metrics::WEBHOOK_SIGNATURE_REJECTED),
            1,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn signatures_verify_over_whatever_fields_arrive() {
    let mut extra = report("W3", "0000");
    extra.push(("remark", "echoed".into()));
    extra.push(("successTime", "2026-11-23 21:00:05".into()));
    extra.push(("utr", "UTR123".into()));
    let upper: Value = serde_json::from_str(&signed(&report("W3", "0000"), SECRET)).unwrap();
    let mut upper_case = upper.clone();
    upper_case["sign"] = upper["sign"].as_str().unwrap().to_uppercase().into();
    let numeric_amount = {
        let pairs = report("W3", "0000");
        let as_strs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let secret = secrecy::SecretString::from(SECRET.to_owned());
        let sign = payout_core::signing::sign(as_strs.iter().copied(), &secret);
        // The amount arrives as a JSON number; it was signed as its text `1500`.
        format!(
            r#"{{"platFormTradeNo":"PF-W3","tradeNo":"W3","amount":1500,"status":"0000","message":"ok","timestamp":"1795435205000","sign":"{sign}"}}"#
        )
    };
    let reordered = {
        let v: Value = serde_json::from_str(&signed(&report("W3", "0000"), SECRET)).unwrap();
        let mut entries: Vec<(String, Value)> =
            v.as_object().unwrap().clone().into_iter().collect();
        entries.reverse();
        let text: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", text.join(","))
    };
    let cases = [
        ("extra fields", signed(&extra, SECRET)),
        ("upper-case hex", upper_case.to_string()),
        ("numeric amount", numeric_amount),
        ("reordered keys", reordered),
    ];
    for (reason, body) in cases {
        let app = app().await;
        with_order(&app.store, "W3").await;
        let answer = deliver(&app, &body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "OK"),
            "{reason}"
        );
        assert_eq!(
            status_of(&app, "W3").await,
            OrderStatus::Succeeded,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = app().await;
    let no_trade_no: Vec<_> = report("W4", "0000")
        .into_iter()
        .filter(|(k, _)| *k != "tradeNo")
        .collect();
    let no_status: Vec<_> = report("W4", "0000")
        .into_iter()
        .filter(|(k, _)| *k != "status")
        .collect();
    let cases = [
        ("empty body", String::new()),
        ("not JSON", "tradeNo=W4".to_owned()),
        ("array", "[1,2]".to_owned()),
        ("string", "\"OK\"".to_owned()),
        (
            "nested object",
            r#"{"tradeNo":{"a":1},"sign":"x"}"#.to_owned(),
        ),
        ("signed but no tradeNo", signed(&no_trade_no, SECRET)),
        ("signed but no status", signed(&no_status, SECRET)),
    ];
    for (reason, body) in cases {
        let answer = deliver(&app, &body).await;
        assert_eq!(answer.status, 400, "{reason}");
    }
    assert_eq!(
        deliver_event(&app, event("POST", None)).await.status,
        400,
        "no body at all"
    );
}

#[tokio::test]
async fn an_unknown_trade_no_with_a_valid_signature_is_404() {
    let app = app().await;
    assert_eq!(
        deliver(&app, &signed(&report("NOBODY", "0000"), SECRET))
            .await
            .status,
        404
    );
    assert_eq!(
        deliver(&app, &signed(&report("bad no!", "0000"), SECRET))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn storage_failure_is_5xx_so_vexora_retries() {
    let app = app().await;
    with_order(&app.store, "W5").await;
    app.store.set_unavailable(true);

    let answer = deliver(&app, &signed(&report("W5", "0000"), SECRET)).await;

    assert_eq!(answer.status, 503);
    assert_ne!(answer.body, "OK");
}

#[tokio::test]
async fn an_amount_mismatch_is_acknowledged_as_an_anomaly_and_changes_no_state() {
    for amount in ["1600", "1500.50", "abc", "-1500"] {
        let app = app().await;
        with_order(&app.store, "W6").await;
        let mut fields = report("W6", "0000");
        fields[2].1 = amount.to_owned();

        let answer = deliver(&app, &signed(&fields, SECRET)).await;

        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "OK"),
            "{amount}"
        );
        let order = app.store.snapshot(&tn("W6")).unwrap();
        assert_eq!(order.status, OrderStatus::Pending, "{amount}");
        assert_eq!(order.anomalies.len(), 1, "{amount}");
        assert_eq!(order.anomalies[0].reason, "amount_mismatch");
        assert_eq!(order.anomalies[0].report["amount"], amount);
        assert_eq!(app.metrics.total(metrics::WEBHOOK_ANOMALY), 1);
    }
}

#[tokio::test]
async fn amounts_with_zero_decimals_match() {
    let app = app().await;
    with_order(&app.store, "W7").await;
    let mut fields = report("W7", "0000");
    fields[2].1 = "1500.00".to_owned();

    assert_eq!(deliver(&app, &signed(&fields, SECRET)).await.status, 200);
    assert_eq!(status_of(&app, "W7").await, OrderStatus::Succeeded);
    assert_eq!(app.metrics.total(metrics::WEBHOOK_ANOMALY), 0);
}

#[tokio::test]
async fn an_undocumented_status_keeps_the_order_non_final_and_is_flagged() {
    let app = app().await;
    with_order(&app.store, "W8").await;

    let answer = deliver(&app, &signed(&report("W8", "0001"), SECRET)).await;

    assert_eq!(answer.status, 200);
    let order = app.store.snapshot(&tn("W8")).unwrap();
    assert_eq!(order.status, OrderStatus::Unconfirmed);
    assert_eq!(order.anomalies[0].reason, "undocumented_status");
    assert_eq!(app.metrics.total(metrics::WEBHOOK_ANOMALY), 1);
}

#[tokio::test]
async fn anomalies_keep_no_personal_or_free_text_fields() {
    let app = app().await;
    with_order(&app.store, "W9").await;
    deliver(&app, &signed(&report("W9", "0000"), SECRET)).await;
    let mut contradiction = report("W9", "00029");
    contradiction.push(("remark", "カナリア 09011112222".into()));
    contradiction.push(("bankNumber", "99998888777".into()));

    deliver(&app, &signed(&contradiction, SECRET)).await;

    let order = app.store.snapshot(&tn("W9")).unwrap();
    assert_eq!(order.status, OrderStatus::Succeeded);
    let kept: Vec<&String> = order.anomalies[0].report.keys().collect();
    assert_eq!(
        kept,
        [
            "amount",
            "platFormTradeNo",
            "status",
            "timestamp",
            "tradeNo"
        ]
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let app = app().await;
    let answer = deliver_event(&app, event("GET", None)).await;
    assert_eq!(answer.status, 405);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = app().await;
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
    assert_eq!(deliver(&app, &big).await.status, 413);
}

#[tokio::test]
async fn forged_requests_refresh_the_secret_at_most_once_per_interval() {
    let app = app().await;
    with_order(&app.store, "W10").await;
    for _ in 0..5 {
        let answer = deliver(&app, &signed(&report("W10", "0000"), "forged")).await;
        assert_eq!(answer.status, 401);
    }
    // One refresh reads both stages; never one per request.
    assert_eq!(app.keyring.source().refreshes(), 2);
}

#[tokio::test]
async fn during_a_rotation_old_and_new_secrets_verify_and_a_third_does_not() {
    let secrets = StaticSecrets::new(testkit::credentials("old-secret"));
    let app = app_with(InMemoryStore::new(), secrets).await;
    for t in ["R1", "R2", "R3"] {
        with_order(&app.store, t).await;
    }
    app.keyring
        .source()
        .rotate(testkit::credentials("new-secret"));

    let new = deliver(&app, &signed(&report("R1", "0000"), "new-secret")).await;
    let old = deliver(&app, &signed(&report("R2", "0000"), "old-secret")).await;
    let third = deliver(&app, &signed(&report("R3", "0000"), "third-secret")).await;

    assert_eq!((new.status, old.status, third.status), (200, 200, 401));
    assert_eq!(status_of(&app, "R1").await, OrderStatus::Succeeded);
    assert_eq!(status_of(&app, "R2").await, OrderStatus::Succeeded);
    assert_eq!(status_of(&app, "R3").await, OrderStatus::Pending);
}

#[tokio::test]
async fn an_unreadable_secret_is_503() {
    let app = app().await;
    app.keyring.source().set_unavailable(true);
    let answer = deliver(&app, &signed(&report("W11", "0000"), SECRET)).await;
    assert_eq!(answer.status, 503);
}

#[tokio::test]
async fn logs_are_one_line_per_notification_without_pii_secret_or_body() {
    let logs = testkit::CapturedLogs::default();
    let _guard = logs.install();
    let app = app().await;
    with_order(&app.store, "W12").await;
    let mut fields = report("W12", "0000");
    fields.push(("remark", "カナリア-REMARK".into()));
    fields.push(("accountName", "ヤマダ カナリア".into()));

    deliver(&app, &signed(&fields, SECRET)).await;
    deliver(&app, &signed(&fields, "forged")).await;

    let lines = logs.lines();
    let notifications: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "notification")
        .collect();
    assert_eq!(notifications.len(), 2, "{lines:?}");
    assert_eq!(notifications[0]["trade_no"], "W12");
    assert_eq!(notifications[0]["verdict"], "applied");
    assert_eq!(notifications[0]["transition"], "SUCCEEDED");
    assert_eq!(notifications[1]["verdict"], "unauthorized");
    let text = logs.text();
    for leak in ["カナリア", SECRET, "PF-W12\",\"tradeNo"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}
