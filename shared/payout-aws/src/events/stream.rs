//! DynamoDB stream records as Lambda delivers them (`{"Records": [...]}`), read leniently: only
//! `eventName`, `dynamodb.OldImage`, `dynamodb.NewImage` and `dynamodb.SequenceNumber` matter,
//! anything else (and its format, which emulators vary) is ignored. Each record is read on its
//! own, so one unreadable record fails itself, not the whole batch.

use serde::Deserialize;

use crate::store::order_from_image;
use payout_app::store::StoreError;
use payout_domain::events::{PayoutEvent, for_change};
use payout_domain::order::Order;

/// Why a stream record yields no events.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Only a fixed description: a parser's message could quote an attribute's value, which may
    /// be personal data.
    #[error("the stream record is not readable: {0}")]
    Shape(&'static str),
    #[error("the stream record's image is not an order")]
    Image(#[from] StoreError),
}

#[derive(Debug, Default, Deserialize)]
struct Change {
    #[serde(rename = "OldImage", default)]
    old_image: Option<serde_dynamo::Item>,
    #[serde(rename = "NewImage", default)]
    new_image: Option<serde_dynamo::Item>,
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: Option<String>,
    #[serde(default)]
    dynamodb: Change,
}

/// One stream record, read.
#[derive(Debug)]
pub struct StreamRecord {
    /// What Lambda's `batchItemFailures` names this record by.
    pub sequence_number: Option<String>,
    pub old: Option<Order>,
    pub new: Option<Order>,
}

impl StreamRecord {
    /// The sequence number of a record even when the rest of it is unreadable.
    pub fn sequence_number_of(raw: &serde_json::Value) -> Option<String> {
        raw.get("dynamodb")?
            .get("SequenceNumber")?
            .as_str()
            .map(str::to_owned)
    }

    pub fn parse(raw: &serde_json::Value) -> Result<Self, RecordError> {
        let record = Record::deserialize(raw)
            .map_err(|_| RecordError::Shape("not a DynamoDB stream record"))?;
        // A batch's own record shares the table: it is no order and stands for no event.
        let is_batch = |image: &Option<serde_dynamo::Item>| {
            image.as_ref().is_some_and(|i| {
                matches!(
                    i.inner().get(crate::store::schema::attr::TRADE_NO),
                    Some(serde_dynamo::AttributeValue::S(k)) if k.starts_with(payout_app::batch::RECORD_PREFIX)
                )
            })
        };
        if is_batch(&record.dynamodb.old_image) || is_batch(&record.dynamodb.new_image) {
            return Ok(Self {
                sequence_number: record.dynamodb.sequence_number,
                old: None,
                new: None,
            });
        }
        let image = |image: Option<serde_dynamo::Item>| image.map(order_from_image).transpose();
        let (old, new) = match record.event_name.as_deref() {
            Some("INSERT" | "MODIFY" | "REMOVE") | None => (
                image(record.dynamodb.old_image)?,
                image(record.dynamodb.new_image)?,
            ),
            Some(_) => {
                return Err(RecordError::Shape(
                    "an eventName other than INSERT, MODIFY or REMOVE",
                ));
            }
        };
        Ok(Self {
            sequence_number: record.dynamodb.sequence_number,
            old,
            new,
        })
    }

    /// The events this change stands for ([`for_change`]).
    pub fn events(&self) -> Vec<PayoutEvent> {
        for_change(self.old.as_ref(), self.new.as_ref())
    }
}
