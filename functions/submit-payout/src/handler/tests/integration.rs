//! The handler over real parts: DynamoDB on the moto server and Vexora as a local HTTP fake.

use super::*;
use payout_aws::store::{DynamoOrderStore, create_table};
use payout_testkit::{Moto, aws_config_for};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use vexora::VexoraClient;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type RealApp = App<
    DynamoOrderStore,
    VexoraClient,
    FakeSecretStore,
    RecordingMetrics,
    payout_testkit::MemoryQueue,
>;

async fn real_app(vexora_base: &str, timeout_ms: u64) -> RealApp {
    let config = aws_config_for(&Moto::shared().endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("payouts-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.unwrap();
    App {
        store: DynamoOrderStore::new(client, table),
        gateway: VexoraClient::new(
            &Url::parse(vexora_base).unwrap(),
            Duration::from_millis(timeout_ms),
        )
        .unwrap(),
        secrets: payout_testkit::secrets(SECRET),
        metrics: RecordingMetrics::default(),
        notify_url: Url::parse(NOTIFY).unwrap(),
        abandoned_after: chrono::Duration::seconds(28),
        schedule: Schedule {
            processing_age: chrono::Duration::minutes(15),
        },
        clock: Utc::now,
        balance: payout_app::balance::BalanceCache::default(),
        queue: None,
    }
}

fn vexora_json(code: &str, status: Option<&str>) -> ResponseTemplate {
    let mut data = json!({"platFormTradeNo": "PF-REAL"});
    if let Some(status) = status {
        data["status"] = status.into();
    }
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": code, "msg": "ok", "success": true, "data": data}))
}

async fn vexora_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/vexora/disbursements"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn stored_status(app: &RealApp, trade_no: &str) -> OrderStatus {
    app.store
        .get(&TradeNo::parse(trade_no).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn each_vexora_outcome_ends_in_the_right_state_in_dynamodb() {
    let rejected = ResponseTemplate::new(200).set_body_json(json!({"code": "8000", "msg": "bad"}));
    let html = ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html");
    let slow = vexora_json("0000", Some("0000")).set_delay(Duration::from_secs(3));
    let cases = [
        (
            "processing",
            vexora_json("0000", Some("0015")),
            201,
            OrderStatus::Processing,
        ),
        (
            "success",
            vexora_json("0000", Some("0000")),
            201,
            OrderStatus::Succeeded,
        ),
        (
            "failure",
            vexora_json("0000", Some("00029")),
            201,
            OrderStatus::Failed,
        ),
        ("rejected 8000", rejected, 201, OrderStatus::Failed),
        (
            "system error 5000",
            vexora_json("5000", None),
            202,
            OrderStatus::Unconfirmed,
        ),
        (
            "undocumented status",
            vexora_json("0000", Some("0001")),
            202,
            OrderStatus::Unconfirmed,
        ),
        ("HTML 502", html, 202, OrderStatus::Unconfirmed),
        (
            "slower than the timeout",
            slow,
            202,
            OrderStatus::Unconfirmed,
        ),
    ];
    for (i, (reason, template, status, state)) in cases.into_iter().enumerate() {
        let server = vexora_answering(template).await;
        let app = real_app(&server.uri(), 300).await;
        let trade_no = format!("REAL{i}");

        let answer = send(&app, post(&payout_testkit::payout_json(&trade_no, 1500))).await;

        assert_eq!(answer.status, status, "{reason}");
        assert_eq!(stored_status(&app, &trade_no).await, state, "{reason}");
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_connection_dropped_after_sending_is_unconfirmed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("notifyUrl") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    });
    let app = real_app(&format!("http://{addr}"), 2000).await;

    let answer = send(&app, post(&payout_testkit::payout_json("DROP1", 1500))).await;

    assert_eq!(answer.status, 202);
    assert_eq!(stored_status(&app, "DROP1").await, OrderStatus::Unconfirmed);
}

#[tokio::test]
async fn twenty_concurrent_identical_submits_call_vexora_exactly_once() {
    let server =
        vexora_answering(vexora_json("0000", Some("0015")).set_delay(Duration::from_millis(400)))
            .await;
    let app = Arc::new(real_app(&server.uri(), 5000).await);
    let body = payout_testkit::payout_json("RACE1", 1500);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move { send(&*app, post(&body)).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }

    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "Vexora must be called once"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 201, 409].contains(s)),
        "{statuses:?}"
    );

    let other = send(&*app, post(&payout_testkit::payout_json("RACE1", 9999))).await;
    assert_eq!(other.status, 422);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "still one call"
    );
}

#[tokio::test]
async fn an_unconfirmed_order_is_never_sent_again() {
    let server = vexora_answering(vexora_json("5000", None)).await;
    let app = real_app(&server.uri(), 2000).await;

    let first = send(&app, post(&payout_testkit::payout_json("UNC9", 1500))).await;
    let retry = send(&app, post(&payout_testkit::payout_json("UNC9", 1500))).await;

    assert_eq!((first.status, retry.status), (202, 200));
    assert_eq!(retry.body["status"], "UNCONFIRMED");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn vexora_receives_section_3_exactly() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/vexora/disbursements"))
        .and(header("merchantNo", "0000000001"))
        .and(header("content-type", "application/json"))
        .respond_with(vexora_json("0000", Some("0015")))
        .expect(1)
        .mount(&server)
        .await;
    let app = real_app(&server.uri(), 2000).await;
    let before = Utc::now().timestamp_millis();

    let answer = send(&app, post(&payout_testkit::payout_json("SEC3", 1500))).await;

    let after = Utc::now().timestamp_millis();
    assert_eq!(answer.status, 201);
    let requests = server.received_requests().await.unwrap();
    let raw: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let expected = json!({
        "tradeNo": "SEC3", "amount": "1500", "bankCode": "0005", "bankNumber": "1234567",
        "userId": "user-42", "mobile": "09012345678", "email": "taro@example.jp",
        "firstname": "タロウ", "lastname": "ヤマダ", "notifyUrl": NOTIFY, "remark": "test payout"
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(&raw[name], value, "{name}");
    }
    let object = raw.as_object().unwrap();
    assert_eq!(
        object.len(),
        expected.as_object().unwrap().len() + 2,
        "plus timestamp and sign"
    );
    assert!(
        object.values().all(Value::is_string),
        "every value is a string, never null"
    );
    let timestamp: i64 = raw["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        (before..=after).contains(&timestamp),
        "epoch milliseconds of the call"
    );
    let fields = ReceivedFields::from_json(&requests[0].body).unwrap();
    assert!(fields.verify(&payout_testkit::credentials(SECRET).app_secret));
}
