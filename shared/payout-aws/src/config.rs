//! Configuration from the contract's environment variables (docs/contract.md § Configuration),
//! validated once at init. Every problem is reported together, each naming its variable.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

use payout_app::secrets::DEFAULT_PREVIOUS_SECRET_GRACE;

pub const PAYOUTS_TABLE: &str = "PAYOUTS_TABLE";
pub const VEXORA_SECRET_ID: &str = "VEXORA_SECRET_ID";
pub const VEXORA_BASE_URL: &str = "VEXORA_BASE_URL";
pub const VEXORA_NOTIFY_URL: &str = "VEXORA_NOTIFY_URL";
pub const VEXORA_TIMEOUT_MS: &str = "VEXORA_TIMEOUT_MS";
/// Optional (beyond the contract): reconciler tuning, with defaults.
pub const RECONCILE_PROCESSING_AGE_MINUTES: &str = "RECONCILE_PROCESSING_AGE_MINUTES";
pub const RECONCILE_GIVE_UP_HOURS: &str = "RECONCILE_GIVE_UP_HOURS";
pub const RECONCILE_MAX_ORDERS: &str = "RECONCILE_MAX_ORDERS";
/// How long after a rotation the previous app secret still verifies webhooks, in seconds; at
/// most 24 h, 0 turns it off (docs/contract.md § Security rules for signed bodies).
pub const VEXORA_PREVIOUS_SECRET_GRACE_S: &str = "VEXORA_PREVIOUS_SECRET_GRACE_S";

/// Optional: the deployment's name (`dev`, `staging`, `prod`), a dimension of every metric.
pub const PAYOUTS_ENVIRONMENT: &str = "PAYOUTS_ENVIRONMENT";

/// The EventBridge bus (name or ARN) that `publish-payout-events` publishes to.
pub const PAYOUT_EVENTS_BUS: &str = "PAYOUT_EVENTS_BUS";

/// Optional: the SQS queue (URL) batch items wait in ([`payout_app::batch`]). Without it,
/// `POST /batches` answers `503` and the reconciler leaves queued items alone.
pub const PAYOUT_BATCH_QUEUE_URL: &str = "PAYOUT_BATCH_QUEUE_URL";

/// Every variable the functions read, for tools and templates that must match the code.
pub const ALL_VARIABLES: [&str; 12] = [
    PAYOUTS_TABLE,
    VEXORA_SECRET_ID,
    VEXORA_BASE_URL,
    VEXORA_NOTIFY_URL,
    VEXORA_TIMEOUT_MS,
    RECONCILE_PROCESSING_AGE_MINUTES,
    RECONCILE_GIVE_UP_HOURS,
    RECONCILE_MAX_ORDERS,
    VEXORA_PREVIOUS_SECRET_GRACE_S,
    PAYOUTS_ENVIRONMENT,
    PAYOUT_EVENTS_BUS,
    PAYOUT_BATCH_QUEUE_URL,
];

pub const DEFAULT_VEXORA_TIMEOUT: Duration = Duration::from_millis(8000);
const MAX_VEXORA_TIMEOUT_MS: u64 = 60_000;

/// The validated configuration every function reads. The functions that call Vexora read
/// [`VexoraConfig`] as well; the webhook does not, so it needs no Vexora URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub payouts_table: String,
    pub vexora_secret_id: String,
    /// A `PROCESSING` order is first queried this long after it got there.
    pub reconcile_processing_age: chrono::Duration,
    /// Past this age an unresolved order is marked for manual review.
    pub reconcile_give_up_after: chrono::Duration,
    /// At most this many orders are checked (and so queried) per reconciler run.
    pub reconcile_max_orders: u32,
    /// How long after a rotation the previous app secret still verifies webhooks.
    pub previous_secret_grace: Duration,
    /// The deployment's name, for metrics (`local` when unset).
    pub environment: String,
    /// Where batch items wait; `None` when batches are not configured.
    pub batch_queue_url: Option<String>,
}

/// One bad variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    pub variable: &'static str,
    pub problem: String,
}

