//! The batch queue port: `{batchId, tradeNo}` messages (never personal data). Its SQS adapter is
//! `payout_aws::queue::SqsBatchQueue`; the in-memory one for tests is `payout_testkit::MemoryQueue`.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// One item to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchMessage {
    pub batch_id: String,
    pub trade_no: String,
}

/// Why messages could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("the batch queue refused or could not be reached")]
pub struct QueueError;

/// What sending returns: how many messages went.
pub type Sent<'a> = Pin<Box<dyn Future<Output = Result<usize, QueueError>> + Send + 'a>>;

/// Where batch items wait for a worker.
pub trait BatchQueue: Send + Sync + std::fmt::Debug {
    /// Queues every message; `Ok(n)` with how many were accepted (the rest stay queued in the
    /// table and are queued again by the reconciler).
    fn send<'a>(&'a self, messages: &'a [BatchMessage]) -> Sent<'a>;
}
