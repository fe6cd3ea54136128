//! Lambda's queue event and its answer for a queue or stream batch with partial failures
//! (`ReportBatchItemFailures`), as `aws_lambda_events` types: the records to deliver again, by
//! their queue message id or stream sequence number.

pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
pub use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

/// The answer to a queue batch that hands back the messages `message_ids`.
pub fn queue_answer(message_ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut answer = SqsBatchResponse::default();
    answer.set_failures(message_ids);
    answer
}

/// The answer to a stream batch that hands back the records `sequence_numbers`.
pub fn stream_answer(sequence_numbers: impl IntoIterator<Item = String>) -> DynamoDbEventResponse {
    let mut answer = DynamoDbEventResponse::default();
    answer.batch_item_failures = sequence_numbers
        .into_iter()
        .map(|n| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(n);
            failure
        })
        .collect();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_are_what_lambda_reads() {
        assert_eq!(
            serde_json::to_value(queue_answer(["m1".to_owned()])).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
        );
        assert_eq!(
            serde_json::to_value(stream_answer(Vec::new())).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn a_queue_event_reads_as_lambda_sends_it() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "body": "{}", "eventSource": "aws:sqs", "attributes": {}},
        ]}))
        .unwrap();
        assert_eq!(event.records[0].message_id.as_deref(), Some("m1"));
        assert_eq!(event.records[0].body.as_deref(), Some("{}"));
    }
}
