//! `payout-webhook`: Vexora's `notifyUrl`, verified, idempotent and forward-only.

pub mod handler;
