//! The batch queue's SQS adapter: `SendMessageBatch` calls of ten.

use payout_app::batch::{BatchMessage, BatchQueue, QueueError};

/// SQS, in `SendMessageBatch` calls of 10.
#[derive(Debug, Clone)]
pub struct SqsBatchQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsBatchQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Sends up to ten messages; those refused or lost are sent once more. Answers how many
    /// got there (a duplicate is harmless: a worker sends each item once).
    async fn send_chunk(&self, chunk: &[BatchMessage]) -> usize {
        let mut todo: Vec<(usize, &BatchMessage)> = chunk.iter().enumerate().collect();
        let mut sent = 0;
        for _ in 0..2 {
            let entries: Vec<_> = todo
                .iter()
                .filter_map(|(i, m)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(m).unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    sent += out.successful.len();
                    let failed: Vec<String> = out.failed.into_iter().map(|f| f.id).collect();
                    todo.retain(|(i, _)| failed.contains(&i.to_string()));
                }
                Err(e) => tracing::warn!(error = %e, "SendMessageBatch failed"),
            }
            if todo.is_empty() {
                break;
            }
        }
        sent
    }
}

impl BatchQueue for SqsBatchQueue {
    async fn send(&self, messages: &[BatchMessage]) -> Result<usize, QueueError> {
        let mut sent = 0;
        // Two calls of ten at a time.
        for group in messages.chunks(20) {
            let calls = group.chunks(10).map(|chunk| self.send_chunk(chunk));
            sent += futures_util::future::join_all(calls)
                .await
                .into_iter()
                .sum::<usize>();
        }
        if sent == 0 && !messages.is_empty() {
            return Err(QueueError);
        }
        Ok(sent)
    }
}
