//! The status events' EventBridge adapter (`PutEvents`), and the table's stream records they are
//! derived from ([`stream`]).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use payout_app::events::{EventSink, Rejected, SinkError};
use payout_domain::events::{PayoutEvent, SOURCE};

pub mod stream;

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
