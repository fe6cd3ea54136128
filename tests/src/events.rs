//! Status events, locally: the payouts table's stream (moto's DynamoDB Streams) feeds the
//! `publish-payout-events` function as Lambda's event source mapping would, and what it
//! publishes to the EventBridge bus (moto's) reaches an SQS queue through a rule, where the
//! collector reads it. Used by the e2e tests, the reliability run and `make dev`.
//!
//! The pump behaves like Lambda's DynamoDB event source mapping: records in order, batches of up
//! to `batch_size`, the function's `batchItemFailures` honoured (delivery goes on from the first
//! failed record, again), an invocation that fails delivered again whole.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;

use crate::lambda::Function;

/// The event pattern every payout event matches.
pub fn pattern() -> String {
    serde_json::json!({ "source": [payout_domain::events::SOURCE] }).to_string()
}

/// Creates the bus, an SQS queue and a rule sending every payout event to the queue (all
/// idempotent). Answers the queue's URL.
pub async fn setup(sdk: &SdkConfig, bus: &str, queue: &str) -> Result<String, String> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    if events.describe_event_bus().name(bus).send().await.is_err() {
        events
            .create_event_bus()
            .name(bus)
            .send()
            .await
            .map_err(|e| format!("creating bus {bus}: {e:?}"))?;
    }
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| format!("creating queue {queue}: {e:?}"))?
        .queue_url
        .unwrap_or_default();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("reading queue {queue}: {e:?}"))?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap_or_default();
    let rule = format!("{bus}-to-{queue}");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern())
        .send()
        .await
        .map_err(|e| format!("creating rule {rule}: {e:?}"))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("targeting {queue}: {e:?}"))?;
    Ok(queue_url)
}

/// Something that runs the publisher on a batch: our runtime-API harness, or `cargo lambda
/// watch` over HTTP (`make dev`).
pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, event: &Value) -> impl Future<Output = Result<Value, String>> + Send;
}

impl Invoke for Function {
    async fn invoke(&self, event: &Value) -> Result<Value, String> {
        Function::invoke(self, event).await
    }
}

/// `cargo lambda watch`'s invoke endpoint for one function.
#[derive(Debug, Clone)]
pub struct HttpInvoke {
    pub url: String,
    pub http: reqwest::Client,
}

impl Invoke for HttpInvoke {
    async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let answer = self
            .http
            .post(&self.url)
            .json(event)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let failed = answer
            .headers()
            .contains_key("lambda-runtime-function-error-type")
            || answer.headers().contains_key("x-amz-function-error");
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        if failed || !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body)
    }
}

/// What the pump did.
#[derive(Debug, Default)]
pub struct PumpStats {
    /// Records read from the stream.
    pub records: AtomicU64,
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole (delivered again).
    pub failed_invocations: AtomicU64,
    /// Records handed back by `batchItemFailures` (delivered again).
    pub handed_back: AtomicU64,
}

/// Feeds a table's stream to the publisher until dropped.
#[derive(Debug)]
pub struct StreamPump {
    pub stats: Arc<PumpStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StreamPump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamPump {
    pub async fn start<I: Invoke>(
        sdk: &SdkConfig,
        table: &str,
        invoker: Arc<I>,
        batch_size: usize,
    ) -> Result<Self, String> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let stream_arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("describing {table}: {e:?}"))?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or(format!("{table} has no stream"))?;
        let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
        let stats = Arc::new(PumpStats::default());
        let task = tokio::spawn(pump(
            streams,
            stream_arn,
            invoker,
            batch_size,
            stats.clone(),
        ));
        Ok(Self { stats, task })
    }
}

async fn shard_iterator(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    after: Option<&str>,
) -> Option<String> {
    let shard = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .ok()?
        .stream_description?
        .shards?
        .into_iter()
        .next()?
        .shard_id?;
    let request = streams
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard);
    let request = match after {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    request.send().await.ok()?.shard_iterator
}

/// A stream record as Lambda hands it to a function.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record) -> Value {
    let image = |image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| {
        image.map(|item| {
            Value::Object(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute(v)))
                    .collect(),
            )
        })
    };
    let change = record.dynamodb.as_ref();
    let mut dynamodb = serde_json::json!({
        "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or(0),
        "ApproximateCreationDateTime": change
            .and_then(|c| c.approximate_creation_date_time)
            .map_or(0.0, |t| t.as_secs_f64()),
    });
    if let Some(new) = image(change.and_then(|c| c.new_image.as_ref())) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image(change.and_then(|c| c.old_image.as_ref())) {
        dynamodb["OldImage"] = old;
    }
    serde_json::json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "ap-northeast-1",
        "dynamodb": dynamodb,
    })
}

