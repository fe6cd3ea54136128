//! The secret cache and the keyring over a fake store: rotation, placeholders, refresh.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::TimeZone;

use chrono::{DateTime, Utc};
use payout_app::secrets::*;
use payout_testkit::{FakeSecretStore, secret_json};
use secrecy::ExposeSecret;
use vexora::signing::ReceivedFields;
use vexora::{SecretError, VexoraCredentials};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

/// A notification's fields signed with `app_secret`.
fn signed_with(app_secret: &str) -> ReceivedFields {
    let fields = [("tradeNo", "T1"), ("status", "0000"), ("amount", "1500")];
    ReceivedFields::from_json(payout_testkit::signed_json(&fields, app_secret).as_bytes()).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);
const GRACE: Duration = DEFAULT_PREVIOUS_SECRET_GRACE;

async fn keyring(store: FakeSecretStore, min_refresh: Duration) -> Keyring<FakeSecretStore> {
    Keyring::new(
        Secrets::load(store, HOUR).await.unwrap(),
        GRACE,
        min_refresh,
    )
}

#[test]
fn credentials_parse_from_the_documented_json() {
    let c =
        VexoraCredentials::from_json(r#"{"merchantNo":"0000000001","appSecret":"abc"}"#).unwrap();
    assert_eq!(c.merchant_no.as_str(), "0000000001");
    assert_eq!(c.app_secret.expose_secret(), "abc");
}

#[test]
fn malformed_secrets_are_rejected_with_a_reason_and_no_value() {
    let cases = [
        ("not json", "JSON object"),
        ("[]", "JSON object"),
        (
            r#"{"appSecret":"CANARY-SECRET"}"#,
            "`merchantNo` is missing",
        ),
        (
            r#"{"merchantNo":"123","appSecret":"CANARY-SECRET"}"#,
            "10 digits",
        ),
        (
            r#"{"merchantNo":"000000000A","appSecret":"CANARY-SECRET"}"#,
            "10 digits",
        ),
        (r#"{"merchantNo":"0000000001"}"#, "`appSecret` is missing"),
        (
            r#"{"merchantNo":"0000000001","appSecret":""}"#,
            "`appSecret` is missing",
        ),
    ];
    for (value, expected) in cases {
        let message = VexoraCredentials::from_json(value).unwrap_err().to_string();
        assert!(message.contains(expected), "{value}: {message}");
        assert!(message.contains("VEXORA_SECRET_ID"), "{message}");
        assert!(!message.contains("CANARY"), "{message}");
    }
}

#[test]
fn published_placeholders_are_never_credentials() {
    for value in [
        r#"{"merchantNo":"0000000000","appSecret":"REPLACE-ME"}"#,
        r#"{"merchantNo":"0000000001","appSecret":"REPLACE-ME"}"#,
        r#"{"merchantNo":"0000000001","appSecret":" replace-me "}"#,
        r#"{"merchantNo":"0000000001","appSecret":"changeme"}"#,
        r#"{"merchantNo":"0000000000","appSecret":"a-generated-random-value-1f9e"}"#,
        r#"{"merchantNo":"0000000001","appSecret":"the app secret from Vexora's merchant console"}"#,
        r#"{"merchantNo":"0000000001","appSecret":"..."}"#,
    ] {
        assert!(
            matches!(
                VexoraCredentials::from_json(value),
                Err(SecretError::Placeholder)
            ),
            "{value}"
        );
    }
}

#[test]
fn every_app_secret_the_docs_show_is_a_placeholder() {
    let docs = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/api.md"),
        include_str!("../../../docs/contract.md"),
        include_str!("../../../docs/deploying.md"),
        include_str!("../../../docs/design.md"),
        include_str!("../../../docs/local.md"),
        include_str!("../../../docs/operations.md"),
        include_str!("../../../docs/vexora-api.md"),
        include_str!("../../../docs/webhook.md"),
        include_str!("../../../openapi.yaml"),
        include_str!("../../../infra/template.yaml"),
    ];
    let mut found = 0;
    for doc in docs {
        for (i, _) in doc.match_indices("\"appSecret\"") {
            let rest = doc[i + "\"appSecret\"".len()..].trim_start();
            let Some(rest) = rest.strip_prefix(':') else {
                continue; // a name in prose, not a member
            };
            let Some(value) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(close) = value.find('"') else {
                continue;
            };
            let value = &value[..close];
            if value.contains('$') || value.contains('{') {
                continue; // a shell or template variable, not an example
            }
            found += 1;
            let json = format!(
                r#"{{"merchantNo":"0000000001","appSecret":{}}}"#,
                serde_json::Value::from(value)
            );
            assert!(
                VexoraCredentials::from_json(&json).is_err(),
                "the docs show {value:?} as an app secret; it must never verify"
            );
        }
    }
    assert!(found >= 2, "the examples were found ({found})");
}

#[test]
fn debug_never_prints_the_app_secret() {
    let c =
        VexoraCredentials::from_json(r#"{"merchantNo":"0000000001","appSecret":"CANARY-SECRET"}"#)
            .unwrap();
    assert!(!format!("{c:?}").contains("CANARY"));
}

#[tokio::test]
async fn a_placeholder_current_secret_stops_init_with_a_clear_message() {
    let store = FakeSecretStore::new(&secret_json("0000000000", "REPLACE-ME"), t0());
    let err = Secrets::load(store, HOUR).await.unwrap_err();
    assert!(matches!(err, SecretError::Placeholder), "{err:?}");
    assert!(err.to_string().contains("placeholder"), "{err}");
}

#[tokio::test]
async fn the_replaced_placeholder_never_verifies_as_the_previous_version() {
    // The template's first value, then the merchant's real one: the placeholder is AWSPREVIOUS.
    let store = FakeSecretStore::new(&secret_json("0000000000", "REPLACE-ME"), t0());
    store.put(&secret_json("0000000001", "real-secret"), t0());
    let keyring = keyring(store, HOUR).await;

    assert_eq!(
        keyring
            .verify(&signed_with("real-secret"), t0())
            .await
            .unwrap(),
        Some(Verified::Current)
    );
    assert_eq!(
        keyring
            .verify(&signed_with("REPLACE-ME"), t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        keyring
            .verify_refreshed(&signed_with("REPLACE-ME"), t0())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn the_previous_secret_verifies_only_within_the_grace_window_and_for_the_same_merchant() {
    let rotated_at = t0();
    let store = FakeSecretStore::new(
        &secret_json("0000000001", "old-secret"),
        t0() - chrono::Duration::days(30),
    );
    store.put(&secret_json("0000000001", "new-secret"), rotated_at);
    let keyring = keyring(store, HOUR).await;
    let grace = chrono::Duration::from_std(GRACE).unwrap();

    let old = signed_with("old-secret");
    assert_eq!(
        keyring.verify(&old, rotated_at).await.unwrap(),
        Some(Verified::Previous)
    );
    assert_eq!(
        keyring
            .verify(&old, rotated_at + grace - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        Some(Verified::Previous)
    );
    assert_eq!(
        keyring.verify(&old, rotated_at + grace).await.unwrap(),
        None
    );
    assert_eq!(
        keyring
            .verify(&signed_with("new-secret"), rotated_at + grace * 10)
            .await
            .unwrap(),
        Some(Verified::Current),
        "the current secret has no window"
    );

    let other_merchant = FakeSecretStore::new(&secret_json("0000000002", "old-secret"), t0());
    other_merchant.put(&secret_json("0000000001", "new-secret"), rotated_at);
    let keyring = self::keyring(other_merchant, HOUR).await;
    assert_eq!(
        keyring.verify(&old, rotated_at).await.unwrap(),
        None,
        "another merchant's secret"
    );
}

#[tokio::test]
async fn without_a_creation_date_the_previous_secret_never_verifies() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "old-secret"), t0());
    store.put_undated(&secret_json("0000000001", "new-secret"));
    let keyring = keyring(store, HOUR).await;
    assert_eq!(
        keyring
            .verify(&signed_with("old-secret"), t0())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn warm_reads_call_nothing_and_a_refresh_reads_the_previous_stage_only_on_a_new_version() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "first"), t0());
    let secrets = Secrets::load(store, HOUR).await.unwrap();
    assert_eq!(secrets.store().fetches(), 2, "current and previous at init");
    for _ in 0..100 {
        secrets.current().await.unwrap();
    }
    assert_eq!(
        secrets.store().fetches(),
        2,
        "warm reads are served from memory"
    );

    secrets.refresh().await.unwrap();
    assert_eq!(
        secrets.store().fetches(),
        3,
        "same version: the previous stage is not read again"
    );

    secrets
        .store()
        .put(&secret_json("0000000001", "second"), t0());
    secrets.refresh().await.unwrap();
    assert_eq!(secrets.store().fetches(), 5);
    assert_eq!(
        secrets
            .current()
            .await
            .unwrap()
            .credentials
            .app_secret
            .expose_secret(),
        "second"
    );
}

#[tokio::test]
async fn an_expired_cache_is_read_again_once() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "first"), t0());
    let secrets = Secrets::load(store, Duration::ZERO).await.unwrap();
    secrets
        .store()
        .put(&secret_json("0000000001", "second"), t0());
    assert_eq!(
        secrets
            .current()
            .await
            .unwrap()
            .credentials
            .app_secret
            .expose_secret(),
        "second"
    );
}

