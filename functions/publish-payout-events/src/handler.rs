//! One batch of the table's stream records: the events each stands for ([`payout_domain::events`]),
//! published in record order, at most ten per `PutEvents`, each refused entry sent again a few
//! times. What still fails is handed back to Lambda as `batchItemFailures` from the first record
//! not wholly published, so Lambda delivers it (and everything after it) again: a crash, a
//! throttled `PutEvents` or an unreadable record never loses an event. Events of records before
//! that point may be published twice; consumers deduplicate by `eventId`.

use std::time::{Duration, Instant};

use payout_app::events::{EventSink, MAX_ENTRIES};
use payout_app::metrics::{self, Metrics};
use payout_aws::events::stream::StreamRecord;
use payout_domain::events::PayoutEvent;

pub use payout_aws::item_failures::DynamoDbEventResponse;
use payout_aws::item_failures::stream_answer;

/// Why a whole batch fails (Lambda then delivers all of it again).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event is not a DynamoDB stream batch (no `Records` list)")]
    NotAStreamBatch,
    /// A record that must be handed back has no sequence number to name it by.
    #[error("record {0} failed and has no SequenceNumber to hand it back by")]
    Unidentifiable(usize),
}

/// Publishes stream batches to an [`EventSink`].
#[derive(Debug)]
pub struct Publisher<S, M> {
    pub sink: S,
    pub metrics: M,
    /// Tries per `PutEvents` entry before its record is handed back.
    pub attempts: u32,
    /// Wait before the second try; doubled for each one after.
    pub backoff: Duration,
    /// Time kept for answering: no `PutEvents` starts closer than this to the deadline.
    pub reserve: Duration,
}

impl<S: EventSink, M: Metrics> Publisher<S, M> {
    pub fn new(sink: S, metrics: M) -> Self {
        Self {
            sink,
            metrics,
            attempts: 3,
            backoff: Duration::from_millis(100),
            // One AWS call's whole budget, plus the answer.
            reserve: payout_aws::time_budget::AWS_CALL + Duration::from_millis(500),
        }
    }

    pub async fn handle(
        &self,
        batch: &serde_json::Value,
        deadline: Instant,
    ) -> Result<DynamoDbEventResponse, PublishError> {
        let records = batch
            .get("Records")
            .and_then(serde_json::Value::as_array)
            .ok_or(PublishError::NotAStreamBatch)?;
        let mut events: Vec<(usize, PayoutEvent)> = Vec::new();
        let mut failed_from = None;
        for (i, raw) in records.iter().enumerate() {
            match StreamRecord::parse(raw) {
                Ok(record) => events.extend(record.events().into_iter().map(|e| (i, e))),
                Err(e) => {
                    tracing::error!(
                        record = i,
                        sequence_number = StreamRecord::sequence_number_of(raw),
                        error = %e,
                        "unreadable stream record; handed back"
                    );
                    failed_from = Some(i);
                    break;
                }
            }
        }
        let (published, unpublished) = self.publish(&events, deadline).await;
        if let Some(record) = unpublished {
            failed_from = Some(failed_from.map_or(record, |f: usize| f.min(record)));
        }
        self.metrics
            .count(metrics::PAYOUT_EVENTS_PUBLISHED, published as u64);
        let answer = match failed_from {
            None => stream_answer(Vec::new()),
            Some(first) => {
                let failures = records[first..]
                    .iter()
                    .enumerate()
                    .map(|(k, raw)| {
                        StreamRecord::sequence_number_of(raw)
                            .ok_or(PublishError::Unidentifiable(first + k))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.metrics
                    .count(metrics::PAYOUT_EVENT_RECORDS_RETRIED, failures.len() as u64);
                stream_answer(failures)
            }
        };
        tracing::info!(
            records = records.len(),
            events = events.len(),
            published,
            handed_back = answer.batch_item_failures.len(),
            first_event = events.first().map(|(_, e)| e.detail.event_id.as_str()),
            last_event = events.last().map(|(_, e)| e.detail.event_id.as_str()),
            "stream batch"
        );
        Ok(answer)
    }

    /// Publishes `events` in order, chunk by chunk; stops at the first chunk that cannot be
    /// wholly published. Answers how many were published and the first record not wholly
    /// published, if any.
    async fn publish(
        &self,
        events: &[(usize, PayoutEvent)],
        deadline: Instant,
    ) -> (usize, Option<usize>) {
        let mut published = 0;
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut todo: Vec<usize> = (0..chunk.len()).collect();
            let mut attempt = 0;
            while !todo.is_empty() {
                if attempt == self.attempts
                    || deadline.saturating_duration_since(Instant::now()) < self.reserve
                {
                    let first = todo.iter().map(|&k| chunk[k].0).min();
                    return (published, first);
                }
                if attempt > 0 {
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
                attempt += 1;
                let sending: Vec<&PayoutEvent> = todo.iter().map(|&k| &chunk[k].1).collect();
                match self.sink.put(&sending).await {
                    Ok(answers) => {
                        let refused: Vec<usize> = todo
                            .iter()
                            .zip(&answers)
                            .filter_map(|(&k, answer)| {
                                answer.as_ref().map(|rejected| {
                                    tracing::warn!(
                                        event_id = chunk[k].1.detail.event_id.as_str(),
                                        code = rejected.code.as_str(),
                                        attempt,
                                        "PutEvents refused an entry"
                                    );
                                    k
                                })
                            })
                            .collect();
                        published += todo.len() - refused.len();
                        self.metrics
                            .count(metrics::PAYOUT_EVENTS_REFUSED, refused.len() as u64);
                        todo = refused;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, entries = todo.len(), "PutEvents failed");
                    }
                }
            }
        }
        (published, None)
    }
}

#[cfg(test)]
mod tests;
