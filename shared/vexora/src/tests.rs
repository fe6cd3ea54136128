use std::time::Duration;

use payout_domain::TradeNo;
use url::Url;

use super::*;
use crate::signing::ReceivedFields;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "vexora-test-secret";

/// Merchant `0000000001` with `app_secret`, parsed as the secret's value is.
fn credentials(app_secret: &str) -> VexoraCredentials {
    VexoraCredentials::from_json(&payout_testkit::secret_json("0000000001", app_secret)).unwrap()
}

fn trade_no() -> TradeNo {
    TradeNo::parse("T20261123000001").unwrap()
}

fn notify_url() -> Url {
    Url::parse("https://api.example.jp/vexora/notify").unwrap()
}

fn body() -> DisbursementRequest {
    let creds = credentials(SECRET);
    DisbursementRequest::signed(
        &payout_testkit::payout("T20261123000001", 1500),
        &trade_no(),
        &notify_url(),
        1_763_900_000_123,
        &creds.app_secret,
    )
}

fn client(base: &str, timeout_ms: u64) -> VexoraClient {
    VexoraClient::new(
        &Url::parse(base).unwrap(),
        Duration::from_millis(timeout_ms),
    )
    .unwrap()
}

fn answered(code: Value, data: Value) -> Exchange {
    let envelope = parse_envelope(
        json!({"code": code, "msg": "m", "success": true, "data": data})
            .to_string()
            .as_bytes(),
    );
    Exchange::Answered {
        http_status: 200,
        envelope,
    }
}

