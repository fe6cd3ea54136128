//! Webhook tests: real API Gateway v2 events, notifications signed by a test signer, in-memory
//! fakes for every row of the contract's table (docs/contract.md § Webhook), and sequences against
//! the moto server.

use super::*;
use chrono::TimeZone;
use payout_app::secrets::{
    DEFAULT_PREVIOUS_SECRET_GRACE, DEFAULT_TTL, MIN_REFRESH_INTERVAL, Secrets,
};
use payout_testkit::{FakeSecretStore, InMemoryStore, RecordingMetrics, secret_json, signed_json};
use serde_json::Value;
use std::time::Duration;

mod sequences;

const SECRET: &str = "CANARY-HOOK-SECRET-91c2";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
}

type TestApp<S = InMemoryStore> = App<S, FakeSecretStore, RecordingMetrics>;

/// The Vexora secret as Secrets Manager would hold it, created a day before the test's clock.
fn secret_store(app_secret: &str) -> FakeSecretStore {
    FakeSecretStore::new(
        &secret_json("0000000001", app_secret),
        t0() - chrono::Duration::days(1),
    )
}

async fn app_with<S: OrderStore>(
    store: S,
    secrets: FakeSecretStore,
    min_refresh: Duration,
) -> TestApp<S> {
    App {
        store,
        keyring: Keyring::new(
            Secrets::load(secrets, DEFAULT_TTL).await.unwrap(),
            DEFAULT_PREVIOUS_SECRET_GRACE,
            min_refresh,
        ),
        metrics: RecordingMetrics::default(),
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        clock: t0,
    }
}