/// All bad variables found at init.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<VarError>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", e.variable, e.problem)?;
        }
        Ok(())
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(from_env)
    }

    /// Reads through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let table = required(&lookup, PAYOUTS_TABLE, &mut errors);
        let secret_id = required(&lookup, VEXORA_SECRET_ID, &mut errors);
        let mut number = |name: &'static str, default: u32, max: u32| match lookup(name) {
            None => Some(default),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    errors.push(VarError {
                        variable: name,
                        problem: format!("must be a whole number from 1 to {max}"),
                    });
                    None
                }
            },
        };
        let processing_age = number(RECONCILE_PROCESSING_AGE_MINUTES, 15, 24 * 60);
        let give_up = number(RECONCILE_GIVE_UP_HOURS, 72, 24 * 30);
        let max_orders = number(RECONCILE_MAX_ORDERS, 100, 10_000);
        let max_grace = DEFAULT_PREVIOUS_SECRET_GRACE.as_secs();
        let grace = match lookup(VEXORA_PREVIOUS_SECRET_GRACE_S) {
            None => Some(DEFAULT_PREVIOUS_SECRET_GRACE),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(s) if s <= max_grace => Some(Duration::from_secs(s)),
                _ => {
                    errors.push(VarError {
                        variable: VEXORA_PREVIOUS_SECRET_GRACE_S,
                        problem: format!("must be a whole number of seconds from 0 to {max_grace}"),
                    });
                    None
                }
            },
        };
        let queue = match lookup(PAYOUT_BATCH_QUEUE_URL).map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => match parse_url(&v) {
                Ok(_) => Some(v),
                Err(problem) => {
                    errors.push(VarError {
                        variable: PAYOUT_BATCH_QUEUE_URL,
                        problem: format!("{problem} (an SQS queue URL)"),
                    });
                    None
                }
            },
        };
        // Every variable was read and every problem collected above; a value is missing only
        // where a problem was noted.
        let config = || -> Option<Self> {
            Some(Self {
                payouts_table: table?,
                vexora_secret_id: secret_id?,
                reconcile_processing_age: chrono::Duration::minutes(i64::from(processing_age?)),
                reconcile_give_up_after: chrono::Duration::hours(i64::from(give_up?)),
                reconcile_max_orders: max_orders?,
                previous_secret_grace: grace?,
                environment: environment(&lookup),
                batch_queue_url: queue,
            })
        };
        finish(config(), errors)
    }
}

/// Vexora's endpoint, for the functions that call it (`submit-payout`, `reconcile-payouts`,
/// `submit-batch-items`, the operator tool's `refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexoraConfig {
    pub base_url: Url,
    pub notify_url: Url,
    pub timeout: Duration,
}

impl VexoraConfig {
    /// Reads through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let base = required(&lookup, VEXORA_BASE_URL, &mut errors);
        let notify = required(&lookup, VEXORA_NOTIFY_URL, &mut errors);
        let mut check = |name: &'static str, r: Result<Url, String>| {
            r.map_err(|problem| {
                errors.push(VarError {
                    variable: name,
                    problem,
                })
            })
            .ok()
        };
        let production = lookup(PAYOUTS_ENVIRONMENT).is_some_and(|e| e.trim() == "prod");
        let base = base.and_then(|v| {
            check(
                VEXORA_BASE_URL,
                parse_url(&v).and_then(|url| {
                    if production && is_sandbox(&url) {
                        Err("is Vexora's sandbox, which prod must not call".into())
                    } else {
                        Ok(url)
                    }
                }),
            )
        });
        let notify = notify.and_then(|v| check(VEXORA_NOTIFY_URL, parse_url(&v)));
        let timeout = match lookup(VEXORA_TIMEOUT_MS) {
            None => Some(DEFAULT_VEXORA_TIMEOUT),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if (1..=MAX_VEXORA_TIMEOUT_MS).contains(&ms) => {
                    Some(Duration::from_millis(ms))
                }
                _ => {
                    errors.push(VarError {
                        variable: VEXORA_TIMEOUT_MS,
                        problem: format!(
                            "must be a whole number of milliseconds from 1 to {MAX_VEXORA_TIMEOUT_MS}"
                        ),
                    });
                    None
                }
            },
        };
        let config = || -> Option<Self> {
            Some(Self {
                base_url: base?,
                notify_url: notify?,
                timeout: timeout?,
            })
        };
        finish(config(), errors)
    }
}

/// The configuration read, unless any variable had a problem: then every problem.
fn finish<T>(read: Option<T>, errors: Vec<VarError>) -> Result<T, ConfigError> {
    match read {
        Some(read) if errors.is_empty() => Ok(read),
        _ => Err(ConfigError(errors)),
    }
}

/// A variable of the process environment.
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Both halves, for a function that calls Vexora: every problem of either reported together.
pub fn with_vexora(
    lookup: impl Fn(&str) -> Option<String> + Copy,
) -> Result<(Config, VexoraConfig), ConfigError> {
    match (
        Config::from_lookup(lookup),
        VexoraConfig::from_lookup(lookup),
    ) {
        (Ok(config), Ok(vexora)) => Ok((config, vexora)),
        (config, vexora) => Err(ConfigError(
            [config.err(), vexora.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| e.0)
                .collect(),
        )),
    }
}