#[test]
fn every_answer_maps_to_the_documented_outcome() {
    let t = "T20261123000001";
    let cases: Vec<(&str, Operation, Exchange, Outcome)> = vec![
        (
            "0015 processing",
            Operation::Submit,
            answered(
                json!("0000"),
                json!({"tradeNo": t, "status": "0015", "platFormTradeNo": "P1"}),
            ),
            Outcome::Accepted,
        ),
        (
            "0000 success",
            Operation::Submit,
            answered(json!("0000"), json!({"tradeNo": t, "status": "0000"})),
            Outcome::Succeeded,
        ),
        (
            "00029 failed",
            Operation::Submit,
            answered(json!("0000"), json!({"status": "00029"})),
            Outcome::Failed,
        ),
        (
            "8000 without platform order",
            Operation::Submit,
            answered(json!("8000"), Value::Null),
            Outcome::Refused,
        ),
        (
            "8000 as a number",
            Operation::Submit,
            answered(json!(8000), json!({})),
            Outcome::Refused,
        ),
        (
            "8000 with platform order",
            Operation::Submit,
            answered(json!("8000"), json!({"platFormTradeNo": "P1"})),
            Outcome::Unconfirmed(Unknown::RejectedWithPlatformOrder),
        ),
        (
            "8000 on a query",
            Operation::Query,
            answered(json!("8000"), Value::Null),
            Outcome::Unconfirmed(Unknown::QueryRejected),
        ),
        (
            "5000",
            Operation::Submit,
            answered(json!("5000"), Value::Null),
            Outcome::Unconfirmed(Unknown::ProviderError),
        ),
        (
            "5000 on a query",
            Operation::Query,
            answered(json!("5000"), Value::Null),
            Outcome::Unconfirmed(Unknown::ProviderError),
        ),
        (
            "partial 0001",
            Operation::Submit,
            answered(json!("0000"), json!({"status": "0001"})),
            Outcome::Unconfirmed(Unknown::UndocumentedStatus("0001".into())),
        ),
        (
            "status as number 29",
            Operation::Submit,
            answered(json!("0000"), json!({"status": 29})),
            Outcome::Unconfirmed(Unknown::UndocumentedStatus("29".into())),
        ),
        (
            "missing data",
            Operation::Submit,
            answered(json!("0000"), Value::Null),
            Outcome::Unconfirmed(Unknown::MissingStatus),
        ),
        (
            "data not an object",
            Operation::Submit,
            answered(json!("0000"), json!("oops")),
            Outcome::Unconfirmed(Unknown::MissingStatus),
        ),
        (
            "undocumented code",
            Operation::Submit,
            answered(json!("9999"), Value::Null),
            Outcome::Unconfirmed(Unknown::UndocumentedCode("9999".into())),
        ),
        (
            "missing code",
            Operation::Submit,
            answered(Value::Null, json!({"status": "0000"})),
            Outcome::Unconfirmed(Unknown::UndocumentedCode(String::new())),
        ),
        (
            "another order's answer",
            Operation::Query,
            answered(
                json!("0000"),
                json!({"tradeNo": "OTHER", "status": "00029"}),
            ),
            Outcome::Unconfirmed(Unknown::TradeNoMismatch),
        ),
        (
            "query success",
            Operation::Query,
            answered(json!("0000"), json!({"tradeNo": t, "status": "0000"})),
            Outcome::Succeeded,
        ),
        (
            "HTTP 502",
            Operation::Submit,
            Exchange::Answered {
                http_status: 502,
                envelope: None,
            },
            Outcome::Unconfirmed(Unknown::HttpStatus(502)),
        ),
        (
            "HTTP 500 with JSON failure",
            Operation::Submit,
            Exchange::Answered {
                http_status: 500,
                envelope: parse_envelope(br#"{"code":"8000"}"#),
            },
            Outcome::Unconfirmed(Unknown::HttpStatus(500)),
        ),
        (
            "HTTP 400",
            Operation::Submit,
            Exchange::Answered {
                http_status: 400,
                envelope: None,
            },
            Outcome::Unconfirmed(Unknown::HttpStatus(400)),
        ),
        (
            "HTTP 302",
            Operation::Submit,
            Exchange::Answered {
                http_status: 302,
                envelope: None,
            },
            Outcome::Unconfirmed(Unknown::HttpStatus(302)),
        ),
        (
            "HTML with 200",
            Operation::Submit,
            Exchange::Answered {
                http_status: 200,
                envelope: None,
            },
            Outcome::Unconfirmed(Unknown::NotJson),
        ),
        (
            "timeout",
            Operation::Submit,
            Exchange::TimedOut,
            Outcome::Unconfirmed(Unknown::Timeout),
        ),
        (
            "dropped",
            Operation::Submit,
            Exchange::Dropped,
            Outcome::Unconfirmed(Unknown::ConnectionDropped),
        ),
        (
            "refused",
            Operation::Submit,
            Exchange::NotSent(NotSent::Connect),
            Outcome::NotReceived(NotSent::Connect),
        ),
    ];
    for (reason, operation, exchange, expected) in cases {
        assert_eq!(
            outcome(operation, &trade_no(), &exchange),
            expected,
            "{reason}"
        );
    }
}

#[test]
fn only_definite_failures_report_failed() {
    use payout_domain::order::Reported;
    assert_eq!(Outcome::Failed.reported(), Reported::Failed);
    for unknown in [
        Outcome::Unconfirmed(Unknown::Timeout),
        Outcome::NotReceived(NotSent::Connect),
    ] {
        assert_eq!(unknown.reported(), Reported::Unknown);
    }
}

#[test]
fn envelopes_parse_leniently() {
    let e = parse_envelope(
        br#"{"code":0,"msg":null,"success":"true","timestamp":1763900000000,
            "data":{"tradeNo":"T1","amount":1500.00,"status":"0015","remark":["x"]}}"#,
    )
    .unwrap();
    assert_eq!(e.code.as_deref(), Some("0"));
    assert_eq!(e.msg, None);
    assert_eq!(e.success.as_deref(), Some("true"));
    assert_eq!(e.timestamp.as_deref(), Some("1763900000000"));
    let data = e.data.unwrap();
    assert_eq!(
        data.amount.as_deref(),
        Some("1500.00"),
        "numbers keep the text they arrived as"
    );
    let exact =
        parse_envelope(br#"{"code":"0000","data":{"amount":1500.9999999999999999}}"#).unwrap();
    assert_eq!(
        exact.data.unwrap().amount.as_deref(),
        Some("1500.9999999999999999"),
        "never rounded to 1501 through a float"
    );
    assert_eq!(
        parse_envelope(br#"{"code":"0000","code":"8000"}"#),
        None,
        "a field given twice is not an answer"
    );
    assert_eq!(data.status.as_deref(), Some("0015"));
    for not_object in [&b"<html>502</html>"[..], b"[]", b"\"0000\"", b""] {
        assert_eq!(parse_envelope(not_object), None);
    }
}

#[test]
fn the_submit_body_is_all_strings_signed_and_free_of_nulls() {
    let json = serde_json::to_value(body()).unwrap();
    let object = json.as_object().unwrap();
    for (name, value) in object {
        assert!(value.is_string(), "{name} is not a string: {value}");
    }
    let expected = [
        "amount",
        "bankCode",
        "bankNumber",
        "email",
        "firstname",
        "lastname",
        "mobile",
        "notifyUrl",
        "remark",
        "sign",
        "timestamp",
        "tradeNo",
        "userId",
    ];
    let mut names: Vec<_> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(object["timestamp"], "1763900000123");
    assert_eq!(object["notifyUrl"], "https://api.example.jp/vexora/notify");
    let received = ReceivedFields::from_json(json.to_string().as_bytes()).unwrap();
    assert!(received.verify(&credentials(SECRET).app_secret));
}

#[test]
fn a_payout_without_remark_sends_no_remark_field() {
    let mut payout = payout_testkit::payout("T1", 100);
    payout.remark = None;
    let creds = credentials(SECRET);
    let b = DisbursementRequest::signed(&payout, &trade_no(), &notify_url(), 1, &creds.app_secret);
    let json = serde_json::to_value(&b).unwrap();
    assert!(json.get("remark").is_none());
    assert!(!json.to_string().contains("null"));
}

#[test]
fn debug_of_a_submit_body_hides_personal_data() {
    let printed = format!("{:?}", body());
    for pii in [
        "1234567",
        "09012345678",
        "taro@example.jp",
        "タロウ",
        "ヤマダ",
    ] {
        assert!(!printed.contains(pii), "{pii}");
    }
}

#[tokio::test]
async fn submit_posts_the_documented_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/japan/v1/vexora/disbursements"))
        .and(header("merchantNo", "0000000001"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": "0000", "msg": "success", "success": true,
            "data": {"tradeNo": "T20261123000001", "platFormTradeNo": "P9", "status": "0015"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&format!("{}/japan/", server.uri()), 2000);
    let creds = credentials(SECRET);

    let exchange = c.submit(&creds, &body()).await;

    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::Accepted
    );
    assert_eq!(
        exchange.answer().unwrap().plat_form_trade_no.as_deref(),
        Some("P9")
    );
    let requests = server.received_requests().await.unwrap();
    let sent = ReceivedFields::from_json(&requests[0].body).unwrap();
    assert!(
        sent.verify(&creds.app_secret),
        "Vexora must be able to verify our signature"
    );
    assert_eq!(sent.get("tradeNo"), Some("T20261123000001"));
    assert_eq!(sent.get("amount"), Some("1500"));
}

#[tokio::test]
async fn query_posts_trade_no_timestamp_and_sign() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/vexora/queryPayOutResult"))
        .and(header("merchantNo", "0000000001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "data": {"tradeNo": "T20261123000001", "status": "0000"}
        })))
        .mount(&server)
        .await;
    let creds = credentials(SECRET);
    let q = QueryRequest::signed(&trade_no(), 1_763_900_000_000, &creds.app_secret);

    let exchange = client(&server.uri(), 2000).query(&creds, &q).await;

    // `code` 0 as a number is not the documented "0000": unknown, resolved by a later query.
    assert_eq!(
        outcome(Operation::Query, &trade_no(), &exchange),
        Outcome::Unconfirmed(Unknown::UndocumentedCode("0".into()))
    );
    let requests = server.received_requests().await.unwrap();
    let sent = ReceivedFields::from_json(&requests[0].body).unwrap();
    assert_eq!(
        sent.names().collect::<Vec<_>>(),
        ["sign", "timestamp", "tradeNo"]
    );
    assert!(sent.verify(&creds.app_secret));
}

