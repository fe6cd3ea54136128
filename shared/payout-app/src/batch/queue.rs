//! The batch queue port: `{batchId, tradeNo}` messages (never personal data). Its SQS adapter is
//! `payout_aws::queue::SqsBatchQueue`; the in-memory one for tests is `payout_testkit::MemoryQueue`.

use std::future::Future;

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

/// Where batch items wait for a worker.
pub trait BatchQueue: Send + Sync {
    /// Queues every message; `Ok(n)` with how many were accepted (the rest stay queued in the
    /// table and are queued again by the reconciler).
    fn send(
        &self,
        messages: &[BatchMessage],
    ) -> impl Future<Output = Result<usize, QueueError>> + Send;
}

/// One queue shared by several holders (the submit function and the reconciler in a test or the
/// simulation).
impl<Q: BatchQueue> BatchQueue for std::sync::Arc<Q> {
    fn send(
        &self,
        messages: &[BatchMessage],
    ) -> impl Future<Output = Result<usize, QueueError>> + Send {
        (**self).send(messages)
    }
}
