//! The payout core: everything the payout functions share.

pub mod apply;
pub mod aws;
pub mod balance;
pub mod batch;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod events;
pub mod intent;
pub mod item_failures;
pub mod json;
pub mod metrics;
pub mod order;
pub mod permissions;
pub mod resolve;
pub mod review;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod submit;
pub mod telemetry;
pub mod time_budget;
pub mod vexora;

#[cfg(any(test, feature = "test-util"))]
pub mod testkit;

#[cfg(test)]
mod properties;
