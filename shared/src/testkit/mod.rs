//! Test support, compiled only for tests and the `test-util` feature: in-memory fakes of the
//! ports and a moto server the tests start themselves.

mod memory;
mod moto;

pub use memory::{InMemoryStore, StaticSecrets};
pub use moto::{Moto, aws_config_for};
