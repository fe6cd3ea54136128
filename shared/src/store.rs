//! Orders in DynamoDB: the table definition (the one source of truth for tests, tools and the
//! SAM template check), conditional create, guarded transitions, anomalies and the index of
//! unresolved orders.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType,
};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{Amount, TradeNo};
use crate::order::{Anomaly, HistoryEntry, Order, OrderStatus};
use crate::vexora::VexoraAnswer;

/// The table's shape, defined once.
pub mod schema {
    /// Partition key: the merchant's `tradeNo` (string).
    pub const PARTITION_KEY: &str = "tradeNo";
    /// Sparse index of orders that are not final yet, by when to look at them next.
    pub const UNRESOLVED_INDEX: &str = "unresolved-by-check-after";
    /// Index partition key: present (value [`UNRESOLVED_MARK`]) only while an order is not final.
    pub const UNRESOLVED_KEY: &str = "unresolved";
    pub const UNRESOLVED_MARK: &str = "1";
    /// Index sort key: epoch milliseconds of the next check (number).
    pub const CHECK_AFTER: &str = "checkAfter";
    /// At most this many anomalies are kept on an order; the count goes on.
    pub const MAX_ANOMALIES_KEPT: usize = 20;
    /// At most this many notifications are kept in an order's history; the count goes on.
    pub const MAX_HISTORY_KEPT: usize = 50;
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
        .index_name(schema::UNRESOLVED_INDEX)
        .key_schema(key(schema::UNRESOLVED_KEY, KeyType::Hash)?)
        .key_schema(key(schema::CHECK_AFTER, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(schema::PARTITION_KEY, KeyType::Hash)?)
        .attribute_definitions(attr(schema::PARTITION_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attr(schema::UNRESOLVED_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attr(schema::CHECK_AFTER, ScalarAttributeType::N)?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e.into())))?;
    Ok(())
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB failed or could not be reached; the SDK error is kept so its kind stays matchable.
    #[error("DynamoDB request failed")]
    Unavailable(#[source] Box<aws_sdk_dynamodb::Error>),
    /// A request to DynamoDB could not be built (a bug, not an outage).
    #[error("DynamoDB request could not be built")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
    /// A stored item does not read as an order.
    #[error("stored order is unreadable: attribute `{0}`")]
    Corrupt(&'static str),
    /// No order may move to this state (nothing moves to `PENDING`).
    #[error("no state may move to {0}")]
    ImpossibleTransition(OrderStatus),
    /// A guarded write was refused although the order as returned allows it: it changed in
    /// between. Nothing was written; the caller tries again later.
    #[error("the order changed during the write; nothing was written")]
    Conflict,
}

/// The result of a create-if-absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// An order with this `tradeNo` already exists; here it is, from the same round trip.
    AlreadyExists(Box<Order>),
}

/// A move of one order to a new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: OrderStatus,
    /// When set, the move happens only if the order is still at this version.
    pub expected_version: Option<u64>,
    /// Vexora's answer that caused the move, kept on the order.
    pub answer: Option<VexoraAnswer>,
    pub at: DateTime<Utc>,
    /// Next reconciler check for a non-final target; ignored for final ones.
    pub check_after: Option<DateTime<Utc>>,
    /// When set, the move happens only if the order is for this amount.
    pub expected_amount: Option<Amount>,
    /// A report to keep in the order's history in the same write. Transitions append without a
    /// bound: an order moves at most four times, so only [`Keep`] writes need one.
    pub history: Option<HistoryEntry>,
    /// An anomaly to keep in the same write (an undocumented status moves a `PENDING` order
    /// and is flagged at once).
    pub anomaly: Option<Anomaly>,
    /// Written as the item's `lastWrite`: a retried write that finds its own id knows it landed.
    pub write_id: Option<String>,
    /// When set, the move happens only to the order this submit stored; another intent for the
    /// same `tradeNo` (after ours was withdrawn) is [`Transitioned::NotFound`] to it.
    pub expected_intent: Option<String>,
}

impl Transition {
    /// A move to `to` at `at` with no other guard, answer or history.
    pub fn to(to: OrderStatus, at: DateTime<Utc>) -> Self {
        Self {
            to,
            expected_version: None,
            answer: None,
            at,
            check_after: None,
            expected_amount: None,
            history: None,
            anomaly: None,
            write_id: None,
            expected_intent: None,
        }
    }

