//! Handler tests: real API Gateway HTTP API v2 events, in-memory fakes (and, in `integration`,
//! the moto server and a local Vexora HTTP fake). Every response is checked against
//! `openapi.yaml`.

use super::*;
use chrono::TimeZone;
use lambda_http::http::header;
use payout_app::batch::BatchId;
use payout_domain::FieldError;
use payout_testkit::{
    FakeSecretStore, InMemoryStore, RecordingMetrics, ScriptedGateway, vexora_answer,
};
use serde_json::{Value, json};
use std::sync::OnceLock;
use vexora::signing::ReceivedFields;
use vexora::{Exchange, NotSent};

mod batches;
mod integration;

const SECRET: &str = "CANARY-APP-SECRET-7f3a";
const NOTIFY: &str = "https://api.example.jp/vexora/notify";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
}

fn an_hour_later() -> DateTime<Utc> {
    t0() + chrono::Duration::hours(1)
}

type TestApp = App<
    InMemoryStore,
    ScriptedGateway,
    FakeSecretStore,
    RecordingMetrics,
    std::sync::Arc<payout_testkit::MemoryQueue>,
>;

fn app(answer: Exchange) -> TestApp {
    App {
        store: InMemoryStore::new(),
        gateway: ScriptedGateway::answering(answer),
        secrets: payout_testkit::secrets(SECRET),
        metrics: RecordingMetrics::default(),
        notify_url: Url::parse(NOTIFY).unwrap(),
        abandoned_after: chrono::Duration::seconds(28),
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        clock: t0,
        balance: payout_app::balance::BalanceCache::default(),
        queue: None,
    }
}

fn processing(trade_no: &str) -> Exchange {
    vexora_answer("0000", Some("0015"), trade_no)
}

/// The fixture event with another method, path, stage, query and body.
fn event(method: &str, path: &str, stage: &str, query: &str, body: Option<&str>) -> Request {
    let mut e: Value = serde_json::from_str(include_str!("../../events/post-payout.json")).unwrap();
    e["rawPath"] = path.into();
    e["rawQueryString"] = query.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    e["requestContext"]["stage"] = stage.into();
    e["routeKey"] = "$default".into();
    e["requestContext"]["routeKey"] = "$default".into();
    if !query.is_empty() {
        let params: serde_json::Map<String, Value> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        e["queryStringParameters"] = Value::Object(params);
    }
    e["body"] = body.map_or(Value::Null, Value::from);
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

fn post(body: &str) -> Request {
    event("POST", "/payouts", "$default", "", Some(body))
}

fn get(trade_no: &str) -> Request {
    event("GET", &format!("/payouts/{trade_no}"), "$default", "", None)
}

struct Answered {
    status: u16,
    body: Value,
    headers: lambda_http::http::HeaderMap,
}

/// Sends a request and checks the answer against `openapi.yaml` for its route.
async fn send<
    S: OrderStore + BatchStore,
    G: PayoutGateway,
    K: SecretStore,
    M: Metrics,
    Q: payout_app::batch::BatchQueue,
>(
    app: &App<S, G, K, M, Q>,
    request: Request,
) -> Answered {
    let method = request.method().as_str().to_lowercase();
    let path = route_path(&request);
    let response = handle(app, request).await;
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let route = if path == "/payouts" {
        Some("/payouts")
    } else if path.starts_with("/payouts/") && path.matches('/').count() == 2 {
        Some("/payouts/{tradeNo}")
    } else if path == "/balance" {
        Some("/balance")
    } else if path == "/batches" {
        Some("/batches")
    } else if path.starts_with("/batches/") && path.matches('/').count() == 2 {
        Some("/batches/{batchId}")
    } else {
        None
    };
    if let Some(route) = route {
        assert_matches_openapi(route, &method, status, &body);
    }
    Answered {
        status,
        body,
        headers: response.headers().clone(),
    }
}

fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_norway::from_str(include_str!("../../../../openapi.yaml")).unwrap())
}

