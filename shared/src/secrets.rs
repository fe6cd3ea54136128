//! The Vexora merchant credentials: read from Secrets Manager through the official caching
//! client, parsed once per fetched version, never printable.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_secretsmanager_caching::SecretsManagerCachingClient;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::signing::ReceivedFields;

/// Vexora's 10-digit merchant number, sent in the `merchantNo` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantNo(String);

impl MerchantNo {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(SecretError::Malformed("`merchantNo` must be 10 digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The merchant number and app secret. `Debug` masks the secret.
#[derive(Debug, Clone)]
pub struct VexoraCredentials {
    pub merchant_no: MerchantNo,
    pub app_secret: SecretString,
}

impl VexoraCredentials {
    /// Parses the secret's JSON value `{"merchantNo": "...", "appSecret": "..."}`.
    pub fn from_json(value: &str) -> Result<Self, SecretError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            merchant_no: Option<String>,
            app_secret: Option<SecretString>,
        }
        let wire: Wire = serde_json::from_str(value).map_err(|_| {
            SecretError::Malformed(
                "the value must be a JSON object with `merchantNo` and `appSecret`",
            )
        })?;
        let merchant_no = MerchantNo::parse(
            wire.merchant_no
                .as_deref()
                .ok_or(SecretError::Malformed("`merchantNo` is missing"))?,
        )?;
        let app_secret = wire
            .app_secret
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or(SecretError::Malformed("`appSecret` is missing or empty"))?;
        Ok(Self {
            merchant_no,
            app_secret,
        })
    }
}

/// Which version of the secret to read: the current one, or the one before a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Current,
    Previous,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Previous => "AWSPREVIOUS",
        }
    }
}

/// Why credentials could not be had. Messages name the problem, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the Vexora secret (VEXORA_SECRET_ID) does not exist or has no {0} version")]
    NotFound(&'static str),
    #[error("the Vexora secret (VEXORA_SECRET_ID) could not be read: {0}")]
    Unavailable(String),
    #[error("the Vexora secret (VEXORA_SECRET_ID) is malformed: {0}")]
    Malformed(&'static str),
}

/// The port the functions use to get Vexora credentials.
pub trait SecretSource: Send + Sync {
    /// The credentials of a stage, from the cache when fresh.
    fn credentials(
        &self,
        stage: Stage,
    ) -> impl Future<Output = Result<Arc<VexoraCredentials>, SecretError>> + Send;

    /// Bypasses the cache for one read of a stage (e.g. after a signature failure).
    fn refresh(
        &self,
        stage: Stage,
    ) -> impl Future<Output = Result<Arc<VexoraCredentials>, SecretError>> + Send;
}

/// Secrets Manager through `aws_secretsmanager_caching`.
#[derive(Debug)]
pub struct SecretsManagerSource {
    cache: SecretsManagerCachingClient,
    secret_id: String,
    /// The last parsed value per stage, by version id: a warm read reuses it instead of
    /// parsing the JSON again on every request.
    parsed: Mutex<Vec<(Stage, String, Arc<VexoraCredentials>)>>,
}

/// How long a fetched secret is served from memory before Secrets Manager is asked again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

impl SecretsManagerSource {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self, SecretError> {
        let cache = SecretsManagerCachingClient::new(
            client,
            NonZeroUsize::MIN.saturating_add(1),
            ttl,
            true,
        )
        .map_err(|e| SecretError::Unavailable(e.to_string()))?;
        Ok(Self {
            cache,
            secret_id: secret_id.into(),
            parsed: Mutex::new(Vec::new()),
        })
    }

    async fn read(
        &self,
        stage: Stage,
        refresh: bool,
    ) -> Result<Arc<VexoraCredentials>, SecretError> {
        let fetched = self
            .cache
            .get_secret_value(&self.secret_id, None, Some(stage.label()), refresh)
            .await;
        let (version, value) = match fetched {
            Ok(output) => (output.version_id.unwrap_or_default(), output.secret_string),
            Err(e) => return Err(classify(e.as_ref(), stage)),
        };
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, known)) = parsed
            .iter()
            .find(|(s, v, _)| *s == stage && *v == version && !version.is_empty())
        {
            return Ok(known.clone());
        }
        let value = value.ok_or(SecretError::Malformed("the value is not a string"))?;
        let credentials = Arc::new(VexoraCredentials::from_json(&value)?);
        parsed.retain(|(s, _, _)| *s != stage);
        parsed.push((stage, version, credentials.clone()));
        Ok(credentials)
    }
}

