//! The real adapter: every [`OrderStore`] call as one DynamoDB request, the conditional ones
//! built by [`super::plan`].

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::codec::{from_item, get_s, n, s, to_item};
use super::plan::{self, UpdatePlan};
use super::schema::{self, attr};
use super::{unavailable, unbuildable};
use payout_app::store::{
    Annotation, CheckClaim, Created, DueCursor, DuePage, OrderStore, StoreError, Transition,
    Transitioned,
};
use payout_domain::TradeNo;
use payout_domain::order::{Order, OrderStatus};

/// Orders in one DynamoDB table.
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

    /// Every order, one page at a time (a `Scan`, for the operator tool only: it reads the
    /// whole table; no function calls it). `each` sees every page's orders; an item that does
    /// not read as an order stops the scan with [`StoreError::Corrupt`].
    pub async fn scan(&self, mut each: impl FnMut(Vec<Order>)) -> Result<(), StoreError> {
        let mut start: Option<super::codec::Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            let orders = page
                .items
                .unwrap_or_default()
                .iter()
                // Batches' own records share the table ([`payout_app::batch`]).
                .filter(|item| !is_batch_record(item))
                .map(from_item)
                .collect::<Result<Vec<_>, _>>()?;
            each(orders);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    /// Sends `plan` as a conditional `UpdateItem`: the item as written, or the item that failed
    /// the condition (`None` when there is none).
    async fn update(
        &self,
        trade_no: &TradeNo,
        plan: UpdatePlan,
        return_new: bool,
    ) -> Result<Result<Option<Order>, Option<Order>>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression(plan.update_expression())
            .condition_expression(plan.condition_expression())
            .set_expression_attribute_names(Some(plan.names))
            .set_expression_attribute_values(Some(plan.values))
            .return_values(if return_new {
                ReturnValue::AllNew
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Ok(out.attributes.as_ref().map(from_item).transpose()?)),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(Err(failed.item.as_ref().map(from_item).transpose()?))
                }
                other => Err(unavailable(other)),
            },
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A conditional write's result as "done" or "condition failed".
fn conditional<T, E>(
    result: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
    aws_sdk_dynamodb::Error: From<SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

impl OrderStore for DynamoOrderStore {
    async fn create(&self, order: &Order) -> Result<Created, StoreError> {
        self.create_item(to_item(order)).await
    }

    async fn get(&self, trade_no: &TradeNo) -> Result<Option<Order>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn transition(
        &self,
        trade_no: &TradeNo,
        t: &Transition,
    ) -> Result<Transitioned, StoreError> {
        Ok(
            match self.update(trade_no, plan::transition(t)?, true).await? {
                Ok(moved) => {
                    Transitioned::Applied(moved.ok_or(StoreError::Corrupt(attr::TRADE_NO))?)
                }
                Err(None) => Transitioned::NotFound,
                // Our own write landed and its answer was lost: the SDK's retry found it.
                Err(Some(current)) if t.write_id.is_some() && current.last_write == t.write_id => {
                    Transitioned::Applied(current)
                }
                Err(Some(current)) if t.is_for_another_intent(&current) => Transitioned::NotFound,
                Err(Some(current)) => Transitioned::Rejected(current),
            },
        )
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
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            // An intent that already stands for an event (an anomaly recorded on it) is kept:
            // withdrawing it would let a later intent reuse that event's id.
            .condition_expression(
                "#status = :pending AND #intentId = :intent \
                 AND (attribute_not_exists(#anomalyCount) OR #anomalyCount = :zero)",
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#anomalyCount", attr::ANOMALY_COUNT)
            .expression_attribute_names("#intentId", attr::INTENT_ID)
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":intent", s(intent_id))
            .send()
            .await;
        conditional(result)
    }

    async fn claim_check(
        &self,
        trade_no: &TradeNo,
        claim: &CheckClaim,
    ) -> Result<bool, StoreError> {
        let &CheckClaim {
            seen,
            next,
            now,
            manual_review,
        } = claim;
        let mut expression = "SET #checkAfter = :next, #lastQueryAt = :now, #checkAttempts = if_not_exists(#checkAttempts, :zero) + :one".to_owned();
        if manual_review {
            expression.push_str(", #manualReview = :review");
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression(expression)
            .condition_expression("#checkAfter = :seen AND attribute_exists(#unresolved)")
            .expression_attribute_names("#checkAfter", attr::CHECK_AFTER)
            .expression_attribute_names("#unresolved", attr::UNRESOLVED)
            .expression_attribute_names("#lastQueryAt", attr::LAST_QUERY_AT)
            .expression_attribute_names("#checkAttempts", attr::CHECK_ATTEMPTS)
            .expression_attribute_values(":seen", n(seen.timestamp_millis()))
            .expression_attribute_values(":next", n(next.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        if manual_review {
            request = request
                .expression_attribute_names("#manualReview", attr::MANUAL_REVIEW)
                .expression_attribute_values(":review", AttributeValue::Bool(true));
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
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression("SET #lastQueryAt = :now")
            .condition_expression(
                "attribute_exists(#key) AND (attribute_not_exists(#lastQueryAt) OR #lastQueryAt <= :cutoff)",
            )
            .expression_attribute_names("#key", attr::TRADE_NO)
            .expression_attribute_names("#lastQueryAt", attr::LAST_QUERY_AT)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":cutoff", n((now - min_interval).timestamp_millis()))
            .send()
            .await;
        conditional(result)
    }

    async fn annotate(
        &self,
        trade_no: &TradeNo,
        annotation: &Annotation,
    ) -> Result<Option<Order>, StoreError> {
        // Refused with an item: this very write already landed; without one: no such order.
        Ok(
            match self
                .update(trade_no, plan::annotate(annotation), true)
                .await?
            {
                Ok(order) | Err(order) => order,
            },
        )
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
            .key_condition_expression("#unresolved = :mark AND #checkAfter <= :now")
            .expression_attribute_names("#unresolved", attr::UNRESOLVED)
            .expression_attribute_names("#checkAfter", attr::CHECK_AFTER)
            .expression_attribute_values(":mark", s(schema::UNRESOLVED_MARK))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .limit(limit)
            .set_exclusive_start_key(start.map(super::cursor_key))
            .send()
            .await
            .map_err(unavailable)?;
        let trade_nos = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                get_s(item, attr::TRADE_NO).and_then(|t| {
                    TradeNo::parse(t).map_err(|_| StoreError::Corrupt(attr::TRADE_NO))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DuePage {
            trade_nos,
            next: out
                .last_evaluated_key
                .as_ref()
                .map(super::cursor_of)
                .transpose()?,
        })
    }
}

impl DynamoOrderStore {
    /// Stores an order's item unless its `tradeNo` exists; the existing order otherwise.
    async fn create_item(&self, item: super::codec::Item) -> Result<Created, StoreError> {
        match self.put_new(item).await? {
            None => Ok(Created::Created),
            Some(existing) => Ok(Created::AlreadyExists(Box::new(from_item(&existing)?))),
        }
    }

    /// Puts `item` unless its key exists; the existing item otherwise.
    async fn put_new(
        &self,
        item: super::codec::Item,
    ) -> Result<Option<super::codec::Item>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", attr::TRADE_NO)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => Ok(Some(
                    failed.item.ok_or(StoreError::Corrupt(attr::TRADE_NO))?,
                )),
                other => Err(unavailable(other)),
            },
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// Whether an item is a batch's record rather than an order.
pub fn is_batch_record(item: &super::codec::Item) -> bool {
    get_s(item, attr::TRADE_NO).is_ok_and(|k| k.starts_with(payout_app::batch::RECORD_PREFIX))
}

fn batch_to_item(record: &payout_app::batch::BatchRecord) -> super::codec::Item {
    [
        (attr::TRADE_NO, s(&record.batch_id.record_key())),
        (attr::BATCH_ID, s(record.batch_id.as_str())),
        (attr::FINGERPRINT, s(&record.fingerprint)),
        (
            attr::ITEMS,
            AttributeValue::L(record.trade_nos.iter().map(|t| s(t.as_str())).collect()),
        ),
        (
            attr::CREATED_AT,
            s(&super::codec::timestamp(record.created_at)),
        ),
        (attr::COMMITTED, AttributeValue::Bool(record.committed)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn batch_from_item(
    item: &super::codec::Item,
) -> Result<payout_app::batch::BatchRecord, StoreError> {
    let batch_id = payout_app::batch::BatchId::parse(get_s(item, attr::BATCH_ID)?)
        .map_err(|_| StoreError::Corrupt(attr::BATCH_ID))?;
    let trade_nos = match item.get(attr::ITEMS) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| {
                v.as_s()
                    .ok()
                    .and_then(|t| TradeNo::parse(t).ok())
                    .ok_or(StoreError::Corrupt(attr::ITEMS))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(StoreError::Corrupt(attr::ITEMS)),
    };
    let created_at = DateTime::parse_from_rfc3339(get_s(item, attr::CREATED_AT)?)
        .map_err(|_| StoreError::Corrupt(attr::CREATED_AT))?
        .with_timezone(&Utc);
    Ok(payout_app::batch::BatchRecord {
        batch_id,
        fingerprint: get_s(item, attr::FINGERPRINT)?.to_owned(),
        trade_nos,
        created_at,
        committed: matches!(item.get(attr::COMMITTED), Some(AttributeValue::Bool(true))),
    })
}

impl payout_app::batch::BatchStore for DynamoOrderStore {
    async fn create_queued(&self, order: &Order, payload: &str) -> Result<Created, StoreError> {
        let mut item = to_item(order);
        item.insert(attr::QUEUED_PAYLOAD.to_owned(), s(payload));
        self.create_item(item).await
    }

    async fn claim_queued(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        now: DateTime<Utc>,
        check_after: DateTime<Utc>,
    ) -> Result<Option<(Order, String)>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression(
                // Sent now: a review flag set on the queued item (and any operator's reading
                // of it) no longer holds.
                "SET #intentId = :attempt, #lastWrite = :attempt, #sentAt = :now, #checkAfter = :checkAfter REMOVE #manualReview",
            )
            .condition_expression(
                "#status = :pending AND attribute_exists(#payload) AND attribute_not_exists(#intentId)",
            )
            .expression_attribute_names("#intentId", attr::INTENT_ID)
            .expression_attribute_names("#lastWrite", attr::LAST_WRITE)
            .expression_attribute_names("#sentAt", attr::SENT_AT)
            .expression_attribute_names("#checkAfter", attr::CHECK_AFTER)
            .expression_attribute_names("#payload", attr::QUEUED_PAYLOAD)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#manualReview", attr::MANUAL_REVIEW)
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":now", s(&super::codec::timestamp(now)))
            .expression_attribute_values(":checkAfter", n(check_after.timestamp_millis()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    // Ours if this very attempt took it (a retried write whose answer was lost).
                    let Some(item) = failed.item else {
                        return Ok(None);
                    };
                    let ours = get_s(&item, attr::INTENT_ID).is_ok_and(|i| i == attempt)
                        && get_s(&item, attr::STATUS)
                            .is_ok_and(|st| st == OrderStatus::Pending.as_str())
                        && item.contains_key(attr::QUEUED_PAYLOAD);
                    if !ours {
                        return Ok(None);
                    }
                    item
                }
                other => return Err(unavailable(other)),
            },
            Err(e) => return Err(unavailable(e)),
        };
        let payload = get_s(&item, attr::QUEUED_PAYLOAD)?.to_owned();
        Ok(Some((from_item(&item)?, payload)))
    }

    async fn requeue(
        &self,
        trade_no: &TradeNo,
        attempt: &str,
        check_after: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression("SET #checkAfter = :checkAfter REMOVE #intentId, #sentAt")
            .condition_expression(
                "#status = :pending AND #intentId = :attempt AND attribute_exists(#payload)",
            )
            .expression_attribute_names("#payload", attr::QUEUED_PAYLOAD)
            .expression_attribute_names("#checkAfter", attr::CHECK_AFTER)
            .expression_attribute_names("#sentAt", attr::SENT_AT)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#intentId", attr::INTENT_ID)
            .expression_attribute_values(":checkAfter", n(check_after.timestamp_millis()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":attempt", s(attempt))
            .send()
            .await;
        conditional(result)
    }

    async fn adopt_queued(
        &self,
        trade_no: &TradeNo,
        batch_id: &payout_app::batch::BatchId,
        now: DateTime<Utc>,
    ) -> Result<payout_app::batch::Adopted, StoreError> {
        use payout_app::batch::Adopted;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .update_expression("SET #updatedAt = :now ADD #batchIds :batch")
            .condition_expression(
                "#status = :pending AND attribute_exists(#payload) AND attribute_not_exists(#intentId)",
            )
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_names("#batchIds", attr::BATCH_IDS)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#payload", attr::QUEUED_PAYLOAD)
            .expression_attribute_names("#intentId", attr::INTENT_ID)
            .expression_attribute_values(":now", s(&super::codec::timestamp(now)))
            .expression_attribute_values(":batch", AttributeValue::Ss(vec![batch_id.as_str().to_owned()]))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Adopted::Listed(Box::new(from_item(
                &out.attributes.unwrap_or_default(),
            )?))),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => Ok(match failed.item {
                    Some(item) => Adopted::Taken(Box::new(from_item(&item)?)),
                    None => Adopted::Gone,
                }),
                other => Err(unavailable(other)),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn withdraw_queued(
        &self,
        trade_no: &TradeNo,
        listed_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(trade_no.as_str()))
            .condition_expression(
                "#status = :pending AND attribute_exists(#payload) \
                 AND attribute_not_exists(#intentId) AND #updatedAt = :listed \
                 AND (attribute_not_exists(#anomalyCount) OR #anomalyCount = :zero)",
            )
            .expression_attribute_names("#anomalyCount", attr::ANOMALY_COUNT)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#payload", attr::QUEUED_PAYLOAD)
            .expression_attribute_names("#intentId", attr::INTENT_ID)
            .expression_attribute_names("#updatedAt", attr::UPDATED_AT)
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":listed", s(&super::codec::timestamp(listed_at)))
            .send()
            .await;
        conditional(result)
    }

    async fn put_batch(
        &self,
        record: &payout_app::batch::BatchRecord,
    ) -> Result<Option<payout_app::batch::BatchRecord>, StoreError> {
        self.put_new(batch_to_item(record))
            .await?
            .map(|existing| batch_from_item(&existing))
            .transpose()
    }

    async fn commit_batch(&self, batch_id: &payout_app::batch::BatchId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(&batch_id.record_key()))
            .update_expression("SET #committed = :yes")
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#committed", attr::COMMITTED)
            .expression_attribute_names("#key", attr::TRADE_NO)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_batch(
        &self,
        batch_id: &payout_app::batch::BatchId,
    ) -> Result<Option<payout_app::batch::BatchRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::TRADE_NO, s(&batch_id.record_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(batch_from_item).transpose()
    }

    async fn get_many(&self, trade_nos: &[TradeNo]) -> Result<Vec<Order>, StoreError> {
        let mut orders = Vec::with_capacity(trade_nos.len());
        for chunk in trade_nos.chunks(100) {
            let mut keys: Vec<super::codec::Item> = chunk
                .iter()
                .map(|t| {
                    [(attr::TRADE_NO.to_owned(), s(t.as_str()))]
                        .into_iter()
                        .collect()
                })
                .collect();
            // Unprocessed keys (throttling) are asked again until none are left.
            while !keys.is_empty() {
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(unbuildable)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    orders.push(from_item(&item)?);
                }
                keys = out
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(orders)
    }
}
