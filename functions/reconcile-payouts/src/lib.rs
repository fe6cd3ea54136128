//! `reconcile-payouts`: scheduled resolution of orders left without a final answer.

pub mod handler;
