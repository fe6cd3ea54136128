//! Lambda's answer for a stream or queue batch with partial failures (`ReportBatchItemFailures`):
//! the records to deliver again, by their stream sequence number or queue message id.

use serde::Serialize;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// A stream record's `SequenceNumber` or a queue message's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}
