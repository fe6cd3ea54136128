//! End to end over the real function binaries (under our Lambda runtime-API harness), DynamoDB
//! and Secrets Manager on the moto server, and the Vexora sandbox sending real signed webhooks.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "e2e/admin.rs"]
mod admin;
#[path = "e2e/balance.rs"]
mod balance;
#[path = "e2e/batches.rs"]
mod batches;
#[path = "checks/deploy_parameters.rs"]
mod deploy_parameters;
#[path = "checks/deployed_build.rs"]
mod deployed_build;
#[path = "checks/docs.rs"]
mod docs;
#[path = "e2e/events.rs"]
mod events;
#[path = "checks/first_payout.rs"]
mod first_payout;
#[path = "checks/iam.rs"]
mod iam;
#[path = "checks/package.rs"]
mod package;
#[path = "checks/pipeline.rs"]
mod pipeline;
#[path = "checks/template.rs"]
mod template;

use std::future::Future;
use std::time::{Duration, Instant};

use payout_e2e::lambda::{Function, binary};
use payout_e2e::local;
use payout_e2e::sandbox::{Behaviour, SandboxConfig};
use payout_e2e::stack::{Stack, StackConfig};
use payout_testkit::{Fault, Moto, signed_json};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const APP_SECRET: &str = "e2e-app-secret";
const MERCHANT: &str = payout_e2e::stack::MERCHANT;

async fn stack(timeout_ms: u64) -> Stack {
    stack_with(timeout_ms, |_| {}).await
}

/// A stack of its own on the shared moto server: 4 submit and 2 webhook processes, a sandbox
/// whose webhooks follow 200 ms after a payout and retry on a schedule scaled by 0.001.
async fn stack_with(timeout_ms: u64, adjust: impl FnOnce(&mut StackConfig)) -> Stack {
    let mut config = StackConfig::new(Moto::shared(), APP_SECRET);
    config.vexora_timeout_ms = timeout_ms;
    config.sandbox = SandboxConfig {
        time_scale: 0.001,
        processing_time: Duration::from_millis(200),
        slow_answer: Duration::from_millis(timeout_ms * 3),
        ..SandboxConfig::default()
    };
    config.submit_instances = 4;
    config.webhook_instances = 2;
    adjust(&mut config);
    Stack::spawn(config).await.unwrap()
}

/// The stack's environment for one more function, given another Vexora base URL.
fn env_with_vexora(s: &Stack, base: &str) -> Vec<(String, String)> {
    payout_e2e::stack::env(&s.config, base, "http://127.0.0.1/unused")
}

fn payout(trade_no: &str, amount: u64) -> Value {
    json!({
        "tradeNo": trade_no, "amount": amount, "bankCode": "0005", "bankNumber": "1234567",
        "userId": "user-42", "mobile": "09012345678", "email": "taro@example.jp",
        "firstname": "タロウ", "lastname": "ヤマダ"
    })
}

/// A merchant's and Vexora's view of a stack.
trait Client {
    async fn submit(&self, body: &Value) -> (u16, Value);
    async fn notify(&self, body: impl Into<reqwest::Body>) -> u16;
    async fn status_of(&self, trade_no: &str) -> String;
    async fn status_becomes(&self, trade_no: &str, expected: &str) -> String;
}

