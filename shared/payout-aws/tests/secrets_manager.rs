//! The Secrets Manager adapter under the secret cache and the keyring, against moto.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use payout_app::secrets::*;
use payout_aws::secrets::SecretsManagerStore;
use secrecy::ExposeSecret;
use vexora::SecretError;
use vexora::signing::ReceivedFields;

/// A notification's fields signed with `app_secret`.
fn signed_with(app_secret: &str) -> ReceivedFields {
    let fields = [("tradeNo", "T1"), ("status", "0000"), ("amount", "1500")];
    ReceivedFields::from_json(payout_testkit::signed_json(&fields, app_secret).as_bytes()).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);
const GRACE: Duration = DEFAULT_PREVIOUS_SECRET_GRACE;

use payout_testkit::{Moto, aws_config_for};

async fn client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config_for(&Moto::shared().endpoint).await)
}

async fn create(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = format!("vexora/{}", uuid::Uuid::new_v4());
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    name
}

async fn put(client: &aws_sdk_secretsmanager::Client, id: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

const V1: &str = r#"{"merchantNo":"0000000001","appSecret":"first"}"#;
const V2: &str = r#"{"merchantNo":"0000000001","appSecret":"second"}"#;

#[tokio::test]
async fn reads_are_served_from_the_cache_until_a_refresh() {
    let c = client().await;
    let id = create(&c, V1).await;
    let secrets = Secrets::load(SecretsManagerStore::new(c.clone(), &id), HOUR)
        .await
        .unwrap();
    assert_eq!(
        secrets
            .current()
            .await
            .unwrap()
            .credentials
            .app_secret
            .expose_secret(),
        "first"
    );

    put(&c, &id, V2).await;

    let cached = secrets.current().await.unwrap();
    assert_eq!(
        cached.credentials.app_secret.expose_secret(),
        "first",
        "a warm read must not call Secrets Manager"
    );
    secrets.refresh().await.unwrap();
    let fresh = secrets.current().await.unwrap();
    assert_eq!(fresh.credentials.app_secret.expose_secret(), "second");
    assert!(
        fresh.created_at.is_some(),
        "Secrets Manager's CreatedDate is read"
    );
    let keyring = Keyring::new(secrets, GRACE, HOUR);
    assert_eq!(
        keyring
            .verify(&signed_with("first"), Utc::now())
            .await
            .unwrap(),
        Some(Verified::Previous),
        "the version before is read as AWSPREVIOUS"
    );
}

#[tokio::test]
async fn the_template_placeholder_replaced_by_the_real_secret_never_verifies() {
    let c = client().await;
    let id = create(
        &c,
        r#"{"merchantNo":"0000000000","appSecret":"REPLACE-ME"}"#,
    )
    .await;
    put(&c, &id, V1).await;
    let keyring = Keyring::new(
        Secrets::load(SecretsManagerStore::new(c, &id), HOUR)
            .await
            .unwrap(),
        GRACE,
        MIN_REFRESH_INTERVAL,
    );
    let now = Utc::now();
    assert_eq!(
        keyring.verify(&signed_with("first"), now).await.unwrap(),
        Some(Verified::Current)
    );
    assert_eq!(
        keyring
            .verify(&signed_with("REPLACE-ME"), now)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_missing_secret_is_not_found() {
    let err = Secrets::load(
        SecretsManagerStore::new(client().await, "vexora/absent"),
        HOUR,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SecretError::NotFound("AWSCURRENT")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_malformed_secret_is_reported_without_its_value() {
    let c = client().await;
    let id = create(&c, r#"{"merchantNo":"1","appSecret":"CANARY-SECRET"}"#).await;
    let err = Secrets::load(SecretsManagerStore::new(c, &id), HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Malformed(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("CANARY"));
}