#[tokio::test]
async fn a_rotation_to_an_unusable_value_signs_nothing_and_is_not_read_on_every_request() {
    // Issue 22 item 4: a warm instance must not keep the old secret as current.
    let store = FakeSecretStore::new(&secret_json("0000000001", "good"), t0());
    let secrets = Secrets::load(store, Duration::ZERO).await.unwrap();
    secrets
        .store()
        .put(&secret_json("0000000000", "REPLACE-ME"), t0());
    let before = secrets.store().fetches();

    for _ in 0..20 {
        let current = secrets.current().await;
        assert!(
            matches!(current, Err(SecretError::Superseded(_))),
            "{current:?}"
        );
    }

    assert_eq!(
        secrets.store().fetches() - before,
        1,
        "retried after a while, not per request"
    );
}

#[tokio::test]
async fn after_a_rotation_to_an_unusable_value_the_old_secret_verifies_only_as_previous_within_grace()
 {
    let store = FakeSecretStore::new(
        &secret_json("0000000001", "good"),
        t0() - chrono::Duration::days(30),
    );
    let ring = Keyring::new(
        Secrets::load(store, Duration::ZERO).await.unwrap(),
        GRACE,
        Duration::ZERO,
    );
    assert_eq!(
        ring.verify(&signed_with("good"), t0()).await.unwrap(),
        Some(Verified::Current)
    );
    // Malformed JSON put as the new current version at t0.
    ring.secrets().store().put("{not json", t0());

    let within = ring
        .verify(&signed_with("good"), t0() + chrono::Duration::hours(23))
        .await;
    let after = ring
        .verify(&signed_with("good"), t0() + chrono::Duration::hours(25))
        .await;

    assert_eq!(within.unwrap(), Some(Verified::Previous));
    assert_eq!(after.unwrap(), None, "never longer than the grace window");
    // Fixed with a good version: that one is current again.
    ring.secrets().store().put(
        &secret_json("0000000001", "fixed"),
        t0() + chrono::Duration::hours(26),
    );
    let fixed = ring
        .verify_refreshed(&signed_with("fixed"), t0() + chrono::Duration::hours(26))
        .await
        .unwrap();
    assert_eq!(fixed, Some(Verified::Current));
    assert!(ring.secrets().current().await.is_ok());
}

