//! `publish-payout-events`: the table's stream to EventBridge, every stored change once or more,
//! never none.

pub mod handler;
