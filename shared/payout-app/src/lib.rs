//! The application layer: the ports the flows need ([`store::OrderStore`],
//! [`batch::BatchStore`], [`batch::BatchQueue`], [`events::EventSink`], [`secrets::SecretStore`],
//! [`metrics::Metrics`], and Vexora's `vexora::PayoutGateway`) and the flows over them:
//!
//! - [`intent`]: store the intent before anything is sent;
//! - [`submit`]: sign, send, and record what came back;
//! - [`apply`]: the one rule that applies every report about a payout (answers, webhooks,
//!   queries) and settles an abandoned intent;
//! - [`query`]: ask Vexora about an order without a final answer, and apply the answer;
//! - [`review`]: what a report said, and an operator's resolution;
//! - [`balance`], [`batch`]: the merchant's balance and batches.
//!
//! Depends on the domain and the Vexora connector; the adapters (`payout_aws`) depend on it.

pub mod apply;
pub mod balance;
pub mod batch;
pub mod events;
pub mod intent;
pub mod metrics;
pub mod query;
pub mod review;
pub mod secrets;
pub mod store;
pub mod submit;
