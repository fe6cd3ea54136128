//! The payout core: everything the payout functions share.

pub mod apply;
pub mod aws;
pub mod balance;
pub mod batch;
pub mod bootstrap;
pub mod budget;
pub mod config;
pub mod domain;
pub mod events;
pub mod intent;
pub mod json;
pub mod metrics;
pub mod order;
pub mod partial_batch;
pub mod permissions;
pub mod resolve;
pub mod review;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod submit;
pub mod telemetry;
pub mod vexora;

#[cfg(any(test, feature = "test-util"))]
pub mod testkit;

#[cfg(test)]
mod properties;