/// Validates a response body against the schema `openapi.yaml` documents for it.
fn assert_matches_openapi(route: &str, method: &str, status: u16, body: &Value) {
    let doc = openapi();
    let operation = &doc["paths"][route][method];
    let mut response = if status == 405 {
        // Any method a route does not have answers the shared 405 response.
        &doc["components"]["responses"]["MethodNotAllowed"]
    } else {
        assert!(operation.is_object(), "{method} {route} is not documented");
        &operation["responses"][status.to_string()]
    };
    assert!(
        response.is_object(),
        "{method} {route} {status} is not documented"
    );
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        response = &doc["components"]["responses"][name];
    }
    let schema = &response["content"]["application/json"]["schema"];
    let root = json!({ "components": doc["components"], "allOf": [schema] });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {route} {status} does not match openapi.yaml: {errors:?}\n{body}"
    );
}

fn stored(app: &TestApp, trade_no: &str) -> Option<Order> {
    app.store.snapshot(&TradeNo::parse(trade_no).unwrap())
}

#[tokio::test]
async fn a_new_payout_accepted_by_vexora_is_201_processing() {
    let app = app(processing("NEW1"));

    let answer = send(&app, post(&payout_testkit::payout_json("NEW1", 1500))).await;

    assert_eq!(answer.status, 201);
    assert_eq!(answer.body["status"], "PROCESSING");
    assert_eq!(answer.body["tradeNo"], "NEW1");
    assert_eq!(answer.body["amount"], 1500);
    assert_eq!(answer.body["currency"], "JPY");
    assert_eq!(answer.body["bankNumber"], "****4567");
    assert_eq!(answer.body["platFormTradeNo"], "PF-NEW1");
    assert_eq!(answer.body["vexora"]["status"], "0015");
    assert_eq!(app.gateway.submits().len(), 1);
    assert_eq!(
        stored(&app, "NEW1").unwrap().status,
        OrderStatus::Processing
    );
}

#[tokio::test]
async fn definite_answers_are_201_with_their_final_state() {
    let cases = [
        ("0000", Some("0000"), "SUCCEEDED"),
        ("0000", Some("00029"), "FAILED"),
        ("8000", None, "FAILED"),
    ];
    for (code, status, expected) in cases {
        let app = app(vexora_answer(code, status, "DEF1"));
        let answer = send(&app, post(&payout_testkit::payout_json("DEF1", 1500))).await;
        assert_eq!(answer.status, 201, "{code}/{status:?}");
        assert_eq!(answer.body["status"], expected, "{code}/{status:?}");
        assert_eq!(stored(&app, "DEF1").unwrap().status.as_str(), expected);
    }
}

#[tokio::test]
async fn ambiguous_answers_are_202_unconfirmed_never_failed() {
    let html = Exchange::Answered {
        http_status: 502,
        envelope: None,
    };
    let cases = [
        ("timeout", Exchange::TimedOut),
        ("dropped", Exchange::Dropped),
        ("html 502", html),
        ("code 5000", vexora_answer("5000", None, "AMB1")),
        (
            "undocumented status",
            vexora_answer("0000", Some("0001"), "AMB1"),
        ),
        (
            "undocumented code",
            vexora_answer("7777", Some("0000"), "AMB1"),
        ),
    ];
    for (reason, exchange) in cases {
        let app = app(exchange);
        let answer = send(&app, post(&payout_testkit::payout_json("AMB1", 1500))).await;
        assert_eq!(answer.status, 202, "{reason}");
        assert_eq!(answer.body["status"], "UNCONFIRMED", "{reason}");
        let order = stored(&app, "AMB1").unwrap();
        assert_eq!(order.status, OrderStatus::Unconfirmed, "{reason}");
        let flagged = reason.starts_with("undocumented");
        assert_eq!(
            app.metrics.total(payout_app::metrics::PAYOUT_ANOMALY),
            u64::from(flagged),
            "{reason}: undocumented answers raise the anomaly alarm on the submit path too"
        );
        assert_eq!(order.anomalies.len(), usize::from(flagged), "{reason}");
        let counted = |name| app.metrics.total(name);
        assert_eq!(
            (
                counted(payout_app::metrics::PAYOUT_SUBMITTED),
                counted(payout_app::metrics::PAYOUT_UNCONFIRMED)
            ),
            (1, 1),
            "{reason}: the UNCONFIRMED rate's numerator and denominator"
        );
        let unavailable = ["timeout", "dropped", "html 502"].contains(&reason);
        assert_eq!(
            counted(payout_app::metrics::VEXORA_UNAVAILABLE),
            u64::from(unavailable),
            "{reason}"
        );
        assert!(
            order.check_after.is_some(),
            "{reason}: must stay findable by the reconciler"
        );
    }
}