    /// Whether the guard of this transition lets `order` move (state, version, amount).
    pub fn allows(&self, order: &Order) -> bool {
        order.status.may_move_to(self.to)
            && self.expected_version.is_none_or(|v| v == order.version)
            && self.expected_amount.is_none_or(|a| a == order.amount)
    }

    /// Whether `order` is another intent than the one this transition is for.
    pub fn is_for_another_intent(&self, order: &Order) -> bool {
        self.expected_intent
            .as_ref()
            .is_some_and(|id| order.intent_id.as_ref() != Some(id))
    }
}

/// What a guarded transition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transitioned {
    /// Moved; the order as stored now.
    Applied(Order),
    /// The guard failed; the order as it stands (so the caller can tell duplicate from stale).
    Rejected(Order),
    NotFound,
}

/// Keeps a report on an order without changing its state: its history entry and, when it is
/// an anomaly, the anomaly, both in one write. Built from the order as last read, so each
/// bounded list is appended to only while it has room (the counts go on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub history: Option<HistoryEntry>,
    pub anomaly: Option<Anomaly>,
    /// Whether each list still has room, from the order as last read.
    pub history_room: bool,
    pub anomalies_room: bool,
    /// Written as `lastWrite` (see [`Transition::write_id`]).
    pub write_id: String,
}

impl Keep {
    pub fn new(
        known: &Order,
        history: Option<HistoryEntry>,
        anomaly: Option<Anomaly>,
        write_id: String,
    ) -> Self {
        Self {
            history,
            anomaly,
            history_room: known.history.len() < schema::MAX_HISTORY_KEPT,
            anomalies_room: known.anomalies.len() < schema::MAX_ANOMALIES_KEPT,
            write_id,
        }
    }
}

/// One page of unresolved orders due for a check.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePage {
    pub trade_nos: Vec<TradeNo>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<DueCursor>,
}

/// Opaque position in the unresolved index.
#[derive(Debug, Clone, PartialEq)]
pub struct DueCursor(HashMap<String, AttributeValue>);

/// The port the functions use to keep orders.
pub trait OrderStore: Send + Sync {
    /// Stores a new order unless its `tradeNo` exists; never overwrites.
    fn create(&self, order: &Order) -> impl Future<Output = Result<Created, StoreError>> + Send;

    fn get(
        &self,
        trade_no: &TradeNo,
    ) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Moves an order in one conditional write guarded by the allowed previous states
    /// (and the version when given).
    fn transition(
        &self,
        trade_no: &TradeNo,
        transition: &Transition,
    ) -> impl Future<Output = Result<Transitioned, StoreError>> + Send;

