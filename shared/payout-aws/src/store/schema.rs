//! The table's shape, defined once: its keys and index (the one source of truth for the
//! adapter, tests, tools and the SAM template check) and every attribute name an item carries.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};

use super::StoreError;

/// Partition key: the merchant's `tradeNo` (string).
pub const PARTITION_KEY: &str = "tradeNo";
/// Sparse index of orders that are not final yet, by when to look at them next.
pub const UNRESOLVED_INDEX: &str = "unresolved-by-check-after";
/// Index partition key: present (value [`UNRESOLVED_MARK`]) only while an order is not final.
pub const UNRESOLVED_KEY: &str = "unresolved";
pub const UNRESOLVED_MARK: &str = "1";
/// Index sort key: epoch milliseconds of the next check (number).
pub const CHECK_AFTER: &str = "checkAfter";
/// What an item keeps at most (a rule of the order, kept here too as the table's bound).
pub use payout_domain::order::{MAX_ANOMALIES_KEPT, MAX_HISTORY_KEPT};

/// The attributes of an order item.
pub mod attr {
    pub use super::{CHECK_AFTER, PARTITION_KEY as TRADE_NO, UNRESOLVED_KEY as UNRESOLVED};
    pub const STATUS: &str = "status";
    pub const VERSION: &str = "version";
    pub const AMOUNT: &str = "amount";
    pub const CURRENCY: &str = "currency";
    pub const BANK_CODE: &str = "bankCode";
    pub const BANK_NUMBER_MASKED: &str = "bankNumberMasked";
    pub const USER_ID: &str = "userId";
    pub const REMARK: &str = "remark";
    pub const FINGERPRINT: &str = "fingerprint";
    pub const PLATFORM_TRADE_NO: &str = "platFormTradeNo";
    pub const VEXORA: &str = "vexora";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const HISTORY: &str = "history";
    pub const HISTORY_COUNT: &str = "historyCount";
    pub const ANOMALIES: &str = "anomalies";
    pub const ANOMALY_COUNT: &str = "anomalyCount";
    pub const CHECK_ATTEMPTS: &str = "checkAttempts";
    pub const LAST_QUERY_AT: &str = "lastQueryAt";
    pub const MANUAL_REVIEW: &str = "manualReview";
    /// When a report first said the payout was paid (`0000`, `0001`, a success time or bank
    /// reference), whatever became of it; never removed ([`payout_app::review`]).
    pub const REPORTED_PAID_AT: &str = "reportedPaidAt";
    /// Batch items ([`payout_app::batch`]): the batch, the queued request (personal data, removed
    /// when a worker takes the item), and when the worker took it.
    pub const BATCH_ID: &str = "batchId";
    pub const QUEUED_PAYLOAD: &str = "queuedPayload";
    /// Every batch that listed a queued item, a string set
    /// (docs/contract.md § Half-stored batches).
    pub const BATCH_IDS: &str = "batchIds";
    pub const SENT_AT: &str = "sentAt";
    /// A batch's own record ([`payout_app::batch::BatchRecord`]): its item keys and fingerprint.
    pub const ITEMS: &str = "items";
    pub const COMMITTED: &str = "committed";
    pub const LAST_WRITE: &str = "lastWrite";
    /// The ids of every annotation write that landed (a string set), so a retried one lands once.
    pub const KEPT_WRITES: &str = "keptWrites";
    pub const INTENT_ID: &str = "intentId";
    /// How many status events this order's changes stand for ([`payout_domain::events`]): every move
    /// and every recorded anomaly counts one, in the same write.
    /// The last anomaly recorded, kept even when the `anomalies` list is full.
    pub const LAST_ANOMALY: &str = "lastAnomaly";
}

/// The members of the maps inside an item (`vexora`, history entries, anomalies).
pub mod member {
    pub const AT: &str = "at";
    pub const SOURCE: &str = "source";
    pub const STATUS: &str = "status";
    pub const CODE: &str = "code";
    pub const MESSAGE: &str = "message";
    pub const PLATFORM_TRADE_NO: &str = "platFormTradeNo";
    pub const AMOUNT: &str = "amount";
    pub const REASON: &str = "reason";
    /// An operator's decision in a history entry ([`payout_app::review`]).
    pub const OPERATOR: &str = "operator";
    pub const EVIDENCE: &str = "evidence";
    pub const REPORT: &str = "report";
}

/// Creates the payouts table exactly as the SAM template declares it (on-demand, one sparse
/// index). Used by tests and the local stack.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let attr = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(UNRESOLVED_INDEX)
        .key_schema(key(UNRESOLVED_KEY, KeyType::Hash).map_err(super::unbuildable)?)
        .key_schema(key(CHECK_AFTER, KeyType::Range).map_err(super::unbuildable)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(super::unbuildable)?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash).map_err(super::unbuildable)?)
        .attribute_definitions(
            attr(PARTITION_KEY, ScalarAttributeType::S).map_err(super::unbuildable)?,
        )
        .attribute_definitions(
            attr(UNRESOLVED_KEY, ScalarAttributeType::S).map_err(super::unbuildable)?,
        )
        .attribute_definitions(
            attr(CHECK_AFTER, ScalarAttributeType::N).map_err(super::unbuildable)?,
        )
        .global_secondary_indexes(index)
        // The outbox of status events (payout_domain::events): every write, old and new image.
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(super::unbuildable)?,
        )
        .send()
        .await
        .map_err(super::unavailable)?;
    Ok(())
}