#[tokio::test]
async fn html_error_pages_and_5xx_are_unconfirmed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(502)
                .set_body_raw("<html><body>Bad Gateway</body></html>", "text/html"),
        )
        .mount(&server)
        .await;
    let exchange = client(&server.uri(), 2000)
        .submit(&credentials(SECRET), &body())
        .await;
    assert_eq!(
        exchange,
        Exchange::Answered {
            http_status: 502,
            envelope: None
        }
    );
    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::Unconfirmed(Unknown::HttpStatus(502))
    );
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": "0000", "data": {"status": "0000"}}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let exchange = client(&server.uri(), 200)
        .submit(&credentials(SECRET), &body())
        .await;
    assert_eq!(exchange, Exchange::TimedOut);
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_may_have_been_received() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // Read the whole request (headers and body), then hang up without answering.
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("\"tradeNo\"") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        drop(socket);
        seen.len()
    });
    let exchange = client(&format!("http://{addr}"), 2000)
        .submit(&credentials(SECRET), &body())
        .await;
    assert!(
        server.await.unwrap() > 0,
        "the server must have received the request"
    );
    assert_eq!(exchange, Exchange::Dropped);
    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::Unconfirmed(Unknown::ConnectionDropped)
    );
}

#[tokio::test]
async fn a_refused_connection_certainly_did_not_reach_vexora() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exchange = client(&format!("http://127.0.0.1:{port}"), 2000)
        .submit(&credentials(SECRET), &body())
        .await;
    assert_eq!(exchange, Exchange::NotSent(NotSent::Connect));
    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::NotReceived(NotSent::Connect)
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/vexora/disbursements"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let exchange = client(&server.uri(), 2000)
        .submit(&credentials(SECRET), &body())
        .await;
    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::Unconfirmed(Unknown::HttpStatus(307))
    );
}