/// A variable that must be set and not blank; its absence is noted in `errors`.
fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    errors: &mut Vec<VarError>,
) -> Option<String> {
    match lookup(name) {
        Some(v) if !v.trim().is_empty() => Some(v),
        _ => {
            errors.push(VarError {
                variable: name,
                problem: "is missing or empty".into(),
            });
            None
        }
    }
}

/// Whether `url` is Vexora's sandbox (any host whose first label names it, in any spelling).
fn is_sandbox(url: &Url) -> bool {
    url.host_str()
        .and_then(|host| host.split('.').next())
        .is_some_and(|label| label.to_ascii_lowercase().contains("sandbox"))
}

/// The configuration of `publish-payout-events`, which needs neither the table (its records
/// come from the stream) nor Vexora.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Name or ARN of the bus.
    pub bus: String,
    /// The deployment's name, for metrics (`local` when unset).
    pub environment: String,
}

impl EventsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(from_env)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bus = lookup(PAYOUT_EVENTS_BUS).map(|b| b.trim().to_owned());
        let problem = match &bus {
            None => Some("is missing or empty"),
            Some(b) if b.is_empty() => Some("is missing or empty"),
            // A bus name, or an ARN (which adds `:` and `/`).
            Some(b)
                if b.len() > 1600
                    || !b
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-/:".contains(&c)) =>
            {
                Some("is not an EventBridge bus name or ARN")
            }
            Some(_) => None,
        };
        match (bus, problem) {
            (Some(bus), None) => Ok(Self {
                bus,
                environment: environment(&lookup),
            }),
            (_, problem) => Err(ConfigError(vec![VarError {
                variable: PAYOUT_EVENTS_BUS,
                problem: problem.unwrap_or_default().to_owned(),
            }])),
        }
    }
}

/// The deployment's name from `PAYOUTS_ENVIRONMENT`, `local` when unset.
fn environment(lookup: &impl Fn(&str) -> Option<String>) -> String {
    lookup(PAYOUTS_ENVIRONMENT)
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// An absolute URL; `http://` only for loopback hosts (local runs), otherwise `https://`.
pub fn parse_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err("must use https:// (http:// is accepted only for loopback hosts)".into());
        }
        other => return Err(format!("must use https://, not {other}://")),
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

impl From<&Config> for payout_app::apply::Schedule {
    fn from(config: &Config) -> Self {
        Self {
            processing_age: config.reconcile_processing_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        (PAYOUTS_TABLE, "payouts"),
        (VEXORA_SECRET_ID, "vexora/merchant"),
        (VEXORA_BASE_URL, "https://sandbox-api.vexora.com/japan"),
        (VEXORA_NOTIFY_URL, "https://api.example.jp/vexora/notify"),
    ];

    fn with(name: &str, value: Option<&str>) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = GOOD
            .iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(value) = value {
            v.push((name.to_owned(), value.to_owned()));
        }
        v
    }

    /// Both halves, as a function that calls Vexora reads them, their problems together.
    fn load(pairs: Vec<(String, String)>) -> Result<(Config, VexoraConfig), ConfigError> {
        let map: HashMap<String, String> = pairs.into_iter().collect();
        both(|k| map.get(k).cloned())
    }