#[tokio::test]
async fn vexora_unreachable_is_503_and_leaves_nothing_so_a_retry_starts_afresh() {
    let app = app(Exchange::NotSent(NotSent::Connect));

    let first = send(&app, post(&payout_testkit::payout_json("DOWN1", 1500))).await;

    assert_eq!(first.status, 503);
    assert_eq!(first.body["error"], "vexora_unreachable");
    assert_eq!(stored(&app, "DOWN1"), None);
    assert_eq!(
        app.metrics.total(payout_app::metrics::VEXORA_UNAVAILABLE),
        1
    );

    app.gateway.then_submit(processing("DOWN1"));
    let retry = send(&app, post(&payout_testkit::payout_json("DOWN1", 1500))).await;
    assert_eq!(retry.status, 201);
    assert_eq!(
        app.gateway.submits().len(),
        2,
        "the first call never reached Vexora"
    );
}

#[tokio::test]
async fn a_withdrawal_that_landed_but_reported_an_error_still_answers_nothing_was_sent() {
    let app = app(Exchange::NotSent(NotSent::Connect));
    app.store.fail_after_applying("delete_pending", 1);

    let first = send(&app, post(&payout_testkit::payout_json("DOWN2", 1500))).await;

    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.body["error"], "vexora_unreachable");
    assert_eq!(first.body["tradeNo"], "DOWN2");
    assert_eq!(stored(&app, "DOWN2"), None);
    assert_eq!(app.metrics.total(payout_app::metrics::PAYOUT_ANOMALY), 0);
    assert_eq!(
        app.metrics.total(payout_app::metrics::VEXORA_UNAVAILABLE),
        1,
        "one unreachable call is counted once, whichever path records it"
    );
    // Nothing was sent and nothing is kept: no payout to count, so no UNCONFIRMED rate either.
    assert_eq!(app.metrics.total(payout_app::metrics::PAYOUT_SUBMITTED), 0);
    assert_eq!(
        app.metrics.total(payout_app::metrics::PAYOUT_UNCONFIRMED),
        0
    );
}

#[tokio::test]
async fn an_unreachable_vexora_is_counted_once_when_the_withdrawal_fails_too() {
    let app = app(Exchange::NotSent(NotSent::Connect));
    app.store.fail_operation("delete_pending");

    let first = send(&app, post(&payout_testkit::payout_json("DOWN4", 1500))).await;

    assert_ne!(first.status, 201, "{}", first.body);
    assert_eq!(
        app.metrics.total(payout_app::metrics::VEXORA_UNAVAILABLE),
        1
    );
}

