//! Batch items, locally: the batch queue on moto's SQS feeds `submit-batch-items` as Lambda's
//! SQS event source mapping would — up to ten messages per invocation, a message deleted only
//! when the invocation succeeded and did not hand it back (`batchItemFailures`), everything
//! else visible again after the queue's visibility timeout. Used by the e2e tests, the
//! reliability run and `make dev`.
//!
//! Faults on request ([`Redelivery`]): every n-th batch delivered twice, again once it was
//! answered or to two workers at once (SQS's at-least-once).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::Value;

use crate::events::Invoke;

/// Creates the queue (idempotent); answers its URL. `visibility` is how soon a message that
/// was not deleted is delivered again.
pub async fn create_queue(
    sdk: &SdkConfig,
    name: &str,
    visibility: Duration,
) -> Result<String, String> {
    aws_sdk_sqs::Client::new(sdk)
        .create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().max(1).to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("creating queue {name}: {e:?}"))?
        .queue_url
        .ok_or(format!("queue {name} has no URL"))
}

/// What the pump did.
#[derive(Debug, Default)]
pub struct SqsPumpStats {
    pub received: AtomicU64,
    pub invocations: AtomicU64,
    pub failed_invocations: AtomicU64,
    /// Messages handed back by `batchItemFailures`.
    pub handed_back: AtomicU64,
    /// Batches delivered a second time on purpose, once the first delivery was answered.
    pub redelivered: AtomicU64,
    /// Batches delivered to two workers at once on purpose.
    pub redelivered_concurrently: AtomicU64,
    pub deleted: AtomicU64,
}

/// Which batches the pump delivers twice (each `None`: none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Redelivery {
    /// Every n-th invocation's messages again, once it was answered and before they are
    /// deleted.
    pub after_answer_every: Option<u64>,
    /// Every n-th batch received, to two workers at once (a free worker for each; never when
    /// the function has one).
    pub concurrently_every: Option<u64>,
}

/// Feeds a queue to a function until dropped.
#[derive(Debug)]
pub struct SqsPump {
    pub stats: Arc<SqsPumpStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SqsPump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SqsPump {
    /// `concurrency` invocations at once at most (Lambda's concurrency for the function).
    pub fn start<I: Invoke>(
        sdk: &SdkConfig,
        queue_url: String,
        invoker: Arc<I>,
        concurrency: usize,
        redeliver_every: Option<u64>,
    ) -> Self {
        let redelivery = Redelivery {
            after_answer_every: redeliver_every,
            concurrently_every: None,
        };
        Self::start_with(sdk, queue_url, invoker, concurrency, redelivery)
    }

    /// [`SqsPump::start`] with any [`Redelivery`].
    pub fn start_with<I: Invoke>(
        sdk: &SdkConfig,
        queue_url: String,
        invoker: Arc<I>,
        concurrency: usize,
        redelivery: Redelivery,
    ) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let stats = Arc::new(SqsPumpStats::default());
        let task = tokio::spawn(pump(
            sqs,
            queue_url,
            invoker,
            concurrency.max(1),
            redelivery,
            stats.clone(),
        ));
        Self { stats, task }
    }
}

async fn pump<I: Invoke>(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    invoker: Arc<I>,
    concurrency: usize,
    redelivery: Redelivery,
    stats: Arc<SqsPumpStats>,
) {
    let idle = Duration::from_millis(200);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut batches = 0u64;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok(page) = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
        else {
            tokio::time::sleep(idle).await;
            continue;
        };
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            drop(permit);
            tokio::time::sleep(idle).await;
            continue;
        }
        batches += 1;
        // A second worker for the twin: only this loop waits for a second permit, so two
        // deliveries never each hold one while waiting for another.
        let twin = if concurrency > 1
            && redelivery
                .concurrently_every
                .is_some_and(|every| batches.is_multiple_of(every))
        {
            permits.clone().acquire_owned().await.ok()
        } else {
            None
        };
        tokio::spawn(deliver(
            sqs.clone(),
            queue_url.clone(),
            invoker.clone(),
            messages,
            redelivery,
            stats.clone(),
            (permit, twin),
        ));
    }
}

/// One invocation with `messages` (two at once when it holds a permit for a twin), then the
/// deletes Lambda's mapping would make after the first.
async fn deliver<I: Invoke>(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    invoker: Arc<I>,
    messages: Vec<aws_sdk_sqs::types::Message>,
    redelivery: Redelivery,
    stats: Arc<SqsPumpStats>,
    permits: (
        tokio::sync::OwnedSemaphorePermit,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ),
) {
    {
        stats
            .received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "awsRegion": "ap-northeast-1",
                })
            })
            .collect();
        let event = serde_json::json!({ "Records": records });
        let n = stats.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        let answer = if permits.1.is_some() {
            // The same messages (the same receipts) in two workers' hands at once; the first
            // copy's answer decides the deletes, the twin's is ignored like a redelivery's.
            stats
                .redelivered_concurrently
                .fetch_add(1, Ordering::Relaxed);
            let (answer, _) = tokio::join!(invoker.invoke(&event), invoker.invoke(&event));
            answer
        } else {
            invoker.invoke(&event).await
        };
        if redelivery
            .after_answer_every
            .is_some_and(|every| n.is_multiple_of(every))
        {
            // SQS delivers at least once: the same messages again, before they are deleted.
            stats.redelivered.fetch_add(1, Ordering::Relaxed);
            let _ = invoker.invoke(&event).await;
        }
        let Ok(answer) = answer else {
            // A failed invocation: every message comes back after its visibility timeout.
            stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|i| i["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        stats
            .handed_back
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        for m in &messages {
            if failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                continue;
            }
            if let Some(handle) = &m.receipt_handle
                && sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .is_ok()
            {
                stats.deleted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
