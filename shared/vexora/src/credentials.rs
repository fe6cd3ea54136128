//! The merchant's credentials for Vexora (`docs/vexora-api.md` §2): the merchant number and the
//! app secret, parsed from the secret's JSON value; a published placeholder is refused.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

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

/// Values the template, the docs or common practice publish as stand-ins (compared without case
/// or surrounding blanks). A secret holding one was never issued by Vexora, so anyone can sign
/// with it: it must never verify or sign. The docs' own examples are among them (a test reads
/// them from the README, the pages under `docs/`, `openapi.yaml` and the template).
const PLACEHOLDER_APP_SECRETS: [&str; 12] = [
    "REPLACE-ME",
    "REPLACE_ME",
    "REPLACEME",
    "CHANGE-ME",
    "CHANGEME",
    "CHANGEIT",
    "PLACEHOLDER",
    "SECRET",
    "APPSECRET",
    "...",
    "…",
    "XXX",
];
/// The merchant number the template's generated secret carries until the merchant's is put.
pub const PLACEHOLDER_MERCHANT_NO: &str = "0000000000";

/// The merchant number and app secret. `Debug` masks the secret.
#[derive(Debug, Clone)]
pub struct VexoraCredentials {
    pub merchant_no: MerchantNo,
    pub app_secret: SecretString,
}

impl VexoraCredentials {
    /// Parses the secret's JSON value `{"merchantNo": "...", "appSecret": "..."}`; a
    /// placeholder (see [`PLACEHOLDER_APP_SECRETS`], [`PLACEHOLDER_MERCHANT_NO`]) is an error.
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
        let normalized = app_secret.expose_secret().trim().to_ascii_uppercase();
        // Prose pasted from a document ("the app secret from Vexora's merchant console") holds
        // blanks; an app secret issued by Vexora does not.
        if merchant_no.as_str() == PLACEHOLDER_MERCHANT_NO
            || PLACEHOLDER_APP_SECRETS.contains(&normalized.as_str())
            || app_secret.expose_secret().chars().any(char::is_whitespace)
        {
            return Err(SecretError::Placeholder);
        }
        Ok(Self {
            merchant_no,
            app_secret,
        })
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
    #[error(
        "the Vexora secret (VEXORA_SECRET_ID) still holds a placeholder: put the merchant's {{\"merchantNo\", \"appSecret\"}} from Vexora"
    )]
    Placeholder,
    /// The current version was replaced by one that cannot be used; the one before it only
    /// verifies (as the previous secret) and signs nothing.
    #[error(
        "the current version of the Vexora secret (VEXORA_SECRET_ID) cannot be used ({0}); nothing is signed with an older version until it is fixed"
    )]
    Superseded(String),
}
