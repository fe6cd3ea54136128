//! Where events go: the port ([`EventSink`]) and its EventBridge adapter (`PutEvents`).

use std::future::Future;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{PayoutEvent, SOURCE};

/// At most this many entries per `PutEvents` call (EventBridge's limit).
pub const MAX_ENTRIES: usize = 10;

/// The call failed as a whole (throttled, unreachable, timed out): nothing is known to be
/// published, so every entry is to be sent again.
#[derive(Debug, thiserror::Error)]
#[error("PutEvents failed: {0}")]
pub struct SinkError(pub String);

/// One entry EventBridge refused (its `ErrorCode`, e.g. `ThrottlingException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: String,
}

/// Publishes events; answers, entry by entry, which were refused (`None` = published).
pub trait EventSink: Send + Sync {
    fn put(
        &self,
        events: &[&PayoutEvent],
    ) -> impl Future<Output = Result<Vec<Option<Rejected>>, SinkError>> + Send;
}

/// EventBridge `PutEvents` to one bus.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        Self { client, bus }
    }
}

impl EventSink for EventBridgeSink {
    async fn put(&self, events: &[&PayoutEvent]) -> Result<Vec<Option<Rejected>>, SinkError> {
        let mut request = self.client.put_events();
        for event in events {
            request = request.entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.detail_type.as_str())
                    .detail(event.detail_json())
                    .build(),
            );
        }
        let answer = request.send().await.map_err(|e| {
            SinkError(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())
        })?;
        let entries = answer.entries();
        if entries.len() != events.len() {
            // EventBridge answers one entry per entry sent; anything else leaves every entry
            // in doubt, so all are sent again (consumers deduplicate by `eventId`).
            return Err(SinkError(format!(
                "PutEvents answered {} entries for {}",
                entries.len(),
                events.len()
            )));
        }
        Ok(entries
            .iter()
            .map(|entry| {
                entry.error_code().map(|code| Rejected {
                    code: code.to_owned(),
                })
            })
            .collect())
    }
}