#[tokio::test]
async fn an_answer_larger_than_any_vexora_sends_is_not_read_as_one() {
    let server = MockServer::start().await;
    // A valid JSON answer saying "succeeded", padded beyond the cap.
    let padded = json!({
        "code": "0000",
        "data": {"tradeNo": "T20261123000001", "status": "0000"},
        "padding": "x".repeat(MAX_ANSWER_BYTES),
    });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(padded))
        .mount(&server)
        .await;

    let exchange = client(&server.uri(), 2000)
        .submit(&credentials(SECRET), &body())
        .await;

    assert_eq!(
        exchange,
        Exchange::Answered {
            http_status: 200,
            envelope: None
        }
    );
    assert_eq!(
        outcome(Operation::Submit, &trade_no(), &exchange),
        Outcome::Unconfirmed(Unknown::NotJson),
        "never SUCCEEDED from an answer that was not read whole"
    );
}

#[test]
fn statuses_map_exhaustively_and_text_is_bounded() {
    assert_eq!(VexoraStatus::parse("0000").outcome(), Outcome::Succeeded);
    assert_eq!(VexoraStatus::parse("0015").outcome(), Outcome::Accepted);
    assert_eq!(VexoraStatus::parse("00029").outcome(), Outcome::Failed);
    let long = "9".repeat(100);
    assert_eq!(VexoraStatus::parse(&long).as_str().len(), MAX_STATUS_CHARS);
    assert_eq!(bounded("ヤマダタロウ", 3), "ヤマダ");
    assert_eq!(bounded("abc", 5), "abc");
}