#[tokio::test]
async fn an_unreachable_vexora_never_touches_a_later_submits_order() {
    // Submit A's intent was withdrawn; submit B stored its own for the same tradeNo. A's late
    // recording must not land on B's order.
    let app = app(Exchange::NotSent(NotSent::Connect));
    let mut b = Order::pending(
        TradeNo::parse("DOWN3").unwrap(),
        &payout_testkit::payout("DOWN3", 1500),
        t0(),
        t0(),
    );
    b.intent_id = Some("intent-of-b".into());
    app.store.insert(b);
    let mut a = stored(&app, "DOWN3").unwrap();
    a.intent_id = Some("intent-of-a".into());

    let outcome = app.record(a, &Exchange::NotSent(NotSent::Connect)).await;

    assert!(
        matches!(outcome, Answer::VexoraUnreachable(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.response().status(), 503);
    let order = stored(&app, "DOWN3").unwrap();
    assert_eq!(order.status, OrderStatus::Pending, "B's order is untouched");
    assert_eq!(order.intent_id.as_deref(), Some("intent-of-b"));
}

#[tokio::test]
async fn a_retry_of_an_abandoned_order_is_answered_even_when_storing_it_fails() {
    let app = App {
        clock: an_hour_later,
        ..app(processing("FLY3"))
    };
    app.store.insert(Order::pending(
        TradeNo::parse("FLY3").unwrap(),
        &payout_testkit::payout("FLY3", 1500),
        t0(),
        t0(),
    ));
    app.store.fail_operation("transition");

    let retry = send(&app, post(&payout_testkit::payout_json("FLY3", 1500))).await;
    let read = send(&app, get("FLY3")).await;

    assert_eq!(
        (retry.status, read.status),
        (200, 200),
        "never a 5xx for an order that exists"
    );
    assert_eq!(retry.body["status"], "UNCONFIRMED");
    assert_eq!(read.body["status"], "UNCONFIRMED");
    assert!(app.gateway.submits().is_empty());
}

#[tokio::test]
async fn a_503_names_the_generated_trade_no_so_a_retry_can_use_it() {
    let app = app(processing("ignored"));
    app.store.set_unavailable(true);
    let mut body: Value = serde_json::from_str(&payout_testkit::payout_json("X", 1500)).unwrap();
    body.as_object_mut().unwrap().remove("tradeNo");

    let answer = send(&app, post(&body.to_string())).await;

    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body["tradeNo"].as_str().map(str::len),
        Some(20),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn the_same_payload_again_is_200_with_the_stored_order_and_no_call() {
    let app = app(processing("DUP1"));
    let first = send(&app, post(&payout_testkit::payout_json("DUP1", 1500))).await;

    let reordered_with_string_amount = r#"{"remark":"test payout","lastname":"ヤマダ","firstname":"タロウ",
        "email":"taro@example.jp","mobile":"09012345678","userId":"user-42","bankNumber":"1234567",
        "bankCode":"0005","amount":"1500","tradeNo":"DUP1"}"#;
    let again = send(&app, post(reordered_with_string_amount)).await;

    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(app.gateway.submits().len(), 1);
}

#[tokio::test]
async fn the_same_trade_no_with_another_payload_is_422_and_no_call() {
    let app = app(processing("MIS1"));
    send(&app, post(&payout_testkit::payout_json("MIS1", 1500))).await;

    let other = send(&app, post(&payout_testkit::payout_json("MIS1", 1600))).await;

    assert_eq!(other.status, 422);
    assert_eq!(other.body["error"], "idempotency_mismatch");
    assert_eq!(app.gateway.submits().len(), 1);
    assert_eq!(stored(&app, "MIS1").unwrap().amount.yen(), 1500);
}

#[tokio::test]
async fn a_submit_still_in_flight_is_409_and_an_abandoned_one_reads_unconfirmed() {
    let app = app(processing("FLY1"));
    let order = Order::pending(
        TradeNo::parse("FLY1").unwrap(),
        &payout_testkit::payout("FLY1", 1500),
        t0(),
        t0(),
    );
    app.store.insert(order);

    let in_flight = send(&app, post(&payout_testkit::payout_json("FLY1", 1500))).await;
    assert_eq!(in_flight.status, 409);
    assert_eq!(in_flight.body["error"], "in_flight");

    let later = App {
        clock: an_hour_later,
        ..app
    };
    let abandoned = send(&later, post(&payout_testkit::payout_json("FLY1", 1500))).await;
    assert_eq!(abandoned.status, 200);
    assert_eq!(abandoned.body["status"], "UNCONFIRMED");
    assert_eq!(
        send(&later, get("FLY1")).await.body["status"],
        "UNCONFIRMED"
    );
    assert_eq!(
        stored(&later, "FLY1").unwrap().status,
        OrderStatus::Unconfirmed,
        "the table holds what is shown"
    );
    assert!(
        later.gateway.submits().is_empty(),
        "an abandoned order is never sent again"
    );
}

#[tokio::test]
async fn reading_an_abandoned_order_stores_it_unconfirmed() {
    let app = App {
        clock: an_hour_later,
        ..app(processing("FLY2"))
    };
    app.store.insert(Order::pending(
        TradeNo::parse("FLY2").unwrap(),
        &payout_testkit::payout("FLY2", 1500),
        t0(),
        t0(),
    ));

    let read = send(&app, get("FLY2")).await;

    assert_eq!(read.body["status"], "UNCONFIRMED");
    assert_eq!(
        stored(&app, "FLY2").unwrap().status,
        OrderStatus::Unconfirmed
    );
}

#[tokio::test]
async fn a_put_that_landed_but_reported_an_error_is_sent_exactly_once() {
    let app = app(processing("LAND1"));
    app.store.fail_after_applying("create", 1);

    let first = send(&app, post(&payout_testkit::payout_json("LAND1", 1500))).await;
    let retry = send(&app, post(&payout_testkit::payout_json("LAND1", 1500))).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "PROCESSING");
    assert_eq!(retry.status, 200);
    assert_eq!(app.gateway.submits().len(), 1);
}

#[tokio::test]
async fn an_unconfirmed_order_retried_is_answered_from_storage_and_never_sent_again() {
    let app = app(Exchange::TimedOut);
    let first = send(&app, post(&payout_testkit::payout_json("UNC1", 1500))).await;
    assert_eq!(first.status, 202);

    app.gateway.then_submit(processing("UNC1"));
    let retry = send(&app, post(&payout_testkit::payout_json("UNC1", 1500))).await;

    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["status"], "UNCONFIRMED");
    assert_eq!(app.gateway.submits().len(), 1);
}

