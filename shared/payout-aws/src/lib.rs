//! The AWS adapters and the Lambda plumbing, the top layer below the functions:
//!
//! - adapters of the application's ports: [`store`] (DynamoDB), [`secrets`] (Secrets Manager),
//!   [`queue`] (SQS), [`events`] (EventBridge, and the table's stream records);
//! - [`sdk`]: the SDK's configuration and HTTP client, once for every client;
//! - Lambda plumbing: [`config`] (environment), [`bootstrap`] (what a function builds at cold
//!   start), [`time_budget`], [`telemetry`], [`item_failures`], and [`permissions`] (what each
//!   function's code calls, held to the template by a test).

pub mod bootstrap;
pub mod config;
pub mod events;
pub mod item_failures;
pub mod permissions;
pub mod queue;
pub mod sdk;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod time_budget;