#[tokio::test]
async fn a_rotation_is_taken_even_when_the_previous_stage_cannot_be_read() {
    struct FlakyPrevious(FakeSecretStore);
    impl SecretStore for FlakyPrevious {
        async fn fetch(&self, stage: Stage) -> Result<Option<StoredSecret>, SecretError> {
            match stage {
                Stage::Current => self.0.fetch(stage).await,
                Stage::Previous if self.0.fetches() > 2 => {
                    Err(SecretError::Unavailable("down".into()))
                }
                Stage::Previous => self.0.fetch(stage).await,
            }
        }
    }
    let store = FakeSecretStore::new(&secret_json("0000000001", "old"), t0());
    let secrets = Secrets::load(FlakyPrevious(store), HOUR).await.unwrap();
    secrets
        .store()
        .0
        .put(&secret_json("0000000001", "new"), t0());

    secrets.refresh().await.unwrap();

    assert_eq!(
        secrets
            .current()
            .await
            .unwrap()
            .credentials
            .app_secret
            .expose_secret(),
        "new"
    );
    let keyring = Keyring::new(secrets, GRACE, HOUR);
    assert_eq!(
        keyring.verify(&signed_with("old"), t0()).await.unwrap(),
        None,
        "the previous version, unread, verifies nothing"
    );
}

#[tokio::test]
async fn when_secrets_manager_fails_the_cached_secret_is_still_served() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "first"), t0());
    let secrets = Secrets::load(store, Duration::ZERO).await.unwrap();
    secrets.store().set_unavailable(true);
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

    let cold = FakeSecretStore::new(&secret_json("0000000001", "first"), t0());
    cold.set_unavailable(true);
    assert!(matches!(
        Secrets::load(cold, HOUR).await,
        Err(SecretError::Unavailable(_))
    ));
}

#[tokio::test]
async fn forged_signatures_cost_at_most_one_read_per_interval_even_when_concurrent() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "real"), t0());
    let keyring = keyring(store, Duration::ZERO).await;
    let before = keyring.secrets().store().fetches();
    // With no interval every sequential refresh reads once (the current stage only).
    for _ in 0..3 {
        assert_eq!(
            keyring
                .verify_refreshed(&signed_with("forged"), t0())
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(keyring.secrets().store().fetches() - before, 3);

    let store = FakeSecretStore::new(&secret_json("0000000001", "real"), t0());
    let keyring = self::keyring(store, HOUR).await;
    let before = keyring.secrets().store().fetches();
    let forged = signed_with("forged");
    let floods = (0..50).map(|_| keyring.verify_refreshed(&forged, t0()));
    for result in futures_util::future::join_all(floods).await {
        assert_eq!(result.unwrap(), None);
    }
    assert_eq!(
        keyring.secrets().store().fetches() - before,
        1,
        "fifty concurrent failures, one read"
    );
}

#[tokio::test]
async fn a_rotation_right_after_init_is_found_by_the_first_failed_verification() {
    let store = FakeSecretStore::new(&secret_json("0000000001", "old"), t0());
    let keyring = keyring(store, HOUR).await;
    keyring
        .secrets()
        .store()
        .put(&secret_json("0000000001", "new"), t0());
    let new = signed_with("new");

    assert_eq!(
        keyring.verify(&new, t0()).await.unwrap(),
        None,
        "the cache is warm"
    );
    assert_eq!(
        keyring.verify_refreshed(&new, t0()).await.unwrap(),
        Some(Verified::Current)
    );
    assert_eq!(
        keyring.verify(&signed_with("old"), t0()).await.unwrap(),
        Some(Verified::Previous)
    );
}
