//! `GET /balance` over the real `submit-payout` binary and the sandbox's ledger, every answer
//! validated against `openapi.yaml`.

use serde_json::{Value, json};

use super::{Behaviour, Client, payout, stack_with};

fn openapi() -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml"),
    )
    .unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// Checks `body` against the schema `openapi.yaml` documents for `GET /balance` and `status`.
fn assert_documented(status: u16, body: &Value) {
    let doc = openapi();
    let response = &doc["paths"]["/balance"]["get"]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "GET /balance {status} is not documented"
    );
    let schema = &response["content"]["application/json"]["schema"];
    let root = json!({ "components": doc["components"], "allOf": [schema] });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{body}");
}

async fn balance(s: &payout_e2e::stack::Stack) -> (u16, Value) {
    let response = s
        .http
        .get(format!("{}/balance", s.submit.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_balance_is_vexoras_ledger_less_what_was_paid_and_is_cached() {
    let s = stack_with(3000, |c| {
        c.sandbox.starting_balance = 500_000;
        c.submit_instances = 1;
    })
    .await;
    let amount = Behaviour::ImmediateSuccess.amount();
    let (status, _) = s.submit(&payout("BAL-PAID", amount)).await;
    assert_eq!(status, 201);

    let (status, body) = balance(&s).await;
    assert_eq!(status, 200, "{body}");
    assert_documented(status, &body);
    assert_eq!(body["availableAmount"], 500_000 - amount);
    assert_eq!(body["currency"], "JPY");

    // Vexora goes down: the reading of a moment ago is still served (one process: one cache).
    s.sandbox.balance_outage(true);
    let (status, again) = balance(&s).await;
    assert_eq!(status, 200);
    assert_eq!(again, body, "served from the cache within 30 s");
}

#[tokio::test]
async fn the_balance_is_503_vexora_unavailable_when_vexora_cannot_tell() {
    let s = stack_with(3000, |_| {}).await;
    s.sandbox.balance_outage(true);
    let (status, body) = balance(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_documented(status, &body);
    assert_eq!(body["error"], "vexora_unavailable");

    // Other methods are refused; nothing reached Vexora's payout API.
    let response = s
        .http
        .post(format!("{}/balance", s.submit.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(s.sandbox.ledger().submits.is_empty());
}