fn classify(e: &(dyn std::error::Error + 'static), stage: Stage) -> SecretError {
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_secretsmanager_caching::secret_store::SecretStoreError;
    // The caching client wraps SDK errors; find a ResourceNotFound anywhere in the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(SecretStoreError::ResourceNotFound) = err.downcast_ref::<SecretStoreError>() {
            return SecretError::NotFound(stage.label());
        }
        if let Some(sdk) =
            err.downcast_ref::<aws_sdk_secretsmanager::error::SdkError<GetSecretValueError>>()
            && sdk
                .as_service_error()
                .is_some_and(GetSecretValueError::is_resource_not_found_exception)
        {
            return SecretError::NotFound(stage.label());
        }
        cause = err.source();
    }
    SecretError::Unavailable(e.to_string())
}

impl SecretSource for SecretsManagerSource {
    async fn credentials(&self, stage: Stage) -> Result<Arc<VexoraCredentials>, SecretError> {
        self.read(stage, false).await
    }

    async fn refresh(&self, stage: Stage) -> Result<Arc<VexoraCredentials>, SecretError> {
        self.read(stage, true).await
    }
}

/// Verifies Vexora's signatures with the current app secret or, while a merchant rotates it,
/// the previous one (`AWSCURRENT` / `AWSPREVIOUS`). After a failure it re-reads both from the
/// source at most once per `min_refresh_interval`, so forged requests cannot drive Secrets
/// Manager calls.
#[derive(Debug)]
pub struct Keyring<K> {
    source: K,
    previous: RwLock<Option<Arc<VexoraCredentials>>>,
    last_refresh: Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
}

/// How often a verification failure may refresh the secret.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

impl<K: SecretSource> Keyring<K> {
    /// Reads the current secret (required) and the previous one (if any) once, at init.
    pub async fn load(source: K, min_refresh_interval: Duration) -> Result<Self, SecretError> {
        source.credentials(Stage::Current).await?;
        let previous = optional(source.credentials(Stage::Previous).await)?;
        Ok(Self {
            source,
            previous: RwLock::new(previous),
            last_refresh: Mutex::new(None),
            min_refresh_interval,
        })
    }

    pub fn source(&self) -> &K {
        &self.source
    }

    /// Which secret signed `fields`, or `None` when none did. An error only when the secret
    /// could not be read at all.
    pub async fn verify(&self, fields: &ReceivedFields) -> Result<Option<Stage>, SecretError> {
        if fields.get(crate::signing::SIGN_FIELD).is_none() {
            return Ok(None);
        }
        let current = self.source.credentials(Stage::Current).await?;
        if let Some(stage) = self.match_stage(fields, &current) {
            return Ok(Some(stage));
        }
        if !self.may_refresh() {
            return Ok(None);
        }
        let current = self.source.refresh(Stage::Current).await?;
        let previous = optional(self.source.refresh(Stage::Previous).await)?;
        *self
            .previous
            .write()
            .unwrap_or_else(PoisonError::into_inner) = previous;
        Ok(self.match_stage(fields, &current))
    }

    fn match_stage(&self, fields: &ReceivedFields, current: &VexoraCredentials) -> Option<Stage> {
        if fields.verify(&current.app_secret) {
            return Some(Stage::Current);
        }
        let previous = self
            .previous
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        previous
            .filter(|p| fields.verify(&p.app_secret))
            .map(|_| Stage::Previous)
    }

