//! Vexora's Japan payout API, as a connector in the Hyperswitch manner:
//!
//! - [`signing`]: the MD5 signature rule (`docs/vexora-api.md` §2) and the received-fields form a
//!   signature is verified over;
//! - [`credentials`]: the merchant number and app secret;
//! - [`wire`]: the request bodies and the answer envelope (`docs/vexora-api.md` §3–§4);
//! - [`transformers`]: the one mapping from an exchange to what it means for the payout;
//! - [`notification`]: a status notification and the rules that refuse an ambiguous one
//!   (`docs/vexora-api.md` §5);
//! - [`client`]: the HTTP client and the [`PayoutGateway`] port.
//!
//! Depends on the domain only; nothing here knows AWS, the store or a Lambda.

pub mod client;
pub mod credentials;
pub mod notification;
pub mod signing;
pub mod transformers;
pub mod wire;

pub use client::{CONNECT_TIMEOUT, ClientBuildError, PayoutGateway, VexoraClient, install_crypto};
pub use credentials::{MerchantNo, PLACEHOLDER_MERCHANT_NO, SecretError, VexoraCredentials};
pub use notification::{KEPT_FIELDS, Notification, NotificationError, Refusal, SUBMIT_ONLY_FIELDS};
pub use transformers::{
    Exchange, MAX_MESSAGE_CHARS, MAX_STATUS_CHARS, MAX_VALUE_CHARS, NotSent, Operation, Outcome,
    ReportedAmount, Unknown, VexoraCode, VexoraStatus, bounded, outcome, status_outcome,
};
pub use wire::{
    BALANCE_PATH, BalanceRequest, DISBURSEMENTS_PATH, DisbursementRequest, Envelope, EnvelopeData,
    MAX_ANSWER_BYTES, MERCHANT_HEADER, QUERY_PATH, QueryRequest, parse_envelope,
};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