    /// Removes the order stored by the intent `intent_id` while it is still `PENDING`, and only
    /// then: for a submit that certainly never reached Vexora, so that a retry starts afresh.
    /// `false` when it was not removed (it moved on, is gone, or is another intent's).
    fn delete_pending(
        &self,
        trade_no: &TradeNo,
        intent_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the next check of an unresolved order: moves `checkAfter` from the value the caller
    /// read (`seen`) to `next`, counts the attempt, notes the query time, and optionally marks
    /// the order for manual review. `false` when another run took it first (so overlapping runs
    /// never query or apply twice).
    fn claim_check(
        &self,
        trade_no: &TradeNo,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
        manual_review: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a merchant-requested refresh: at most one query per `min_interval` per order.
    fn claim_refresh(
        &self,
        trade_no: &TradeNo,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps a report (history, anomaly) on an order without changing its state, in one
    /// write. `false` when the order does not exist.
    fn keep(
        &self,
        trade_no: &TradeNo,
        keep: &Keep,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Unresolved orders whose next check is at or before `now`, oldest first.
    fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> impl Future<Output = Result<DuePage, StoreError>> + Send;
}

/// The real adapter.
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn transition_once(
        &self,
        trade_no: &TradeNo,
        t: &Transition,
    ) -> Result<Transitioned, StoreError> {
        let sources = OrderStatus::allowed_sources(t.to);
        if sources.is_empty() {
            return Err(StoreError::ImpossibleTransition(t.to));
        }
        let mut names = HashMap::from([
            ("#pk".to_owned(), schema::PARTITION_KEY.to_owned()),
            ("#status".to_owned(), "status".to_owned()),
            ("#version".to_owned(), "version".to_owned()),
            ("#updatedAt".to_owned(), "updatedAt".to_owned()),
        ]);
        let mut values = HashMap::from([
            (":to".to_owned(), s(t.to.as_str())),
            (":one".to_owned(), n(1)),
            (":at".to_owned(), s(&timestamp(t.at))),
        ]);
        let mut placeholders = Vec::with_capacity(sources.len());
        for (i, source) in sources.iter().enumerate() {
            let key = format!(":from{i}");
            values.insert(key.clone(), s(source.as_str()));
            placeholders.push(key);
        }
        let mut condition = format!(
            "attribute_exists(#pk) AND #status IN ({})",
            placeholders.join(", ")
        );
        if let Some(version) = t.expected_version {
            condition.push_str(" AND #version = :expected");
            values.insert(":expected".to_owned(), n(version));
        }
        if let Some(amount) = t.expected_amount {
            condition.push_str(" AND amount = :amount");
            values.insert(":amount".to_owned(), n(amount.yen()));
        }
        if let Some(intent) = &t.expected_intent {
            condition.push_str(" AND intentId = :intent");
            values.insert(":intent".to_owned(), s(intent));
        }
        let mut set = vec![
            "#status = :to",
            "#version = #version + :one",
            "#updatedAt = :at",
        ];
        let mut add = Vec::new();
        if let Some(entry) = &t.history {
            set.push("history = list_append(if_not_exists(history, :empty), :entry)");
            add.push("historyCount :one");
            values.insert(":empty".to_owned(), AttributeValue::L(Vec::new()));
            values.insert(
                ":entry".to_owned(),
                AttributeValue::L(vec![history_to_attr(entry)]),
            );
        }
        if let Some(anomaly) = &t.anomaly {
            set.push("anomalies = list_append(if_not_exists(anomalies, :empty), :anomaly)");
            add.push("anomalyCount :one");
            values.insert(":empty".to_owned(), AttributeValue::L(Vec::new()));
            values.insert(
                ":anomaly".to_owned(),
                AttributeValue::L(vec![anomaly_to_attr(anomaly)]),
            );
        }
        if let Some(write_id) = &t.write_id {
            set.push("lastWrite = :write");
            values.insert(":write".to_owned(), s(write_id));
        }
        let mut remove = Vec::new();
        if let Some(answer) = &t.answer {
            set.push("vexora = :vexora");
            values.insert(":vexora".to_owned(), answer_to_attr(answer));
            if let Some(platform) = &answer.plat_form_trade_no {
                set.push("platFormTradeNo = :platform");
                values.insert(":platform".to_owned(), s(platform));
            }
        }
        match (t.to.is_final(), t.check_after) {
            (true, _) => {
                // A final order leaves the unresolved index.
                names.insert("#unresolved".to_owned(), schema::UNRESOLVED_KEY.to_owned());
                names.insert("#checkAfter".to_owned(), schema::CHECK_AFTER.to_owned());
                remove.extend(["#unresolved", "#checkAfter"]);
            }
            (false, Some(at)) => {
                names.insert("#checkAfter".to_owned(), schema::CHECK_AFTER.to_owned());
                set.push("#checkAfter = :checkAfter");
                values.insert(":checkAfter".to_owned(), n(at.timestamp_millis()));
            }
            (false, None) => {}
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            expression.push_str(&format!(" ADD {}", add.join(", ")));
        }
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or(StoreError::Corrupt(schema::PARTITION_KEY))?;
                Ok(Transitioned::Applied(from_item(&item)?))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item {
                    Some(item) => {
                        let current = from_item(&item)?;
                        // Our own write landed and its answer was lost: the SDK's retry found it.
                        if t.write_id.is_some() && current.last_write == t.write_id {
                            Ok(Transitioned::Applied(current))
                        } else if t.is_for_another_intent(&current) {
                            Ok(Transitioned::NotFound)
                        } else {
                            Ok(Transitioned::Rejected(current))
                        }
                    }
                    None => Ok(Transitioned::NotFound),
                },
                other => Err(StoreError::Unavailable(Box::new(other.into()))),
            },
            Err(e) => Err(StoreError::Unavailable(Box::new(e.into()))),
        }
    }
}

impl OrderStore for DynamoOrderStore {
    async fn create(&self, order: &Order) -> Result<Created, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(order)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PARTITION_KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::Created),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let item = failed
                        .item
                        .ok_or(StoreError::Corrupt(schema::PARTITION_KEY))?;
                    Ok(Created::AlreadyExists(Box::new(from_item(&item)?)))
                }
                other => Err(StoreError::Unavailable(Box::new(other.into()))),
            },
            Err(e) => Err(StoreError::Unavailable(Box::new(e.into()))),
        }
    }

    async fn get(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e.into())))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn delete_pending(
        &self,
        trade_no: &TradeNo,
        intent_id: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .condition_expression("#status = :pending AND intentId = :intent")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":intent", s(intent_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::Unavailable(Box::new(e.into()))),
        }
    }

    async fn transition(
        &self,
        trade_no: &TradeNo,
        t: &Transition,
    ) -> Result<Transitioned, StoreError> {
        self.transition_once(trade_no, t).await
    }

    async fn claim_check(
        &self,
        trade_no: &TradeNo,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
        manual_review: bool,
    ) -> Result<bool, StoreError> {
        let mut expression = "SET #checkAfter = :next, lastQueryAt = :now, checkAttempts = if_not_exists(checkAttempts, :zero) + :one".to_owned();
        if manual_review {
            expression.push_str(", manualReview = :review");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .update_expression(expression)
            .condition_expression("#checkAfter = :seen AND attribute_exists(#unresolved)")
            .expression_attribute_names("#checkAfter", schema::CHECK_AFTER)
            .expression_attribute_names("#unresolved", schema::UNRESOLVED_KEY)
            .expression_attribute_values(":seen", n(seen.timestamp_millis()))
            .expression_attribute_values(":next", n(next.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        if manual_review {
            request = request.expression_attribute_values(":review", AttributeValue::Bool(true));
        }
        conditional(request.send().await)
    }

    async fn claim_refresh(
        &self,
        trade_no: &TradeNo,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .update_expression("SET lastQueryAt = :now")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(lastQueryAt) OR lastQueryAt <= :cutoff)",
            )
            .expression_attribute_names("#pk", schema::PARTITION_KEY)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":cutoff", n((now - min_interval).timestamp_millis()))
            .send()
            .await;
        conditional(result)
    }

    async fn keep(&self, trade_no: &TradeNo, keep: &Keep) -> Result<bool, StoreError> {
        let mut set = vec!["lastWrite = :write"];
        let mut add = Vec::new();
        let mut values = HashMap::from([
            (":write".to_owned(), s(&keep.write_id)),
            (":one".to_owned(), n(1)),
            (":empty".to_owned(), AttributeValue::L(Vec::new())),
        ]);
        if let Some(entry) = &keep.history {
            add.push("historyCount :one");
            if keep.history_room {
                set.push("history = list_append(if_not_exists(history, :empty), :entry)");
                values.insert(
                    ":entry".to_owned(),
                    AttributeValue::L(vec![history_to_attr(entry)]),
                );
            }
        }
        if let Some(anomaly) = &keep.anomaly {
            add.push("anomalyCount :one");
            if keep.anomalies_room {
                set.push("anomalies = list_append(if_not_exists(anomalies, :empty), :anomaly)");
                values.insert(
                    ":anomaly".to_owned(),
                    AttributeValue::L(vec![anomaly_to_attr(anomaly)]),
                );
            }
        }
        if !set.iter().any(|part| part.contains(":empty")) {
            values.remove(":empty");
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            expression.push_str(&format!(" ADD {}", add.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(schema::PARTITION_KEY, s(trade_no.as_str()))
            .update_expression(expression)
            // A retry of a write that landed finds its own id and is not applied twice.
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(lastWrite) OR lastWrite <> :write)",
            )
            .expression_attribute_names("#pk", schema::PARTITION_KEY)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(failed.item.is_some())
                }
                other => Err(StoreError::Unavailable(Box::new(other.into()))),
            },
            Err(e) => Err(StoreError::Unavailable(Box::new(e.into()))),
        }
    }

    async fn due_for_check(
        &self,
        now: DateTime<Utc>,
        limit: i32,
        start: Option<DueCursor>,
    ) -> Result<DuePage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::UNRESOLVED_INDEX)
            .key_condition_expression("#u = :mark AND #c <= :now")
            .expression_attribute_names("#u", schema::UNRESOLVED_KEY)
            .expression_attribute_names("#c", schema::CHECK_AFTER)
            .expression_attribute_values(":mark", s(schema::UNRESOLVED_MARK))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .limit(limit)
            .set_exclusive_start_key(start.map(|c| c.0))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e.into())))?;
        let trade_nos = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                get_s(item, schema::PARTITION_KEY).and_then(|t| {
                    TradeNo::parse(t).map_err(|_| StoreError::Corrupt(schema::PARTITION_KEY))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DuePage {
            trade_nos,
            next: out.last_evaluated_key.map(DueCursor),
        })
    }
}