#[tokio::test]
async fn a_missing_trade_no_is_generated_in_tokyo_time() {
    let app = app(processing("ignored"));
    let mut body: Value = serde_json::from_str(&payout_testkit::payout_json("X", 1500)).unwrap();
    body.as_object_mut().unwrap().remove("tradeNo");

    let answer = send(&app, post(&body.to_string())).await;

    // The answer names another tradeNo than the fake's, so Vexora's answer is unconfirmed.
    assert_eq!(answer.status, 202);
    let trade_no = answer.body["tradeNo"].as_str().unwrap();
    assert_eq!(trade_no.len(), 20);
    assert!(trade_no.starts_with("20261123120000"), "{trade_no}");
    assert_eq!(app.gateway.submits()[0].trade_no, trade_no);
}

#[tokio::test]
async fn every_validation_rule_is_a_400_naming_its_field_and_nothing_is_stored() {
    let cases: &[(&str, Value)] = &[
        ("tradeNo", json!("has space")),
        ("amount", json!(99)),
        ("amount", json!("100.5")),
        ("bankCode", json!("123")),
        ("bankNumber", json!("12a")),
        ("userId", json!("")),
        ("mobile", json!("+819012345678")),
        ("email", json!("nope")),
        ("firstname", json!("たろう")),
        ("lastname", json!("Yamada")),
        ("remark", json!("x".repeat(129))),
        ("unexpected", json!(1)),
    ];
    for (field, value) in cases {
        let app = app(processing("VAL1"));
        let mut body: Value =
            serde_json::from_str(&payout_testkit::payout_json("VAL1", 1500)).unwrap();
        body[*field] = value.clone();

        let answer = send(&app, post(&body.to_string())).await;

        assert_eq!(answer.status, 400, "{field}");
        assert_eq!(answer.body["error"], "validation_failed");
        assert_eq!(answer.body["fields"][0]["field"], *field);
        assert_eq!(app.store.calls(), 0, "{field}: nothing may be stored");
        assert!(app.gateway.submits().is_empty());
    }
}