impl Client for Stack {
    async fn submit(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/payouts", self.submit.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` to the webhook as Vexora would; the HTTP status.
    async fn notify(&self, body: impl Into<reqwest::Body>) -> u16 {
        self.http
            .post(format!("{}/vexora/notify", self.webhook.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn status_of(&self, trade_no: &str) -> String {
        let response = self
            .http
            .get(format!("{}/payouts/{trade_no}", self.submit.url))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    async fn status_becomes(&self, trade_no: &str, expected: &str) -> String {
        eventually(Duration::from_secs(20), || async {
            let status = self.status_of(trade_no).await;
            (status == expected).then_some(status.clone()).ok_or(status)
        })
        .await
    }
}

/// Whether `function` writes `text` to its logs soon (its output is read asynchronously).
async fn logged(function: &Function, text: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        if function.logs().contains(text) {
            Ok(true)
        } else {
            Err(false)
        }
    })
    .await
}

/// Polls `check` until it gives `Ok` or the deadline passes (then the last `Err` is returned
/// for the assertion message).
async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(v) if Instant::now() > deadline => return v,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payout_travels_from_submit_to_succeeded_through_a_real_webhook() {
    let s = stack(3000).await;

    let (status, order) = s.submit(&payout("E2E-HAPPY", 1500)).await;

    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PROCESSING");
    assert_eq!(
        s.status_becomes("E2E-HAPPY", "SUCCEEDED").await,
        "SUCCEEDED"
    );
    // The sandbox records a delivery once it has read the answer, just after the state moved.
    let acknowledged = eventually(Duration::from_secs(10), || async {
        let ledger = s.sandbox.ledger();
        let delivered: Vec<_> = ledger
            .deliveries
            .into_iter()
            .filter(|d| d.trade_no == "E2E-HAPPY")
            .collect();
        match delivered.as_slice() {
            [only] if only.acknowledged => Ok(true),
            _ => Err(false),
        }
    })
    .await;
    assert!(acknowledged, "one delivery, answered 200 OK");
    let ledger = s.sandbox.ledger();
    assert_eq!(ledger.submits["E2E-HAPPY"], 1);
    assert!(ledger.rejections.is_empty(), "{:?}", ledger.rejections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scripted_outcome_ends_in_the_right_state_with_one_vexora_call() {
    // Every answer comes well within the production timeout, however busy the machine; the
    // slow one is withheld far beyond it, so its timeout is certain, not a race. Webhooks come
    // only after the submit that caused them answered by its slowest path, so each answer code
    // is the first answer's, never a webhook's that overtook it.
    let timeout = Duration::from_millis(8000);
    let s = stack_with(timeout.as_millis() as u64, |c| {
        c.sandbox.slow_answer = Duration::from_secs(3600);
        c.sandbox.processing_time = payout_aws::time_budget::submit(timeout);
    })
    .await;
    let cases = [
        (Behaviour::ProcessingThenSuccess, 201, "SUCCEEDED"),
        (Behaviour::ImmediateSuccess, 201, "SUCCEEDED"),
        (Behaviour::ProcessingThenFailure, 201, "FAILED"),
        (Behaviour::Rejected, 201, "FAILED"),
        (Behaviour::SystemErrorButCreated, 202, "SUCCEEDED"),
        (Behaviour::Html502ButCreated, 202, "SUCCEEDED"),
        (Behaviour::DropConnectionButCreated, 202, "SUCCEEDED"),
        (Behaviour::SlowButCreated, 202, "SUCCEEDED"),
        (Behaviour::QueryOnly, 201, "PROCESSING"),
        (Behaviour::DuplicateOutOfOrder, 201, "SUCCEEDED"),
        (Behaviour::SystemErrorNotCreated, 202, "UNCONFIRMED"),
    ];
    assert_eq!(cases.len(), Behaviour::ALL.len());
    let submits = cases.iter().map(|(behaviour, _, _)| {
        let s = &s;
        async move {
            let trade_no =
                format!("E2E-{behaviour:?}").replace(|c: char| !c.is_ascii_alphanumeric(), "");
            let trade_no: String = trade_no.chars().take(32).collect();
            let (code, order) = s.submit(&payout(&trade_no, behaviour.amount())).await;
            (trade_no, code, order)
        }
    });
    let mut answers = Vec::new();
    for submit in submits {
        answers.push(submit.await);
    }
    let expected_codes: Vec<_> = cases.iter().map(|(b, code, _)| (*b, *code)).collect();
    let codes: Vec<_> = cases
        .iter()
        .zip(&answers)
        .map(|((b, _, _), (_, code, _))| (*b, *code))
        .collect();
    let statuses: Vec<_> = answers
        .iter()
        .map(|(_, _, order)| &order["status"])
        .collect();
    assert_eq!(codes, expected_codes, "answered statuses: {statuses:?}");
    let trade_nos: Vec<String> = answers.into_iter().map(|(t, _, _)| t).collect();
    for ((behaviour, _, expected), trade_no) in cases.iter().zip(&trade_nos) {
        assert_eq!(
            s.status_becomes(trade_no, expected).await,
            *expected,
            "{behaviour:?}"
        );
        assert_eq!(
            s.sandbox.submits(trade_no),
            1,
            "{behaviour:?}: exactly one Vexora call"
        );
    }
    // The out-of-order webhooks all arrive and leave the order where it was.
    let dup = &trade_nos[9];
    let acked = eventually(Duration::from_secs(20), || async {
        let n = s
            .sandbox
            .ledger()
            .deliveries
            .iter()
            .filter(|d| &d.trade_no == dup && d.acknowledged)
            .count();
        if n == 3 { Ok(n) } else { Err(n) }
    })
    .await;
    assert_eq!(acked, 3);
    assert_eq!(s.status_of(dup).await, "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_answer_code_of_each_outcome_is_right() {
    // The production timeout: the definite answers below must not turn unconfirmed merely
    // because a busy machine was slow (none of these outcomes needs a timeout).
    let s = stack(8000).await;
    let cases = [
        (Behaviour::ImmediateSuccess, 201, "SUCCEEDED"),
        (Behaviour::Rejected, 201, "FAILED"),
        (Behaviour::SystemErrorNotCreated, 202, "UNCONFIRMED"),
        (Behaviour::DropConnectionButCreated, 202, "UNCONFIRMED"),
    ];
    for (i, (behaviour, code, status)) in cases.into_iter().enumerate() {
        let trade_no = format!("E2E-FIRST{i}");
        let (answer, body) = s.submit(&payout(&trade_no, behaviour.amount())).await;
        assert_eq!(
            (answer, body["status"].as_str().unwrap()),
            (code, status),
            "{behaviour:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_submit_is_answered_from_storage_without_a_second_call() {
    let s = stack(3000).await;

    let (first, _) = s.submit(&payout("E2E-DUP", 1500)).await;
    let (again, body) = s.submit(&payout("E2E-DUP", 1500)).await;
    let (other, _) = s.submit(&payout("E2E-DUP", 1600)).await;

    assert_eq!((first, again, other), (201, 200, 422));
    assert_eq!(body["tradeNo"], "E2E-DUP");
    assert_eq!(s.sandbox.submits("E2E-DUP"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_webhook_costs_one_dynamodb_call_and_writes_nothing() {
    // A moto server of its own: its call counts are this test's alone.
    let moto = Moto::start().unwrap();
    let mut config = StackConfig::new(&moto, APP_SECRET);
    config.sandbox.processing_time = Duration::from_secs(24 * 3600);
    let s = Stack::spawn(config).await.unwrap();
    let (status, order) = s.submit(&payout("E2E-DUPHOOK", 1500)).await;
    assert_eq!(status, 201, "{order}");
    let first = s.sandbox.send_webhook("E2E-DUPHOOK", "0000").await.unwrap();
    assert!(first.acknowledged, "{first:?}");
    let item = |s: &Stack| {
        let dynamodb = s.dynamodb.clone();
        let table = s.config.table.clone();
        async move {
            dynamodb
                .get_item()
                .table_name(table)
                .key(
                    "tradeNo",
                    aws_sdk_dynamodb::types::AttributeValue::S("E2E-DUPHOOK".into()),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let stored = item(&s).await;
    assert_eq!(stored["status"].as_s().unwrap(), "SUCCEEDED");

    let before = moto.calls().await.unwrap();
    for _ in 0..3 {
        let again = s.sandbox.send_webhook("E2E-DUPHOOK", "0000").await.unwrap();
        assert!(
            again.acknowledged,
            "a duplicate is answered 200 OK: {again:?}"
        );
    }
    let after = moto.calls().await.unwrap();

    let made: Vec<(String, u64)> = after
        .into_iter()
        .map(|(k, v)| (k.clone(), v - before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    assert_eq!(
        made,
        [("DynamoDB_20120810.UpdateItem".to_owned(), 3)],
        "each duplicate is one refused guarded write"
    );
    assert_eq!(item(&s).await, stored, "the duplicates wrote nothing");
    assert!(logged(&s.webhook, "\"verdict\":\"duplicate\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_webhook_is_rejected_and_changes_nothing() {
    let s = stack(3000).await;
    s.submit(&payout("E2E-FORGE", Behaviour::QueryOnly.amount()))
        .await;
    let forged = signed_json(
        &[
            ("tradeNo", "E2E-FORGE"),
            ("status", "00029"),
            ("amount", "1018"),
            ("platFormTradeNo", "X"),
        ],
        "not-the-app-secret",
    );

    let response = s
        .http
        .post(format!("{}/vexora/notify", s.webhook.url))
        .header("content-type", "application/json")
        .body(forged)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(s.status_of("E2E-FORGE").await, "PROCESSING");
    assert!(logged(&s.webhook, "\"verdict\":\"unauthorized\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_signed_with_the_replaced_placeholder_secret_changes_nothing() {
    // Issue 13 #1: the template's placeholder, replaced by the merchant's secret, is AWSPREVIOUS.
    let placeholder = r#"{"merchantNo":"0000000000","appSecret":"REPLACE-ME"}"#;
    let s = stack_with(3000, |c| c.previous_secret = Some(placeholder.into())).await;
    let amount = Behaviour::QueryOnly.amount().to_string();
    let (status, _) = s
        .submit(&payout("E2E-PLACE", Behaviour::QueryOnly.amount()))
        .await;
    assert_eq!(status, 201);

    let forged = signed_json(
        &[
            ("tradeNo", "E2E-PLACE"),
            ("status", "00029"),
            ("amount", &amount),
        ],
        "REPLACE-ME",
    );
    let without_amount = signed_json(&[("tradeNo", "E2E-PLACE"), ("status", "00029")], APP_SECRET);

    assert_eq!(
        s.notify(forged).await,
        401,
        "the placeholder never verifies"
    );
    assert_eq!(
        s.notify(without_amount).await,
        401,
        "a notification carries its amount"
    );
    assert_eq!(s.status_of("E2E-PLACE").await, "PROCESSING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_submit_body_re_split_into_a_notification_changes_nothing() {
    // Issue 13 #2: one secret signs both directions and pairs are joined with no separator.
    let s = stack(3000).await;
    let mut body = payout("E2E-RESPLIT", Behaviour::QueryOnly.amount());
    body["remark"] = "Xstatus=00029".into();
    assert_eq!(s.submit(&body).await.0, 201);
    let captured = s.sandbox.submitted_bodies("E2E-RESPLIT");
    let mut replay: Value = serde_json::from_slice(&captured[0]).unwrap();
    replay["remark"] = "X".into();
    replay["status"] = "00029".into();

    assert_eq!(s.notify(replay.to_string()).await, 401);
    assert_eq!(s.status_of("E2E-RESPLIT").await, "PROCESSING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_that_landed_but_answered_500_is_sent_exactly_once() {
    // Issue 13 #3: DynamoDB applies the PENDING put and its answer is an error; the SDK retries.
    let s = stack(3000).await;
    let moto = Moto::shared();
    for (trade_no, times) in [("E2E-LANDED1", 1), ("E2E-LANDED3", 3)] {
        moto.inject(&Fault {
            target: "DynamoDB_20120810.PutItem",
            contains: trade_no,
            after_applying: true,
            times,
            ..Fault::default()
        })
        .await
        .unwrap();

        let (status, order) = s.submit(&payout(trade_no, 1500)).await;

        assert_eq!(status, 201, "{trade_no}: {order}");
        assert_eq!(order["status"], "PROCESSING", "{trade_no}");
        assert_eq!(
            s.sandbox.submits(trade_no),
            1,
            "{trade_no}: sent exactly once"
        );
        assert_eq!(s.submit(&payout(trade_no, 1500)).await.0, 200, "{trade_no}");
        assert_eq!(s.sandbox.submits(trade_no), 1, "{trade_no}");
    }
    // The SDK retried DynamoDB's 500s and poisoned each connection it had: the adapter names
    // its connections, so the SDK's ERROR line (no connection to mark) is never written.
    let logs = s.submit.logs();
    assert!(logs.contains("trade_no"), "the function's logs are read");
    assert!(
        !logs.contains("unable to mark the connection"),
        "the SDK could not poison a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_that_landed_but_answered_500_keeps_nothing_and_says_nothing_was_sent() {
    // Vexora cannot be connected to, so the intent is withdrawn; DynamoDB deletes it and answers
    // 500. The recording must find no order (not another intent's) and answer 503.
    let s = stack(3000).await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let submit = Function::start(
        binary("submit-payout"),
        "submit-payout",
        &env_with_vexora(&s, &nowhere),
        1,
    )
    .await
    .unwrap();
    Moto::shared()
        .inject(&Fault {
            target: "DynamoDB_20120810.DeleteItem",
            contains: "E2E-WITHDRAWN",
            after_applying: true,
            times: 1,
            ..Fault::default()
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let response = http
        .post(format!("{}/payouts", submit.url))
        .json(&payout("E2E-WITHDRAWN", 1500))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "vexora_unreachable");
    assert_eq!(body["tradeNo"], "E2E-WITHDRAWN");
    let item = s
        .dynamodb
        .get_item()
        .table_name(&s.config.table)
        .key(
            "tradeNo",
            aws_sdk_dynamodb::types::AttributeValue::S("E2E-WITHDRAWN".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(item.item.is_none(), "nothing kept: a retry starts afresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amounts_that_only_a_float_reads_as_whole_are_refused_and_nothing_is_sent() {
    // Issue 13 #4.
    let s = stack(3000).await;
    for (i, amount) in ["1e2", "100.00000000000001", "1500.9999999999999999"]
        .into_iter()
        .enumerate()
    {
        let trade_no = format!("E2E-FLOAT{i}");
        let body = payout(&trade_no, 1500)
            .to_string()
            .replace("\"amount\":1500", &format!("\"amount\":{amount}"));
        let response = s
            .http
            .post(format!("{}/payouts", s.submit.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{amount}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["fields"][0]["field"], "amount", "{amount}");
        assert_eq!(s.sandbox.submits(&trade_no), 0, "{amount}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_rotation_the_first_genuine_webhook_is_accepted_even_after_forgeries() {
    // Issue 13 #7: forged notifications just before, then the merchant rotates the secret.
    let s = stack(3000).await;
    let (status, _) = s.submit(&payout("E2E-ROT0", 1500)).await;
    assert_eq!(status, 201);
    for (trade_no, amount) in [
        ("E2E-NOBODY", "1500"),
        ("E2E-ROT0", "1600"),
        ("E2E-ROT0", "15"),
    ] {
        let forged = signed_json(
            &[
                ("tradeNo", trade_no),
                ("status", "00029"),
                ("amount", amount),
            ],
            "a-forger-s-guess",
        );
        assert_eq!(s.notify(forged).await, 401);
    }
    let rotated = "e2e-rotated-app-secret";
    s.secrets
        .put_secret_value()
        .secret_id(&s.config.secret_id)
        .secret_string(local::secret_json(MERCHANT, rotated))
        .send()
        .await
        .unwrap();
    s.sandbox.rotate(rotated);

    assert_eq!(s.submit(&payout("E2E-ROT1", 1500)).await.0, 201);

    assert_eq!(s.status_becomes("E2E-ROT1", "SUCCEEDED").await, "SUCCEEDED");
    let first = s
        .sandbox
        .ledger()
        .deliveries
        .into_iter()
        .find(|d| d.trade_no == "E2E-ROT1" && d.attempt == 1)
        .unwrap();
    assert!(first.rotated_secret, "signed with the new secret");
    assert!(
        first.acknowledged,
        "accepted on its first delivery: {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vexora_is_called_directly_whatever_proxy_the_environment_names() {
    // A signed payout must never pass through a proxy someone slipped into the environment.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let (seen, mut proxied) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        while proxy.accept().await.is_ok() {
            seen.send_modify(|n| *n += 1);
        }
    });
    let s = stack_with(3000, |c| {
        // Vexora on another loopback address than the AWS emulator, which NO_PROXY exempts.
        c.sandbox_addr = "127.0.0.2:0".parse().unwrap();
        for name in [
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
            "https_proxy",
            "http_proxy",
        ] {
            c.extra_env.push((name.to_owned(), proxy_url.clone()));
        }
        c.extra_env
            .push(("NO_PROXY".to_owned(), "127.0.0.1,localhost".to_owned()));
    })
    .await;
    let (sandbox, submit) = (&s.sandbox, &s.submit);

    let response = reqwest::Client::new()
        .post(format!("{}/payouts", submit.url))
        .json(&payout("E2E-PROXY", Behaviour::QueryOnly.amount()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(sandbox.submits("E2E-PROXY"), 1);
    assert_eq!(
        *proxied.borrow_and_update(),
        0,
        "nothing went through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_personal_data_or_secret_reaches_the_function_logs() {
    let s = stack(3000).await;
    let mut body = payout("E2E-PII", 1500);
    body["bankNumber"] = "55554444333".into();
    body["mobile"] = "08077776666".into();
    body["email"] = "canary.e2e@example.jp".into();
    body["lastname"] = "カナリアテスト".into();

    s.submit(&body).await;
    s.status_becomes("E2E-PII", "SUCCEEDED").await;

    assert!(
        logged(&s.webhook, "E2E-PII").await,
        "the webhook's summary line is there"
    );
    let logs = format!("{}\n{}", s.submit.logs(), s.webhook.logs());
    assert!(
        logs.contains("E2E-PII"),
        "the summary lines are there: {logs}"
    );
    for canary in [
        "55554444333",
        "08077776666",
        "canary.e2e",
        "カナリアテスト",
        APP_SECRET,
    ] {
        assert!(!logs.contains(canary), "{canary} leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_resolves_an_order_whose_webhook_never_comes() {
    let s = stack(3000).await;
    let (status, _) = s
        .submit(&payout("E2E-REFRESH", Behaviour::QueryOnly.amount()))
        .await;
    assert_eq!(status, 201);

    let response = s
        .http
        .get(format!("{}/payouts/E2E-REFRESH?refresh=true", s.submit.url))
        .send()
        .await
        .unwrap();

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "SUCCEEDED");
    assert_eq!(s.sandbox.ledger().queries["E2E-REFRESH"], 1);
    assert_eq!(s.sandbox.submits("E2E-REFRESH"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduled_reconciler_resolves_a_due_order() {
    let s = stack(3000).await;
    s.submit(&payout("E2E-RECON", Behaviour::QueryOnly.amount()))
        .await;
    // Time passes: the PROCESSING order becomes due for the reconciler.
    s.dynamodb
        .update_item()
        .table_name(&s.config.table)
        .key(
            "tradeNo",
            aws_sdk_dynamodb::types::AttributeValue::S("E2E-RECON".into()),
        )
        .update_expression("SET checkAfter = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();

    let event: Value = serde_json::from_str(include_str!(
        "../../functions/reconcile-payouts/events/schedule.json"
    ))
    .unwrap();
    let report = s.reconcile.invoke(&event).await.unwrap();

    assert_eq!(report["checked"], 1, "{report}");
    assert_eq!(report["resolved"], 1, "{report}");
    assert_eq!(s.status_of("E2E-RECON").await, "SUCCEEDED");
    assert_eq!(s.sandbox.submits("E2E-RECON"), 1);
    assert!(logged(&s.reconcile, "\"action\":\"resolved\"").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_get_clear_4xx_from_both_functions() {
    let s = stack(3000).await;
    let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let nested_object = format!("{}{}", "{\"a\":".repeat(2_000), "}".repeat(2_000));
    let huge = format!("{{\"remark\":\"{}\"}}", "x".repeat(64 * 1024));
    let not_utf8: Vec<u8> = vec![0xff, 0xfe, b'{', 0x80, b'}'];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("deeply nested array", deep.into_bytes(), 400),
        ("deeply nested object", nested_object.into_bytes(), 400),
        ("oversized", huge.into_bytes(), 413),
        ("not UTF-8", not_utf8, 400),
    ];
    for (reason, body, expected) in cases {
        for (function, path) in [(&s.submit, "/payouts"), (&s.webhook, "/vexora/notify")] {
            let response = s
                .http
                .post(format!("{}{path}", function.url))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), expected, "{reason} to {path}");
        }
    }
    assert!(
        s.sandbox.ledger().submits.is_empty(),
        "nothing reached Vexora"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reduced_reliability_run_keeps_every_promise() {
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/reliability-test")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let plan = payout_e2e::reliability::Plan::new(110, out);

    let report = payout_e2e::reliability::run(&plan).await.unwrap();

    let summary = report.summary();
    assert!(report.violations.is_empty(), "{summary}");
    assert_eq!(report.clients_unanswered, 0, "{summary}");
    assert!(report.faults.moto_down_ms > 0, "{summary}");
    assert!(report.canaries_checked > 200, "{summary}");
    assert!(
        report.webhook_deliveries.contains_key("lost"),
        "deliveries were lost and retried: {summary}"
    );
    assert!(
        report.webhooks_acknowledged_after_rotation > 0,
        "webhooks signed with the rotated secret verified: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_or_schema_violation_in_submit_payout() {
    let s = stack(1000).await;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = root.join(".venv-schemathesis/bin/schemathesis");
    assert!(
        exe.exists(),
        "{} is missing: run `make test` (it installs the pinned schemathesis)",
        exe.display()
    );

    let output = tokio::process::Command::new(exe)
        .current_dir(&root)
        .args(["--config-file", "schemathesis.toml", "run", "openapi.yaml"])
        .args(["--url", &s.submit.url, "--no-color"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();

    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("passed"), "{text}");
    let logs = s.submit.logs();
    assert!(
        logs.contains("\"status\":201"),
        "payouts were accepted: {logs}"
    );
    assert!(
        !logs.contains("\"status\":5"),
        "no 5xx in the function's own summary lines"
    );
    // Generated payouts carry random personal data: none of its shapes may reach a log line.
    for (what, leaked) in [
        ("an e-mail address", logs.contains('@')),
        (
            "Katakana",
            logs.chars().any(|c| ('\u{30a0}'..='\u{30ff}').contains(&c)),
        ),
        (
            "a personal field's name",
            ["bankNumber", "mobile", "email", "firstname", "lastname"]
                .iter()
                .any(|f| logs.contains(f)),
        ),
    ] {
        assert!(!leaked, "{what} reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pre_traffic_hooks_events_are_answered_by_the_real_binaries_without_error() {
    // The PreTraffic hook (infra/template.yaml) invokes each new version once with these events
    // and fails prod's deployment on a function error: a healthy version must answer each.
    let s = stack_with(3000, |c| {
        c.events = true;
        c.batches = true;
    })
    .await;
    let reconciled = s.reconcile.invoke(&serde_json::json!({})).await;
    assert!(reconciled.is_ok(), "{reconciled:?}");
    let empty = serde_json::json!({"Records": []});
    let publisher = &s.events.as_ref().unwrap().publisher;
    let published = publisher.invoke(&empty).await;
    assert_eq!(
        published,
        Ok(serde_json::json!({"batchItemFailures": []})),
        "{}",
        publisher.logs()
    );
    let worker = &s.batches.as_ref().unwrap().worker;
    let worked = worker.invoke(&empty).await;
    assert_eq!(
        worked,
        Ok(serde_json::json!({"batchItemFailures": []})),
        "{}",
        worker.logs()
    );
}
