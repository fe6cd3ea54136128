//! `submit-batch-items`: queued batch items to Vexora, each sent once whatever the redeliveries.

pub mod handler;