    fn both(
        lookup: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<(Config, VexoraConfig), ConfigError> {
        match (
            Config::from_lookup(lookup),
            VexoraConfig::from_lookup(lookup),
        ) {
            (Ok(c), Ok(v)) => Ok((c, v)),
            (c, v) => Err(ConfigError(
                [c.err(), v.err()]
                    .into_iter()
                    .flatten()
                    .flat_map(|e| e.0)
                    .collect(),
            )),
        }
    }

    #[test]
    fn a_complete_environment_loads_with_the_default_timeout() {
        let (c, v) = with_vexora(&env(GOOD)).unwrap();
        assert_eq!(c.payouts_table, "payouts");
        assert_eq!(v.timeout, Duration::from_millis(8000));
        assert_eq!(c.reconcile_processing_age, chrono::Duration::minutes(15));
        assert_eq!(c.reconcile_give_up_after, chrono::Duration::hours(72));
        assert_eq!(c.reconcile_max_orders, 100);
        assert_eq!(c.previous_secret_grace, Duration::from_secs(86_400));
        assert_eq!(v.base_url.as_str(), "https://sandbox-api.vexora.com/japan");
    }

    #[test]
    fn prod_refuses_vexoras_sandbox_however_it_is_written() {
        for url in [
            "https://sandbox-api.vexora.com/japan",
            "https://SANDBOX-API.vexora.com/japan/",
            "https://sandbox-api.vexora.com./japan",
            "https://sandbox.vexora.com",
        ] {
            let mut vars = with(VEXORA_BASE_URL, Some(url));
            vars.push((PAYOUTS_ENVIRONMENT.into(), " prod ".into()));
            let error = load(vars).unwrap_err().to_string();
            assert!(
                error.contains("VEXORA_BASE_URL is Vexora's sandbox"),
                "{url}: {error}"
            );
        }
        let mut vars = with(VEXORA_BASE_URL, Some("https://api.vexora.com/japan"));
        vars.push((PAYOUTS_ENVIRONMENT.into(), "prod".into()));
        assert!(load(vars).is_ok());
        let mut vars = GOOD
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>();
        vars.push((PAYOUTS_ENVIRONMENT.into(), "staging".into()));
        assert!(load(vars).is_ok(), "staging may use the sandbox");
    }

    #[test]
    fn loopback_http_is_accepted_for_local_runs() {
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:1/x",
            "http://[::1]:5/",
        ] {
            assert!(load(with(VEXORA_BASE_URL, Some(url))).is_ok(), "{url}");
        }
        let (_, v) = load(with(VEXORA_TIMEOUT_MS, Some("250"))).unwrap();
        assert_eq!(v.timeout, Duration::from_millis(250));
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (PAYOUTS_TABLE, None, "missing"),
            (PAYOUTS_TABLE, Some("  "), "missing"),
            (VEXORA_SECRET_ID, None, "missing"),
            (VEXORA_BASE_URL, None, "missing"),
            (VEXORA_BASE_URL, Some("not a url"), "not a valid URL"),
            (
                VEXORA_BASE_URL,
                Some("http://vexora.example.com"),
                "https://",
            ),
            (VEXORA_BASE_URL, Some("http://10.0.0.1"), "loopback"),
            (VEXORA_BASE_URL, Some("ftp://vexora.example.com"), "not ftp"),
            (
                VEXORA_BASE_URL,
                Some("https://vexora.example.com/?a=1"),
                "query",
            ),
            (VEXORA_NOTIFY_URL, None, "missing"),
            (
                VEXORA_NOTIFY_URL,
                Some("http://example.jp/notify"),
                "https://",
            ),
            (VEXORA_TIMEOUT_MS, Some("fast"), "milliseconds"),
            (VEXORA_TIMEOUT_MS, Some("0"), "milliseconds"),
            (VEXORA_TIMEOUT_MS, Some("60001"), "milliseconds"),
            (RECONCILE_PROCESSING_AGE_MINUTES, Some("0"), "whole number"),
            (RECONCILE_GIVE_UP_HOURS, Some("soon"), "whole number"),
            (RECONCILE_MAX_ORDERS, Some("-1"), "whole number"),
            (VEXORA_PREVIOUS_SECRET_GRACE_S, Some("86401"), "0 to 86400"),
            (VEXORA_PREVIOUS_SECRET_GRACE_S, Some("a day"), "seconds"),
        ];
        for (name, value, expected) in cases {
            let err = load(with(name, *value)).unwrap_err();
            assert_eq!(err.0.len(), 1, "{name}={value:?}: {err}");
            assert_eq!(err.0[0].variable, *name);
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(expected), "{text}");
        }
    }

    #[test]
    fn the_webhook_needs_no_vexora_url() {
        let vars: Vec<(&str, &str)> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| !k.starts_with("VEXORA_") || *k == VEXORA_SECRET_ID)
            .collect();
        assert!(Config::from_lookup(env(&vars)).is_ok());
        let err = VexoraConfig::from_lookup(env(&vars)).unwrap_err();
        let names: Vec<_> = err.0.iter().map(|e| e.variable).collect();
        assert_eq!(names, [VEXORA_BASE_URL, VEXORA_NOTIFY_URL]);
    }

    #[test]
    fn all_problems_are_reported_together() {
        let err = with_vexora(|_| None).unwrap_err();
        let names: Vec<_> = err.0.iter().map(|e| e.variable).collect();
        assert_eq!(
            names,
            [
                PAYOUTS_TABLE,
                VEXORA_SECRET_ID,
                VEXORA_BASE_URL,
                VEXORA_NOTIFY_URL
            ]
        );
    }
}