/// A conditional write's result as "done" or "condition failed".
fn conditional<T>(
    result: Result<T, SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(e) => Err(StoreError::Unavailable(Box::new(e.into()))),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// RFC 3339 with milliseconds in UTC: sortable and what the API shows.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn answer_to_attr(a: &VexoraAnswer) -> AttributeValue {
    let mut m = HashMap::new();
    for (k, v) in [
        ("code", &a.code),
        ("status", &a.status),
        ("message", &a.message),
        ("platFormTradeNo", &a.plat_form_trade_no),
    ] {
        if let Some(v) = v {
            m.insert(k.to_owned(), s(v));
        }
    }
    AttributeValue::M(m)
}

fn anomaly_to_attr(a: &Anomaly) -> AttributeValue {
    let report = a
        .report
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect::<HashMap<_, _>>();
    AttributeValue::M(HashMap::from([
        ("at".to_owned(), s(&timestamp(a.at))),
        ("source".to_owned(), s(&a.source)),
        ("reason".to_owned(), s(&a.reason)),
        ("report".to_owned(), AttributeValue::M(report)),
    ]))
}

fn history_to_attr(h: &HistoryEntry) -> AttributeValue {
    let mut m = HashMap::from([
        ("at".to_owned(), s(&timestamp(h.at))),
        ("source".to_owned(), s(&h.source)),
        ("status".to_owned(), s(&h.status)),
    ]);
    if let Some(p) = &h.plat_form_trade_no {
        m.insert("platFormTradeNo".to_owned(), s(p));
    }
    if let Some(a) = &h.amount {
        m.insert("amount".to_owned(), s(a));
    }
    AttributeValue::M(m)
}