#[tokio::test]
async fn all_violations_come_in_one_400() {
    let app = app(processing("X"));
    let answer = send(&app, post(r#"{"amount":"-1","mobile":"0"}"#)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["fields"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400() {
    for body in [
        None,
        Some(""),
        Some("not json"),
        Some("[1,2]"),
        Some("{\"amount\":"),
    ] {
        let app = app(processing("X"));
        let answer = send(&app, event("POST", "/payouts", "$default", "", body)).await;
        assert_eq!(answer.status, 400, "{body:?}");
        assert_eq!(answer.body["fields"][0]["field"], "body");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_before_parsing() {
    let app = app(processing("X"));
    let big = format!(r#"{{"remark":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let answer = send(&app, post(&big)).await;
    assert_eq!(answer.status, 413);
    assert_eq!(app.store.calls(), 0);
}

#[tokio::test]
async fn storage_down_before_sending_is_503_and_vexora_is_not_called() {
    let app = app(processing("STO1"));
    app.store.set_unavailable(true);

    let answer = send(&app, post(&payout_testkit::payout_json("STO1", 1500))).await;

    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["error"], "unavailable");
    assert!(app.gateway.submits().is_empty());
}

#[tokio::test]
async fn a_secret_put_back_to_a_placeholder_is_never_used_to_sign() {
    let store = FakeSecretStore::new(&payout_testkit::secret_json("0000000001", SECRET), t0());
    let app = App {
        secrets: payout_app::secrets::Secrets::load(store, std::time::Duration::ZERO)
            .await
            .unwrap(),
        ..app(processing("SEC1"))
    };
    app.secrets.store().put(
        &payout_testkit::secret_json("0000000000", "REPLACE-ME"),
        t0(),
    );

    let answer = send(&app, post(&payout_testkit::payout_json("SEC1", 1500))).await;

    // Neither the placeholder nor the version it replaced signs (issue 22 item 4: the old one is
    // no longer current): nothing is stored or sent, and the merchant may retry.
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body["error"], "unavailable");
    assert!(app.gateway.submits().is_empty());
    assert!(stored(&app, "SEC1").is_none());
}

#[tokio::test]
async fn a_failure_to_record_the_answer_keeps_the_order_pending_and_answers_unconfirmed() {
    let app = app(vexora_answer("0000", Some("00029"), "REC1"));
    app.store.fail_operation("transition");

    let answer = send(&app, post(&payout_testkit::payout_json("REC1", 1500))).await;

    assert_eq!(answer.status, 202);
    assert_eq!(
        answer.body["status"], "UNCONFIRMED",
        "never FAILED while unrecorded"
    );
    let order = stored(&app, "REC1").unwrap();
    assert_eq!(order.status, OrderStatus::Pending);
    assert!(order.check_after.is_some(), "the reconciler must find it");
}

#[tokio::test]
async fn the_request_sent_to_vexora_follows_section_3() {
    let app = app(processing("WIRE1"));
    send(&app, post(&payout_testkit::payout_json("WIRE1", 1500))).await;

    let sent = &app.gateway.submits()[0];
    let wire = serde_json::to_value(sent).unwrap();
    for (name, value) in wire.as_object().unwrap() {
        assert!(value.is_string(), "{name} must be a string");
    }
    assert_eq!(wire["notifyUrl"], NOTIFY);
    assert_eq!(wire["timestamp"], t0().timestamp_millis().to_string());
    assert_eq!(wire["amount"], "1500");
    assert_eq!(wire["firstname"], "タロウ");
    let fields = ReceivedFields::from_json(wire.to_string().as_bytes()).unwrap();
    assert!(fields.verify(&payout_testkit::credentials(SECRET).app_secret));
}

#[tokio::test]
async fn get_answers_the_masked_order_or_404() {
    let app = app(processing("GET1"));
    send(&app, post(&payout_testkit::payout_json("GET1", 1500))).await;

    let found = send(&app, get("GET1")).await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["status"], "PROCESSING");
    assert_eq!(found.body["bankNumber"], "****4567");

    let missing = send(&app, get("NOPE1")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "not_found");
    let malformed = send(&app, get("bad%20no")).await;
    assert_eq!(malformed.status, 404);
}

#[tokio::test]
async fn get_rejects_unknown_query_parameters_and_reports_storage_failure() {
    let app = app(processing("Q1"));
    for query in ["foo=1", "refresh=maybe", "refresh=true&x=2"] {
        let answer = send(&app, event("GET", "/payouts/Q1", "$default", query, None)).await;
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.body["error"], "invalid_query");
    }

    app.store.set_unavailable(true);
    assert_eq!(send(&app, get("Q1")).await.status, 503);
}

fn refresh(trade_no: &str) -> Request {
    event(
        "GET",
        &format!("/payouts/{trade_no}"),
        "$default",
        "refresh=true",
        None,
    )
}

#[tokio::test]
async fn refresh_resolves_a_non_final_order_once_through_the_query_api() {
    let app = app(Exchange::TimedOut);
    send(&app, post(&payout_testkit::payout_json("REF1", 1500))).await;
    app.gateway
        .then_query(vexora_answer("0000", Some("0000"), "REF1"));

    let answer = send(&app, refresh("REF1")).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "SUCCEEDED");
    assert_eq!(app.gateway.queries().len(), 1);
    assert_eq!(app.gateway.queries()[0].trade_no, "REF1");
    assert_eq!(app.gateway.submits().len(), 1, "never re-submitted");
    send(&app, refresh("REF1")).await;
    assert_eq!(
        app.gateway.queries().len(),
        1,
        "a final order is not queried"
    );
}