#[test]
fn reported_amounts_are_read_exactly() {
    let cases = [
        ("1500", Some(ReportedAmount::Whole(1500))),
        ("1500.00", Some(ReportedAmount::Whole(1500))),
        ("1500.50", Some(ReportedAmount::NotWhole)),
        ("1500.00000000000001", Some(ReportedAmount::NotWhole)),
        ("99999999999999999999999", Some(ReportedAmount::NotWhole)),
        ("1500.", None),
        (".5", None),
        ("1e3", None),
        ("-1500", None),
        ("", None),
        ("abc", None),
    ];
    for (text, expected) in cases {
        assert_eq!(ReportedAmount::parse(text), expected, "{text}");
    }
}

fn fields(pairs: &[(&str, &str)]) -> ReceivedFields {
    let object: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    ReceivedFields::from_json(Value::Object(object).to_string().as_bytes()).unwrap()
}

#[test]
fn a_notification_is_read_only_from_unambiguous_fields() {
    let base = [
        ("tradeNo", "T1"),
        ("status", "0000"),
        ("amount", "1500"),
        ("utr", "U1"),
    ];
    let n = Notification::parse(&fields(&base)).unwrap();
    assert_eq!(n.trade_no.as_str(), "T1");
    assert_eq!(n.status, VexoraStatus::Succeeded);
    assert_eq!(n.amount, ReportedAmount::Whole(1500));
    let refused = |pairs: &[(&str, &str)]| Notification::parse(&fields(pairs)).unwrap_err();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, NotificationError);
    let cases: Vec<Case> = vec![
        (
            "no tradeNo",
            vec![("status", "0000"), ("amount", "1500")],
            NotificationError::Missing("tradeNo"),
        ),
        (
            "no status",
            vec![("tradeNo", "T1"), ("amount", "1500")],
            NotificationError::Missing("status"),
        ),
        (
            "no amount",
            vec![("tradeNo", "T1"), ("status", "0000")],
            NotificationError::Refused(Refusal::MissingAmount),
        ),
        (
            "a submit-only field",
            vec![
                ("tradeNo", "T1"),
                ("status", "0000"),
                ("amount", "1500"),
                ("userId", "u"),
            ],
            NotificationError::Refused(Refusal::SubmitOnlyField),
        ),
        (
            "a name with an underscore",
            vec![
                ("tradeNo", "T1"),
                ("status", "0000"),
                ("amount", "1500"),
                ("a_b", "u"),
            ],
            NotificationError::Refused(Refusal::FieldName),
        ),
        (
            "a value holding another field",
            vec![
                ("tradeNo", "T1"),
                ("status", "0000"),
                ("amount", "1500"),
                ("message", "xstatus=00029"),
            ],
            NotificationError::Refused(Refusal::Ambiguous),
        ),
        (
            "an order number whose end could belong to the next name",
            vec![
                ("tradeNo", "T1x"),
                ("status", "0000"),
                ("amount", "1500"),
                ("utr", "U1"),
            ],
            NotificationError::Refused(Refusal::Ambiguous),
        ),
        (
            "a status that is not digits",
            vec![("tradeNo", "T1"), ("status", "0000s"), ("amount", "1500")],
            NotificationError::Refused(Refusal::MalformedStatus),
        ),
        (
            "an exponent",
            vec![("tradeNo", "T1"), ("status", "0000"), ("amount", "1e3")],
            NotificationError::Refused(Refusal::MalformedAmount),
        ),
        (
            "an order number no order has",
            vec![("tradeNo", "T 1"), ("status", "0000"), ("amount", "1500")],
            NotificationError::UnknownTradeNo,
        ),
    ];
    for (reason, pairs, expected) in cases {
        assert_eq!(refused(&pairs), expected, "{reason}");
    }
    let long_message = "m".repeat(10_000);
    let n = Notification::parse(&fields(&[
        ("tradeNo", "T1"),
        ("status", "0000"),
        ("amount", "1500"),
        ("message", &long_message),
        ("platFormTradeNo", &long_message),
    ]))
    .unwrap();
    assert_eq!(
        n.message.unwrap().len(),
        MAX_MESSAGE_CHARS,
        "stored text is bounded"
    );
    assert_eq!(n.plat_form_trade_no.unwrap().len(), MAX_VALUE_CHARS);
}