fn history_from_attr(v: &AttributeValue) -> Result<HistoryEntry, StoreError> {
    let m = v.as_m().map_err(|_| StoreError::Corrupt("history"))?;
    Ok(HistoryEntry {
        at: get_time(m, "at")?,
        source: get_s(m, "source")?.to_owned(),
        status: get_s(m, "status")?.to_owned(),
        plat_form_trade_no: opt_s(m, "platFormTradeNo"),
        amount: opt_s(m, "amount"),
    })
}

fn to_item(o: &Order) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (schema::PARTITION_KEY.to_owned(), s(o.trade_no.as_str())),
        ("status".to_owned(), s(o.status.as_str())),
        ("version".to_owned(), n(o.version)),
        ("amount".to_owned(), n(o.amount.yen())),
        ("currency".to_owned(), s("JPY")),
        ("bankCode".to_owned(), s(&o.bank_code)),
        ("bankNumberMasked".to_owned(), s(&o.bank_number_masked)),
        ("userId".to_owned(), s(&o.user_id)),
        ("fingerprint".to_owned(), s(&o.fingerprint)),
        ("createdAt".to_owned(), s(&timestamp(o.created_at))),
        ("updatedAt".to_owned(), s(&timestamp(o.updated_at))),
        ("anomalyCount".to_owned(), n(o.anomaly_count)),
    ]);
    if let Some(remark) = &o.remark {
        item.insert("remark".to_owned(), s(remark));
    }
    if let Some(p) = &o.plat_form_trade_no {
        item.insert("platFormTradeNo".to_owned(), s(p));
    }
    if let Some(a) = &o.vexora {
        item.insert("vexora".to_owned(), answer_to_attr(a));
    }
    if !o.anomalies.is_empty() {
        item.insert(
            "anomalies".to_owned(),
            AttributeValue::L(o.anomalies.iter().map(anomaly_to_attr).collect()),
        );
    }
    if o.check_attempts > 0 {
        item.insert("checkAttempts".to_owned(), n(o.check_attempts));
    }
    if let Some(at) = o.last_query_at {
        item.insert("lastQueryAt".to_owned(), n(at.timestamp_millis()));
    }
    if o.manual_review {
        item.insert("manualReview".to_owned(), AttributeValue::Bool(true));
    }
    if let Some(write) = &o.last_write {
        item.insert("lastWrite".to_owned(), s(write));
    }
    if let Some(intent) = &o.intent_id {
        item.insert("intentId".to_owned(), s(intent));
    }
    if !o.history.is_empty() {
        item.insert(
            "history".to_owned(),
            AttributeValue::L(o.history.iter().map(history_to_attr).collect()),
        );
    }
    if let (false, Some(at)) = (o.status.is_final(), o.check_after) {
        item.insert(
            schema::UNRESOLVED_KEY.to_owned(),
            s(schema::UNRESOLVED_MARK),
        );
        item.insert(schema::CHECK_AFTER.to_owned(), n(at.timestamp_millis()));
    }
    item
}