#[tokio::test]
async fn refresh_is_rate_limited_per_order_and_an_unknown_answer_changes_nothing() {
    let app = app(Exchange::TimedOut);
    send(&app, post(&payout_testkit::payout_json("REF2", 1500))).await;
    app.gateway.then_query(vexora_answer("8000", None, "REF2"));

    let first = send(&app, refresh("REF2")).await;
    let second = send(&app, refresh("REF2")).await;

    assert_eq!(
        first.body["status"], "UNCONFIRMED",
        "8000 on a query never fails an order"
    );
    assert_eq!(second.status, 200);
    assert_eq!(
        app.gateway.queries().len(),
        1,
        "one query per 10 s per order"
    );
    let later = App {
        clock: an_hour_later,
        ..app
    };
    later
        .gateway
        .then_query(vexora_answer("0000", Some("0015"), "REF2"));
    assert_eq!(
        send(&later, refresh("REF2")).await.body["status"],
        "PROCESSING"
    );
}

#[tokio::test]
async fn refresh_leaves_an_in_flight_submit_alone() {
    let app = app(processing("REF3"));
    app.store.insert(Order::pending(
        TradeNo::parse("REF3").unwrap(),
        &payout_testkit::payout("REF3", 1500),
        t0(),
        t0(),
    ));
    let answer = send(&app, refresh("REF3")).await;
    assert_eq!(answer.body["status"], "PENDING");
    assert!(app.gateway.queries().is_empty());
}

#[tokio::test]
async fn routing_works_with_and_without_a_stage_in_the_path() {
    let app = app(processing("STG1"));
    let staged = send(
        &app,
        event(
            "POST",
            "/prod/payouts",
            "prod",
            "",
            Some(&payout_testkit::payout_json("STG1", 1500)),
        ),
    )
    .await;
    assert_eq!(staged.status, 201);
    assert_eq!(
        send(&app, event("GET", "/prod/payouts/STG1", "prod", "", None))
            .await
            .status,
        200
    );
    assert_eq!(send(&app, get("STG1")).await.status, 200);
}

#[tokio::test]
async fn other_routes_are_404_and_other_methods_405_with_allow() {
    let app = app(processing("R1"));
    for path in ["/", "/payout", "/payouts/a/b", "/prod/payouts"] {
        let answer = send(&app, event("GET", path, "$default", "", None)).await;
        assert_eq!(answer.status, 404, "{path}");
    }
    let cases = [
        ("GET", "/payouts", "POST"),
        ("DELETE", "/payouts", "POST"),
        ("POST", "/payouts/R1", "GET"),
        ("PUT", "/payouts/R1", "GET"),
        ("POST", "/balance", "GET"),
    ];
    for (method, path, allow) in cases {
        let answer = send(&app, event(method, path, "$default", "", Some("{}"))).await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(answer.headers[header::ALLOW], allow);
    }
    assert!(app.gateway.submits().is_empty());
}

