//! The order store's DynamoDB adapter ([`DynamoOrderStore`]): the table's shape ([`schema`]), the
//! item codec, and the conditional writes it sends, built as data ([`plan`]). The port it
//! implements is `payout_app::store::OrderStore`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use payout_app::store::{DueCursor, StoreError};
use payout_domain::order::Order;

mod codec;
mod dynamo;
pub mod plan;
pub mod schema;

pub use dynamo::DynamoOrderStore;
pub use schema::create_table;

/// An order from a DynamoDB stream image (DynamoDB's JSON, as a stream record carries it).
pub fn order_from_image(image: serde_dynamo::Item) -> Result<Order, StoreError> {
    let item: HashMap<String, AttributeValue> = image
        .inner()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    codec::from_item(&item)
}

/// An order as a DynamoDB stream image carries it (DynamoDB's JSON): what a stream record
/// holds, for the tests and the simulation that build stream records.
pub fn order_to_image(order: &Order) -> serde_json::Value {
    let item: HashMap<String, serde_dynamo::AttributeValue> = codec::to_item(order)
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    serde_json::to_value(item).unwrap_or_default()
}

/// Every error of a DynamoDB call: the store failed or could not be reached. The SDK's error is
/// kept as the source, so its kind stays matchable by downcasting.
pub(crate) fn unavailable<E>(e: E) -> StoreError
where
    aws_sdk_dynamodb::Error: From<E>,
{
    StoreError::Unavailable(Box::new(aws_sdk_dynamodb::Error::from(e)))
}

/// A request that could not be built (a bug, not an outage).
pub(crate) fn unbuildable(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Build(Box::new(e))
}

/// The unresolved index's paging key for a cursor: the table's key and the index's.
pub(crate) fn cursor_key(cursor: DueCursor) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            schema::PARTITION_KEY.to_owned(),
            AttributeValue::S(cursor.trade_no),
        ),
        (
            schema::UNRESOLVED_KEY.to_owned(),
            AttributeValue::S(schema::UNRESOLVED_MARK.to_owned()),
        ),
        (
            schema::CHECK_AFTER.to_owned(),
            AttributeValue::N(cursor.check_after_ms.to_string()),
        ),
    ])
}

/// The cursor a paging key stands for; an unreadable key is a corrupt answer.
pub(crate) fn cursor_of(key: &HashMap<String, AttributeValue>) -> Result<DueCursor, StoreError> {
    let check_after_ms = match key.get(schema::CHECK_AFTER) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| StoreError::Corrupt(schema::CHECK_AFTER))?,
        _ => return Err(StoreError::Corrupt(schema::CHECK_AFTER)),
    };
    match key.get(schema::PARTITION_KEY) {
        Some(AttributeValue::S(trade_no)) => Ok(DueCursor {
            check_after_ms,
            trade_no: trade_no.clone(),
        }),
        _ => Err(StoreError::Corrupt(schema::PARTITION_KEY)),
    }
}

#[cfg(test)]
mod tests;
