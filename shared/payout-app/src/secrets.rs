//! The Vexora merchant credentials as the flows hold them: read through a port ([`SecretStore`];
//! its Secrets Manager adapter is `payout_aws::secrets`), cached in memory per version, never
//! printable; and the keyring that verifies Vexora's signatures across a rotation.
//!
//! Rules (docs/contract.md § Security rules for signed bodies): a published placeholder never
//! verifies or signs anything; the previous version (`AWSPREVIOUS`) verifies only for the same
//! merchant and only within a grace window after the current version was created; a failed
//! verification re-reads the secret at most once per [`MIN_REFRESH_INTERVAL`], shared by
//! concurrent callers.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use vexora::credentials::{SecretError, VexoraCredentials};
use vexora::signing::ReceivedFields;

/// Which version of the secret: the current one, or the one before the last rotation.
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

/// One version of the secret as the store holds it.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The secret string (JSON); never printed.
    pub value: SecretString,
    pub version_id: String,
    /// When this version was created (Secrets Manager's `CreatedDate`).
    pub created_at: Option<DateTime<Utc>>,
}

/// The port: one uncached read of a stage. `Ok(None)` when the stage does not exist.
pub trait SecretStore: Send + Sync {
    fn fetch(
        &self,
        stage: Stage,
    ) -> impl Future<Output = Result<Option<StoredSecret>, SecretError>> + Send;
}