/// DynamoDB's JSON for one attribute value.
fn attribute(v: &aws_sdk_dynamodbstreams::types::AttributeValue) -> Value {
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;
    match v {
        A::S(s) => serde_json::json!({ "S": s }),
        A::N(n) => serde_json::json!({ "N": n }),
        A::Bool(b) => serde_json::json!({ "BOOL": b }),
        A::Null(b) => serde_json::json!({ "NULL": b }),
        A::L(l) => serde_json::json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        A::M(m) => serde_json::json!({
            "M": m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<serde_json::Map<_, _>>()
        }),
        A::Ss(s) => serde_json::json!({ "SS": s }),
        A::Ns(n) => serde_json::json!({ "NS": n }),
        other => serde_json::json!({ "S": format!("{other:?}") }),
    }
}

async fn pump<I: Invoke>(
    streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    invoker: Arc<I>,
    batch_size: usize,
    stats: Arc<PumpStats>,
) {
    // Every request to the emulator waits for its one lock: poll gently when there is nothing.
    let idle = Duration::from_millis(250);
    // Records read but not yet delivered successfully, oldest first.
    let mut pending: Vec<Value> = Vec::new();
    // The last record read from the stream, to resume after an emulator restart.
    let mut last_read: Option<String> = None;
    let mut iterator: Option<String> = None;
    loop {
        if pending.len() < batch_size {
            if iterator.is_none() {
                iterator = shard_iterator(&streams, &stream_arn, last_read.as_deref()).await;
            }
            if let Some(current) = iterator.take() {
                match streams
                    .get_records()
                    .shard_iterator(&current)
                    .limit(i32::try_from(batch_size).unwrap_or(100))
                    .send()
                    .await
                {
                    Ok(page) => {
                        let records = page.records.unwrap_or_default();
                        stats
                            .records
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        if let Some(last) = records.last() {
                            last_read = last
                                .dynamodb
                                .as_ref()
                                .and_then(|c| c.sequence_number.clone());
                        }
                        pending.extend(records.iter().map(lambda_record));
                        iterator = page.next_shard_iterator;
                    }
                    // Expired, or the emulator restarted: find the place again.
                    Err(_) => iterator = None,
                }
            }
        }
        if pending.is_empty() {
            tokio::time::sleep(idle).await;
            continue;
        }
        let size = pending.len().min(batch_size);
        let batch = serde_json::json!({ "Records": pending[..size] });
        stats.invocations.fetch_add(1, Ordering::Relaxed);
        match invoker.invoke(&batch).await {
            Ok(answer) => {
                let failed: Vec<&str> = answer["batchItemFailures"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|i| i["itemIdentifier"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                // Lambda goes on from the lowest failed sequence number.
                let first_failed = pending[..size].iter().position(|r| {
                    r["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .is_some_and(|s| failed.contains(&s))
                });
                match first_failed {
                    None => {
                        pending.drain(..size);
                    }
                    Some(first) => {
                        stats
                            .handed_back
                            .fetch_add((size - first) as u64, Ordering::Relaxed);
                        pending.drain(..first);
                        tokio::time::sleep(idle).await;
                    }
                }
            }
            Err(_) => {
                stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(idle).await;
            }
        }
    }
}

/// One event as a consumer receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub detail_type: String,
    pub source: String,
    pub detail: Value,
}

impl Received {
    pub fn event_id(&self) -> &str {
        self.detail["eventId"].as_str().unwrap_or_default()
    }

    pub fn trade_no(&self) -> &str {
        self.detail["tradeNo"].as_str().unwrap_or_default()
    }

    pub fn version(&self) -> u64 {
        self.detail["version"].as_u64().unwrap_or_default()
    }

    pub fn status(&self) -> &str {
        self.detail["status"].as_str().unwrap_or_default()
    }

    /// One line for a person: what `make dev` prints.
    pub fn line(&self) -> String {
        format!("{} {}", self.detail_type, self.detail)
    }
}

/// Reads the events the rule sends to the queue, until dropped.
#[derive(Debug)]
pub struct Collector {
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Collects from `queue_url`; with `print`, writes each event's line to stdout as it comes.
    pub fn start(sdk: &SdkConfig, queue_url: String, print: bool) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(page) = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let messages = page.messages.unwrap_or_default();
                if messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                for message in messages {
                    let body: Value = message
                        .body
                        .as_deref()
                        .and_then(|b| serde_json::from_str(b).ok())
                        .unwrap_or_default();
                    let event = Received {
                        detail_type: body["detail-type"].as_str().unwrap_or_default().into(),
                        source: body["source"].as_str().unwrap_or_default().into(),
                        detail: body["detail"].clone(),
                    };
                    if print {
                        #[allow(clippy::print_stdout)]
                        {
                            println!("event: {}", event.line());
                        }
                    }
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(event);
                    if let Some(handle) = message.receipt_handle {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
            }
        });
        Self { received, task }
    }

    /// Everything received so far, in arrival order (duplicates included).
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events received for one order, deduplicated by `eventId`, in version order.
    pub fn for_order(&self, trade_no: &str) -> Vec<Received> {
        let mut by_id: BTreeMap<(u64, String), Received> = BTreeMap::new();
        for event in self.received() {
            if event.trade_no() == trade_no {
                by_id
                    .entry((event.version(), event.event_id().to_owned()))
                    .or_insert(event);
            }
        }
        by_id.into_values().collect()
    }
}
