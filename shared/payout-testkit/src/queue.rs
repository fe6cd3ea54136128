//! The batch queue in memory (tests and the simulation only).

use std::sync::Mutex;

use payout_app::batch::{BatchMessage, BatchQueue, QueueError};

/// Messages kept in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub messages: Mutex<Vec<BatchMessage>>,
    /// While set, every send fails.
    pub down: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn taken(&self) -> Vec<BatchMessage> {
        std::mem::take(
            &mut *self
                .messages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl BatchQueue for MemoryQueue {
    async fn send(&self, messages: &[BatchMessage]) -> Result<usize, QueueError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(QueueError);
        }
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(messages);
        Ok(messages.len())
    }
}
