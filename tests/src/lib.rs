//! The Vexora sandbox, the local-stack setup, and a Lambda runtime-API harness that runs the
//! real function binaries behind a small API-Gateway-like HTTP front, for end-to-end tests.

pub mod batches;
pub mod events;
pub mod lambda;
pub mod local;
pub mod reliability;
pub mod sandbox;
pub mod stack;