fn get_s<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &'static str,
) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(name)),
    }
}

fn opt_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &'static str,
) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| StoreError::Corrupt(name)),
        _ => Err(StoreError::Corrupt(name)),
    }
}

fn get_time(
    item: &HashMap<String, AttributeValue>,
    name: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(name))
}

fn answer_from_attr(v: &AttributeValue) -> Option<VexoraAnswer> {
    let m = v.as_m().ok()?;
    Some(VexoraAnswer {
        code: opt_s(m, "code"),
        status: opt_s(m, "status"),
        message: opt_s(m, "message"),
        plat_form_trade_no: opt_s(m, "platFormTradeNo"),
    })
}

fn anomaly_from_attr(v: &AttributeValue) -> Result<Anomaly, StoreError> {
    let m = v.as_m().map_err(|_| StoreError::Corrupt("anomalies"))?;
    let report = match m.get("report") {
        Some(AttributeValue::M(r)) => r
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(Anomaly {
        at: get_time(m, "at")?,
        source: get_s(m, "source")?.to_owned(),
        reason: get_s(m, "reason")?.to_owned(),
        report,
    })
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Order, StoreError> {
    let trade_no = TradeNo::parse(get_s(item, schema::PARTITION_KEY)?)
        .map_err(|_| StoreError::Corrupt(schema::PARTITION_KEY))?;
    let status = get_s(item, "status")?
        .parse()
        .map_err(|_| StoreError::Corrupt("status"))?;
    let amount = Amount::new(get_n(item, "amount")?).map_err(|_| StoreError::Corrupt("amount"))?;
    let anomalies = match item.get("anomalies") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(anomaly_from_attr)
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let history = match item.get("history") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(history_from_attr)
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let check_after = match item.get(schema::CHECK_AFTER) {
        Some(_) => Some(
            DateTime::from_timestamp_millis(get_n(item, schema::CHECK_AFTER)?)
                .ok_or(StoreError::Corrupt(schema::CHECK_AFTER))?,
        ),
        None => None,
    };
    Ok(Order {
        trade_no,
        status,
        version: get_n(item, "version")?,
        amount,
        bank_code: get_s(item, "bankCode")?.to_owned(),
        bank_number_masked: get_s(item, "bankNumberMasked")?.to_owned(),
        user_id: get_s(item, "userId")?.to_owned(),
        remark: opt_s(item, "remark"),
        fingerprint: get_s(item, "fingerprint")?.to_owned(),
        plat_form_trade_no: opt_s(item, "platFormTradeNo"),
        vexora: item.get("vexora").and_then(answer_from_attr),
        created_at: get_time(item, "createdAt")?,
        updated_at: get_time(item, "updatedAt")?,
        check_after,
        anomalies,
        anomaly_count: match item.get("anomalyCount") {
            Some(_) => get_n(item, "anomalyCount")?,
            None => 0,
        },
        history,
        check_attempts: match item.get("checkAttempts") {
            Some(_) => get_n(item, "checkAttempts")?,
            None => 0,
        },
        last_query_at: match item.get("lastQueryAt") {
            Some(_) => DateTime::from_timestamp_millis(get_n(item, "lastQueryAt")?),
            None => None,
        },
        manual_review: matches!(item.get("manualReview"), Some(AttributeValue::Bool(true))),
        last_write: opt_s(item, "lastWrite"),
        intent_id: opt_s(item, "intentId"),
    })
}

#[cfg(test)]
mod tests;