#[tokio::test]
async fn logs_are_one_json_summary_line_per_request_without_pii_or_secret() {
    let logs = payout_testkit::CapturedLogs::default();
    let _guard = logs.install();
    let app = app(processing("LOG1"));
    let canary = json!({
        "tradeNo": "LOG1", "amount": 1500, "bankCode": "0005",
        "bankNumber": "98765432109876", "userId": "user-42", "mobile": "09099998888",
        "email": "canary.person@example.jp", "firstname": "カナリア", "lastname": "テストメイ",
        "remark": "ok"
    });

    let ok = send(&app, post(&canary.to_string())).await;
    let mut bad = canary.clone();
    bad["amount"] = json!(1);
    let rejected = send(&app, post(&bad.to_string())).await;

    let lines = logs.lines();
    let summaries: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(summaries.len(), 2, "{lines:?}");
    assert_eq!(summaries[0]["trade_no"], "LOG1");
    assert_eq!(summaries[0]["outcome"], "accepted");
    assert_eq!(summaries[0]["status"], 201);
    assert!(summaries[0]["latency_ms"].is_number());
    let everything = format!("{} {} {}", logs.text(), ok.body, rejected.body);
    for secret in [
        "98765432109876",
        "09099998888",
        "canary.person",
        "カナリア",
        "テストメイ",
        SECRET,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn openapi_documents_every_error_code_the_handler_can_answer() {
    let documented = &openapi()["components"]["schemas"]["Error"]["properties"]["error"]["enum"];
    let (post, get) = (("/payouts", "post"), ("/payouts/{tradeNo}", "get"));
    let t = || TradeNo::parse("T1").unwrap();
    let errors = [
        (
            Answer::Invalid(vec![FieldError {
                field: "amount".into(),
                message: "m".into(),
            }]),
            post,
        ),
        (Answer::InvalidQuery(String::new()), get),
        (Answer::TooLarge, post),
        (Answer::NotFound(Some(t())), get),
        (Answer::NoRoute, get),
        (Answer::MethodNotAllowed("GET"), get),
        (Answer::InFlight(t()), post),
        (Answer::IdempotencyMismatch(t()), post),
        (Answer::SecretUnavailable, post),
        (Answer::StorageUnavailable(Some(t())), post),
        (Answer::Withdrawn(t()), post),
        (Answer::ReadUnavailable(t()), get),
        (Answer::VexoraUnreachable(t()), post),
        (Answer::BalanceUnavailable, ("/balance", "get")),
        (
            Answer::InsufficientBalance {
                total: 2,
                available: 1,
            },
            ("/batches", "post"),
        ),
        (Answer::ItemMismatch(t(), 3), ("/batches", "post")),
        (
            Answer::BatchMismatch(BatchId::parse("B").unwrap()),
            ("/batches", "post"),
        ),
        (
            Answer::BatchUnavailable(BatchId::parse("B").unwrap()),
            ("/batches", "post"),
        ),
        (Answer::BatchTooLarge, ("/batches", "post")),
        (Answer::BatchesOff, ("/batches", "post")),
        (
            Answer::BatchUnavailable(BatchId::parse("B").unwrap()),
            ("/batches/{batchId}", "get"),
        ),
    ];
    for (e, (route, method)) in errors {
        let response = e.response();
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_matches_openapi(route, method, response.status().as_u16(), &body);
        assert!(
            documented.as_array().unwrap().contains(&body["error"]),
            "{} is not in openapi.yaml",
            body["error"]
        );
    }
}

fn get_balance() -> Request {
    event("GET", "/balance", "$default", "", None)
}

#[tokio::test]
async fn the_balance_is_vexoras_reading_cached_and_503_when_vexora_cannot_tell() {
    let app = app(processing("BAL1"));
    app.gateway
        .then_balance(payout_testkit::balance_answer("250000", "1500", "300"));

    let answer = send(&app, get_balance()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({"availableAmount": 250000, "freezeAmount": 1500, "unsettledAmount": 300,
               "currency": "JPY", "asOf": "2026-11-23T03:00:00.000Z"})
    );
    // Within 30 s the reading is served again without asking Vexora.
    let again = send(&app, get_balance()).await;
    assert_eq!(again.body, answer.body);
    assert_eq!(app.gateway.balance_queries().len(), 1);

    for exchange in [
        Exchange::TimedOut,
        payout_testkit::vexora_answer("5000", None, "X"),
        payout_testkit::balance_answer("12.5", "0", "0"),
    ] {
        let failing = self::app(processing("BAL2"));
        failing.gateway.then_balance(exchange);
        for _ in 0..2 {
            let answer = send(&failing, get_balance()).await;
            assert_eq!(answer.status, 503);
            assert_eq!(answer.body["error"], "vexora_unavailable");
        }
        assert_eq!(
            failing.gateway.balance_queries().len(),
            1,
            "a failure is answered again for a few seconds, not asked again"
        );
        assert!(failing.gateway.submits().is_empty());
    }
}