    fn may_refresh(&self) -> bool {
        let mut last = self
            .last_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < self.min_refresh_interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// A stage that does not exist (no rotation yet) is `None`, not an error.
fn optional(
    read: Result<Arc<VexoraCredentials>, SecretError>,
) -> Result<Option<Arc<VexoraCredentials>>, SecretError> {
    match read {
        Ok(c) => Ok(Some(c)),
        Err(SecretError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_from_the_documented_json() {
        let c = VexoraCredentials::from_json(r#"{"merchantNo":"0000000001","appSecret":"abc"}"#)
            .unwrap();
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
    fn debug_never_prints_the_app_secret() {
        let c = VexoraCredentials::from_json(
            r#"{"merchantNo":"0000000001","appSecret":"CANARY-SECRET"}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("CANARY"));
    }
    mod against_moto {
        use super::super::*;
        use crate::testkit::{Moto, aws_config_for};

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

        const V1: &str = r#"{"merchantNo":"0000000001","appSecret":"first"}"#;
        const V2: &str = r#"{"merchantNo":"0000000001","appSecret":"second"}"#;

        #[tokio::test]
        async fn reads_are_served_from_the_cache_until_a_refresh() {
            let c = client().await;
            let id = create(&c, V1).await;
            let source = SecretsManagerSource::new(c.clone(), &id, DEFAULT_TTL).unwrap();
            assert_eq!(
                source
                    .credentials(Stage::Current)
                    .await
                    .unwrap()
                    .app_secret
                    .expose_secret(),
                "first"
            );

            c.put_secret_value()
                .secret_id(&id)
                .secret_string(V2)
                .send()
                .await
                .unwrap();

            let cached = source.credentials(Stage::Current).await.unwrap();
            assert_eq!(
                cached.app_secret.expose_secret(),
                "first",
                "a warm read must not call Secrets Manager"
            );
            let fresh = source.refresh(Stage::Current).await.unwrap();
            assert_eq!(fresh.app_secret.expose_secret(), "second");
        }

        #[tokio::test]
        async fn the_previous_version_is_readable_during_a_rotation() {
            let c = client().await;
            let id = create(&c, V1).await;
            c.put_secret_value()
                .secret_id(&id)
                .secret_string(V2)
                .send()
                .await
                .unwrap();
            let source = SecretsManagerSource::new(c, &id, DEFAULT_TTL).unwrap();

            let current = source.credentials(Stage::Current).await.unwrap();
            let previous = source.credentials(Stage::Previous).await.unwrap();

            assert_eq!(current.app_secret.expose_secret(), "second");
            assert_eq!(previous.app_secret.expose_secret(), "first");
        }

        #[tokio::test]
        async fn a_keyring_accepts_current_and_previous_and_refreshes_once_per_interval() {
            use crate::signing::{ReceivedFields, sign};
            let c = client().await;
            let id = create(&c, V1).await;
            let keyring = Keyring::load(
                SecretsManagerSource::new(c.clone(), &id, DEFAULT_TTL).unwrap(),
                MIN_REFRESH_INTERVAL,
            )
            .await
            .unwrap();
            let signed_with = |secret: &str| {
                let secret = SecretString::from(secret.to_owned());
                let sig = sign([("tradeNo", "T1"), ("status", "0000")], &secret);
                ReceivedFields::from_json(
                    format!(r#"{{"tradeNo":"T1","status":"0000","sign":"{sig}"}}"#).as_bytes(),
                )
                .unwrap()
            };
            assert_eq!(
                keyring.verify(&signed_with("first")).await.unwrap(),
                Some(Stage::Current)
            );

            c.put_secret_value()
                .secret_id(&id)
                .secret_string(V2)
                .send()
                .await
                .unwrap();

            // The cache still holds "first"; the failure refreshes and finds the rotation.
            assert_eq!(
                keyring.verify(&signed_with("second")).await.unwrap(),
                Some(Stage::Current)
            );
            assert_eq!(
                keyring.verify(&signed_with("first")).await.unwrap(),
                Some(Stage::Previous)
            );
            assert_eq!(keyring.verify(&signed_with("third")).await.unwrap(), None);
        }

        #[tokio::test]
        async fn a_missing_secret_is_not_found() {
            let source =
                SecretsManagerSource::new(client().await, "vexora/absent", DEFAULT_TTL).unwrap();
            let err = source.credentials(Stage::Current).await.unwrap_err();
            assert!(
                matches!(err, SecretError::NotFound("AWSCURRENT")),
                "{err:?}"
            );
        }

        #[tokio::test]
        async fn a_malformed_secret_is_reported_without_its_value() {
            let c = client().await;
            let id = create(&c, r#"{"merchantNo":"1","appSecret":"CANARY-SECRET"}"#).await;
            let source = SecretsManagerSource::new(c, &id, DEFAULT_TTL).unwrap();
            let err = source.credentials(Stage::Current).await.unwrap_err();
            assert!(matches!(err, SecretError::Malformed(_)), "{err:?}");
            assert!(!format!("{err} {err:?}").contains("CANARY"));
        }
    }
}