/// One parsed version.
#[derive(Debug)]
pub struct SecretVersion {
    pub credentials: VexoraCredentials,
    pub version_id: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// What the cache holds: the current version and (when usable) the previous one.
#[derive(Debug)]
struct Snapshot {
    current: Arc<SecretVersion>,
    /// `None` when there is none, or it is a placeholder, malformed or another merchant's.
    previous: Option<Arc<SecretVersion>>,
    /// Set when the current stage now holds a version that cannot be used (malformed, a
    /// placeholder): that version's creation date (or when it was first seen) and why. `current`
    /// is then the last good version, which verifies only as the previous secret, within the
    /// grace window from this date, and signs nothing.
    superseded: Option<(DateTime<Utc>, String)>,
    fetched_at: Instant,
    /// After a failed read: served as it is until then.
    retry_after: Option<Instant>,
}

/// How long a fetched secret is served from memory before Secrets Manager is asked again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// A failed verification re-reads the secret at most this often (per instance).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// After a failed read with a cached value in hand, the next try waits this long.
const RETRY_AFTER_FAILED_READ: Duration = Duration::from_secs(30);

/// The credentials, cached per version: a warm read calls nothing; a read after the TTL (or a
/// refresh) reads the current stage, and the previous stage only when the current version
/// changed. Reads are single-flight: concurrent callers share one fetch.
#[derive(Debug)]
pub struct Secrets<S> {
    store: S,
    ttl: Duration,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    fetching: tokio::sync::Mutex<()>,
}

impl<S: SecretStore> Secrets<S> {
    /// Reads the current version (required, not a placeholder) and the previous one, once.
    pub async fn load(store: S, ttl: Duration) -> Result<Self, SecretError> {
        let secrets = Self {
            store,
            ttl,
            snapshot: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        };
        secrets.fetch(None).await?;
        Ok(secrets)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current credentials, from memory while fresh. An error when the current version
    /// cannot be used, even with a good older one in memory: nothing is signed with a secret
    /// that is no longer current.
    pub async fn current(&self) -> Result<Arc<SecretVersion>, SecretError> {
        let snapshot = self.fresh().await?;
        match &snapshot.superseded {
            Some((_, why)) => Err(SecretError::Superseded(why.clone())),
            None => Ok(snapshot.current.clone()),
        }
    }

    fn cached(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn fresh(&self) -> Result<Arc<Snapshot>, SecretError> {
        match self.cached() {
            Some(s) if s.fetched_at.elapsed() < self.ttl => Ok(s),
            Some(s) if s.retry_after.is_some_and(|at| Instant::now() < at) => Ok(s),
            _ => self.fetch(Some(self.ttl)).await,
        }
    }

    /// Reads the secret now, whatever the cache holds, and keeps what it read. What it read is
    /// had through [`Secrets::current`] and the keyring only, so every rule (placeholder,
    /// superseded version, grace window) still applies.
    pub async fn refresh(&self) -> Result<(), SecretError> {
        self.fetch(None).await.map(|_| ())
    }

    /// Fetches unless another caller fetched within `unless_within` (single-flight).
    async fn fetch(&self, unless_within: Option<Duration>) -> Result<Arc<Snapshot>, SecretError> {
        let _one_at_a_time = self.fetching.lock().await;
        let known = self.cached();
        if let (Some(s), Some(within)) = (&known, unless_within)
            && s.fetched_at.elapsed() < within
        {
            return Ok(s.clone());
        }
        let current = match self.store.fetch(Stage::Current).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                return self.keep_serving(known, SecretError::NotFound(Stage::Current.label()));
            }
            Err(e) => return self.keep_serving(known, e),
        };
        let unchanged = known.as_ref().filter(|s| {
            s.current.version_id == current.version_id && !current.version_id.is_empty()
        });
        let snapshot = match unchanged {
            Some(s) => Snapshot {
                current: s.current.clone(),
                previous: s.previous.clone(),
                superseded: None,
                fetched_at: Instant::now(),
                retry_after: None,
            },
            None => {
                let created_at = current.created_at;
                let current = match parse(current) {
                    Ok(current) => Arc::new(current),
                    Err(e) => return self.superseded(known, created_at, e),
                };
                // A failed read of the previous stage must not hold the new current back.
                let previous = match self.store.fetch(Stage::Previous).await {
                    Ok(stored) => stored.and_then(|p| usable_previous(p, &current)),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the previous Vexora secret failed");
                        None
                    }
                };
                Snapshot {
                    current,
                    previous,
                    superseded: None,
                    fetched_at: Instant::now(),
                    retry_after: None,
                }
            }
        };
        let snapshot = Arc::new(snapshot);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Secrets Manager failed, or now holds something unusable (missing, malformed, a
    /// placeholder): keep serving the last good version (an outage or a slip should not stop
    /// payouts, nor make every request call Secrets Manager) and try again in 30 s; with nothing
    /// known, fail.
    fn keep_serving(
        &self,
        known: Option<Arc<Snapshot>>,
        error: SecretError,
    ) -> Result<Arc<Snapshot>, SecretError> {
        let Some(known) = known else {
            return Err(error);
        };
        tracing::warn!(error = %error, "reading the Vexora secret failed; serving the cached version");
        let retry_soon = Arc::new(Snapshot {
            current: known.current.clone(),
            previous: known.previous.clone(),
            superseded: known.superseded.clone(),
            fetched_at: known.fetched_at,
            retry_after: Some(Instant::now() + RETRY_AFTER_FAILED_READ),
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(retry_soon.clone());
        Ok(retry_soon)
    }
}

impl<S: SecretStore> Secrets<S> {
    /// The current stage now holds a version that cannot be used (malformed, a placeholder): the
    /// last good version is no longer current. It verifies only as the previous secret, within
    /// the grace window counted from the new version's creation date, and signs nothing; read
    /// again in 30 s. With nothing known, the error.
    fn superseded(
        &self,
        known: Option<Arc<Snapshot>>,
        created_at: Option<DateTime<Utc>>,
        error: SecretError,
    ) -> Result<Arc<Snapshot>, SecretError> {
        let Some(known) = known else {
            return Err(error);
        };
        tracing::error!(error = %error, "the current Vexora secret cannot be used; the one before it only verifies, within its grace window");
        let since = known
            .superseded
            .as_ref()
            .map(|(at, _)| *at)
            .or(created_at)
            .unwrap_or_else(Utc::now);
        let snapshot = Arc::new(Snapshot {
            current: known.current.clone(),
            previous: None,
            superseded: Some((since, error.to_string())),
            fetched_at: known.fetched_at,
            retry_after: Some(Instant::now() + RETRY_AFTER_FAILED_READ),
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot.clone());
        Ok(snapshot)
    }
}

fn parse(stored: StoredSecret) -> Result<SecretVersion, SecretError> {
    Ok(SecretVersion {
        credentials: VexoraCredentials::from_json(stored.value.expose_secret())?,
        version_id: stored.version_id,
        created_at: stored.created_at,
    })
}

/// The previous version, if it may ever verify: parsed, not a placeholder, same merchant.
fn usable_previous(stored: StoredSecret, current: &SecretVersion) -> Option<Arc<SecretVersion>> {
    let previous = parse(stored).ok()?;
    (previous.credentials.merchant_no == current.credentials.merchant_no)
        .then(|| Arc::new(previous))
}

/// Which secret verified a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Current,
    /// The previous version, inside its grace window.
    Previous,
}

/// Verifies Vexora's signatures with the current app secret or, within `grace` after the
/// current version was created, the previous one.
#[derive(Debug)]
pub struct Keyring<S> {
    secrets: Secrets<S>,
    grace: chrono::Duration,
    min_refresh_interval: Duration,
    /// When a failed verification last read the secret again; held while reading, so
    /// concurrent failures share one read.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// How long after a rotation the previous app secret still verifies notifications.
pub const DEFAULT_PREVIOUS_SECRET_GRACE: Duration = Duration::from_secs(24 * 3600);

impl<S: SecretStore> Keyring<S> {
    pub fn new(secrets: Secrets<S>, grace: Duration, min_refresh_interval: Duration) -> Self {
        Self {
            secrets,
            grace: chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
            min_refresh_interval,
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    pub fn secrets(&self) -> &Secrets<S> {
        &self.secrets
    }

    /// Which secret signed `fields`, from what is in memory (read again only after the TTL).
    /// An error only when the secret could not be read at all.
    pub async fn verify(
        &self,
        fields: &ReceivedFields,
        now: DateTime<Utc>,
    ) -> Result<Option<Verified>, SecretError> {
        let snapshot = self.secrets.fresh().await?;
        Ok(self.match_version(&snapshot, fields, now))
    }

    /// After [`Keyring::verify`] said no: reads the secret again unless a failed verification
    /// did within the minimum interval (concurrent callers share one read), then verifies again.
    /// Reads at init or after the TTL do not count: a rotation right after either is still
    /// found by the first notification signed with the new secret.
    pub async fn verify_refreshed(
        &self,
        fields: &ReceivedFields,
        now: DateTime<Utc>,
    ) -> Result<Option<Verified>, SecretError> {
        let mut last = self.last_refresh.lock().await;
        let snapshot = match *last {
            Some(at) if at.elapsed() < self.min_refresh_interval => self.secrets.fresh().await?,
            _ => {
                *last = Some(Instant::now());
                self.secrets.fetch(None).await?
            }
        };
        Ok(self.match_version(&snapshot, fields, now))
    }

    fn match_version(
        &self,
        snapshot: &Snapshot,
        fields: &ReceivedFields,
        now: DateTime<Utc>,
    ) -> Option<Verified> {
        if let Some((since, _)) = &snapshot.superseded {
            // The last good version, no longer current: the previous secret, in its window.
            let in_grace = since
                .checked_add_signed(self.grace)
                .is_some_and(|end| now < end);
            return (in_grace && fields.verify(&snapshot.current.credentials.app_secret))
                .then_some(Verified::Previous);
        }
        if fields.verify(&snapshot.current.credentials.app_secret) {
            return Some(Verified::Current);
        }
        let in_grace = snapshot
            .current
            .created_at
            .and_then(|created| created.checked_add_signed(self.grace))
            .is_some_and(|end| now < end);
        snapshot
            .previous
            .as_ref()
            .filter(|p| in_grace && fields.verify(&p.credentials.app_secret))
            .map(|_| Verified::Previous)
    }
}
