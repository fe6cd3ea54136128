//! Test support, a dev-dependency only (never in a deployed build): in-memory fakes of the
//! ports, a scripted Vexora, captured logs, and a moto server the tests start themselves.

mod memory;
mod moto;
mod queue;

pub use memory::{FakeSecretStore, InMemoryStore};
pub use moto::{Fault, Moto, aws_config_for};
pub use queue::MemoryQueue;

use secrecy::SecretString;

use payout_domain::PayoutRequest;
use vexora::credentials::{MerchantNo, VexoraCredentials};

/// A valid payout request body (JSON text) with the given amount.
pub fn payout_json(trade_no: &str, amount: u64) -> String {
    serde_json::json!({
        "tradeNo": trade_no,
        "amount": amount,
        "bankCode": "0005",
        "bankNumber": "1234567",
        "userId": "user-42",
        "mobile": "09012345678",
        "email": "taro@example.jp",
        "firstname": "タロウ",
        "lastname": "ヤマダ",
        "remark": "test payout"
    })
    .to_string()
}

/// The validated form of [`payout_json`].
pub fn payout(trade_no: &str, amount: u64) -> PayoutRequest {
    match PayoutRequest::from_json(payout_json(trade_no, amount).as_bytes()) {
        Ok(request) => request,
        Err(e) => panic!("the test payout is invalid: {e:?}"),
    }
}

/// Credentials for tests: merchant `0000000001` and the given app secret.
pub fn credentials(app_secret: &str) -> VexoraCredentials {
    match MerchantNo::parse("0000000001") {
        Ok(merchant_no) => VexoraCredentials {
            merchant_no,
            app_secret: SecretString::from(app_secret.to_owned()),
        },
        Err(e) => panic!("{e}"),
    }
}

mod gateway;
mod logs;

pub use gateway::{
    EchoGateway, NoMetrics, RecordingMetrics, ScriptedGateway, balance_answer, vexora_answer,
    vexora_answer_with,
};
pub use logs::CapturedLogs;

/// The secret's value as every function expects it (`{"merchantNo", "appSecret"}`).
pub fn secret_json(merchant_no: &str, app_secret: &str) -> String {
    serde_json::json!({"merchantNo": merchant_no, "appSecret": app_secret}).to_string()
}

/// A warm secret cache over a fake store holding merchant `0000000001` and `app_secret`
/// (created a day ago). Loads at once: the fake store never waits.
pub fn secrets(app_secret: &str) -> payout_app::secrets::Secrets<FakeSecretStore> {
    use futures_util::FutureExt;
    let store = FakeSecretStore::new(
        &secret_json("0000000001", app_secret),
        chrono::Utc::now() - chrono::Duration::days(1),
    );
    match payout_app::secrets::Secrets::load(store, payout_app::secrets::DEFAULT_TTL).now_or_never()
    {
        Some(Ok(secrets)) => secrets,
        Some(Err(e)) => panic!("{e}"),
        None => panic!("loading from the fake store waited"),
    }
}

/// A JSON object of string fields signed with `app_secret` the way Vexora signs
/// (`docs/vexora-api.md` §2).
pub fn signed_json(fields: &[(&str, &str)], app_secret: &str) -> String {
    let secret = SecretString::from(app_secret.to_owned());
    let sign = vexora::signing::sign(fields.iter().copied(), &secret);
    let mut object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    object.insert("sign".into(), sign.into());
    serde_json::Value::Object(object).to_string()
}
