//! End-to-end harness over the real payout functions. The functions arrive with their own
//! issues; until then this crate only checks that the core's test kit is usable from outside.
