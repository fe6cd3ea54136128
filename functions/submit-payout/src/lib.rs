//! `submit-payout`: the merchant-facing payout API (`POST /payouts`, `GET /payouts/{tradeNo}`).

pub mod handler;