async fn app() -> TestApp {
    app_with(
        InMemoryStore::new(),
        secret_store(SECRET),
        MIN_REFRESH_INTERVAL,
    )
    .await
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

/// Stores a `PENDING` order for 1500 yen.
async fn with_order<S: OrderStore>(store: &S, trade_no: &str) {
    let order = payout_domain::order::Order::pending(
        tn(trade_no),
        &payout_testkit::payout(trade_no, 1500),
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

async fn deliver<S: OrderStore, K: SecretStore, M: Metrics>(
    app: &App<S, K, M>,
    body: &str,
) -> Delivered {
    deliver_event(app, event("POST", Some(body))).await
}

async fn deliver_event<S: OrderStore, K: SecretStore, M: Metrics>(
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

async fn status_of(app: &TestApp, trade_no: &str) -> OrderStatus {
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
        let sign = vexora::signing::sign(as_strs.iter().copied(), &secret);
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
    for amount in ["1600", "1500.50", "15", "99999999999999999999999"] {
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
        assert_eq!(order.anomalies[0].reason, AnomalyReason::AmountMismatch);
        assert_eq!(order.anomalies[0].report["amount"], amount);
        assert_eq!(app.metrics.total(metrics::PAYOUT_ANOMALY), 1);
    }
}

#[tokio::test]
async fn an_amount_that_is_not_a_plain_number_or_is_missing_is_refused() {
    for amount in [
        Some("abc"),
        Some("-1500"),
        Some("1e3"),
        Some("1500."),
        Some(""),
        None,
    ] {
        let app = app().await;
        with_order(&app.store, "W6b").await;
        let mut fields = report("W6b", "00029");
        match amount {
            Some(a) => fields[2].1 = a.to_owned(),
            None => {
                fields.remove(2);
            }
        }

        let answer = deliver(&app, &signed(&fields, SECRET)).await;

        assert_eq!(answer.status, 401, "{amount:?}");
        assert_eq!(
            status_of(&app, "W6b").await,
            OrderStatus::Pending,
            "{amount:?}"
        );
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
    assert_eq!(app.metrics.total(metrics::PAYOUT_ANOMALY), 0);
}

#[tokio::test]
async fn an_undocumented_status_keeps_the_order_non_final_and_is_flagged() {
    let app = app().await;
    with_order(&app.store, "W8").await;

    let answer = deliver(&app, &signed(&report("W8", "0001"), SECRET)).await;

    assert_eq!(answer.status, 200);
    let order = app.store.snapshot(&tn("W8")).unwrap();
    assert_eq!(order.status, OrderStatus::Unconfirmed);
    assert_eq!(order.anomalies[0].reason, AnomalyReason::UndocumentedStatus);
    assert_eq!(app.metrics.total(metrics::PAYOUT_ANOMALY), 1);
}

#[tokio::test]
async fn anomalies_keep_no_personal_or_free_text_fields() {
    let app = app().await;
    with_order(&app.store, "W9").await;
    deliver(&app, &signed(&report("W9", "0000"), SECRET)).await;
    let mut contradiction = report("W9", "00029");
    contradiction.push(("remark", "カナリア 09011112222".into()));
    contradiction.push(("accountNumber", "99998888777".into()));

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
    let fetches = app.keyring.secrets().store().fetches();
    for _ in 0..5 {
        let answer = deliver(&app, &signed(&report("W10", "0000"), "forged")).await;
        assert_eq!(answer.status, 401);
    }
    assert_eq!(
        app.keyring.secrets().store().fetches(),
        fetches + 1,
        "one read for the first failure, none for the rest of the interval"
    );
}

#[tokio::test]
async fn forged_requests_about_no_order_we_hold_never_read_the_secret() {
    let app = app_with(InMemoryStore::new(), secret_store(SECRET), Duration::ZERO).await;
    with_order(&app.store, "W13").await;
    let fetches = app.keyring.secrets().store().fetches();
    let mut other_amount = report("W13", "00029");
    other_amount[2].1 = "1600".into();
    for body in [
        signed(&report("NOBODY", "00029"), "forged"),
        signed(&other_amount, "forged"),
        signed(&report("bad no!", "00029"), "forged"),
    ] {
        assert_eq!(deliver(&app, &body).await.status, 401);
    }
    assert_eq!(app.keyring.secrets().store().fetches(), fetches);

    // One that names an order we hold, for its amount, could be a rotation: it is checked.
    assert_eq!(
        deliver(&app, &signed(&report("W13", "00029"), "forged"))
            .await
            .status,
        401
    );
    assert_eq!(app.keyring.secrets().store().fetches(), fetches + 1);
    assert_eq!(status_of(&app, "W13").await, OrderStatus::Pending);
}

#[tokio::test]
async fn during_a_rotation_old_and_new_secrets_verify_and_a_third_does_not() {
    let app = app_with(
        InMemoryStore::new(),
        secret_store("old-secret"),
        Duration::ZERO,
    )
    .await;
    for t in ["R1", "R2", "R3"] {
        with_order(&app.store, t).await;
    }
    app.keyring
        .secrets()
        .store()
        .put(&secret_json("0000000001", "new-secret"), t0());

    let new = deliver(&app, &signed(&report("R1", "0000"), "new-secret")).await;
    let old = deliver(&app, &signed(&report("R2", "0000"), "old-secret")).await;
    let third = deliver(&app, &signed(&report("R3", "0000"), "third-secret")).await;

    assert_eq!((new.status, old.status, third.status), (200, 200, 401));
    assert_eq!(status_of(&app, "R1").await, OrderStatus::Succeeded);
    assert_eq!(status_of(&app, "R2").await, OrderStatus::Succeeded);
    assert_eq!(status_of(&app, "R3").await, OrderStatus::Pending);
}

#[tokio::test]
async fn the_previous_secret_stops_verifying_after_the_grace_window() {
    let app = app_with(
        InMemoryStore::new(),
        secret_store("old-secret"),
        Duration::ZERO,
    )
    .await;
    with_order(&app.store, "R4").await;
    app.keyring.secrets().store().put(
        &secret_json("0000000001", "new-secret"),
        t0() - chrono::Duration::hours(25),
    );
    let new = deliver(&app, &signed(&report("R4", "0015"), "new-secret")).await;
    assert_eq!(
        new.status, 200,
        "the first notification signed with it finds the rotation"
    );

    let old = deliver(&app, &signed(&report("R4", "00029"), "old-secret")).await;

    assert_eq!(old.status, 401, "rotated 25 hours ago");
    assert_eq!(status_of(&app, "R4").await, OrderStatus::Processing);
}

#[tokio::test]
async fn bodies_a_signature_cannot_vouch_for_are_refused_before_anything_changes() {
    let mut submit_only = report("X1", "00029");
    submit_only.push(("bankCode", "0005".into()));
    let mut bad_name = report("X1", "00029");
    bad_name.push(("re_mark", "x".into()));
    let mut ambiguous = report("X1", "00029");
    ambiguous.push(("remark", "xstatus=0000".into()));
    let duplicate = signed(&report("X1", "00029"), SECRET).replacen('{', r#"{"status":"0000","#, 1);
    let cases = [
        ("a submit-only field", signed(&submit_only, SECRET)),
        (
            "a field name that is not [A-Za-z][A-Za-z0-9]*",
            signed(&bad_name, SECRET),
        ),
        (
            "a value that re-splits into other fields",
            signed(&ambiguous, SECRET),
        ),
        ("a field given twice", duplicate),
        (
            "a status that is not digits",
            signed(&report("X1", "OK"), SECRET),
        ),
    ];
    for (reason, body) in cases {
        let app = app().await;
        with_order(&app.store, "X1").await;

        let answer = deliver(&app, &body).await;

        assert_eq!(answer.status, 401, "{reason}");
        assert_eq!(
            status_of(&app, "X1").await,
            OrderStatus::Pending,
            "{reason}"
        );
        assert!(
            app.store.snapshot(&tn("X1")).unwrap().history.is_empty(),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_signed_submit_body_replayed_as_a_notification_changes_nothing() {
    // Issue 13 #2: the submit of X2 with remark `Xstatus=00029`, re-split as `remark: X,
    // status: 00029` with the submit's own signature.
    let app = app().await;
    with_order(&app.store, "X2").await;
    let payout = payout_testkit::payout_json("X2", 1500).replace("test payout", "Xstatus=00029");
    let submit = vexora::DisbursementRequest::signed(
        &payout_domain::PayoutRequest::from_json(payout.as_bytes()).unwrap(),
        &tn("X2"),
        &url::Url::parse("https://api.example.jp/vexora/notify").unwrap(),
        1_795_435_205_000,
        &secrecy::SecretString::from(SECRET.to_owned()),
    );
    let mut body: Value = serde_json::to_value(&submit).unwrap();
    body["remark"] = "X".into();
    body["status"] = "00029".into();
    let replayed = body.to_string();

    let answer = deliver(&app, &replayed).await;

    assert_eq!(answer.status, 401);
    assert_eq!(status_of(&app, "X2").await, OrderStatus::Pending);
}

#[tokio::test]
async fn the_replaced_template_placeholder_never_verifies() {
    let store = FakeSecretStore::new(
        &secret_json("0000000000", "REPLACE-ME"),
        t0() - chrono::Duration::hours(1),
    );
    store.put(
        &secret_json("0000000001", SECRET),
        t0() - chrono::Duration::minutes(5),
    );
    let app = app_with(InMemoryStore::new(), store, Duration::ZERO).await;
    with_order(&app.store, "R5").await;

    let forged = deliver(&app, &signed(&report("R5", "00029"), "REPLACE-ME")).await;

    assert_eq!(forged.status, 401);
    assert_eq!(status_of(&app, "R5").await, OrderStatus::Pending);
}

#[tokio::test]
async fn a_secrets_manager_outage_does_not_stop_a_warm_webhook() {
    let store = secret_store(SECRET);
    let app = App {
        keyring: Keyring::new(
            Secrets::load(store, Duration::ZERO).await.unwrap(),
            DEFAULT_PREVIOUS_SECRET_GRACE,
            MIN_REFRESH_INTERVAL,
        ),
        ..app().await
    };
    with_order(&app.store, "W11").await;
    app.keyring.secrets().store().set_unavailable(true);

    let answer = deliver(&app, &signed(&report("W11", "0000"), SECRET)).await;

    assert_eq!(answer.status, 200, "the cached secret still verifies");
}

#[tokio::test]
async fn logs_are_one_line_per_notification_without_pii_secret_or_body() {
    let logs = payout_testkit::CapturedLogs::default();
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

#[tokio::test]
async fn text_kept_from_a_notification_is_bounded() {
    let app = app().await;
    with_order(&app.store, "W14").await;
    let mut fields = report("W14", "0015");
    fields[4].1 = "m".repeat(12_000);
    fields[0].1 = "P".repeat(2_000);

    assert_eq!(deliver(&app, &signed(&fields, SECRET)).await.status, 200);

    let order = app.store.snapshot(&tn("W14")).unwrap();
    let vexora = order.vexora.unwrap();
    assert!(vexora.message.unwrap().chars().count() <= 256);
    assert!(order.plat_form_trade_no.unwrap().chars().count() <= 64);
    assert!(
        order.history[0]
            .plat_form_trade_no
            .as_ref()
            .unwrap()
            .chars()
            .count()
            <= 64
    );
}
