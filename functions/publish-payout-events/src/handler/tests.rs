//! The publisher against a scripted sink: what a throttled, failing or slow EventBridge and an
//! unreadable record do to a batch. (The real adapter runs against moto in the e2e tests.)

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{TimeZone, Utc};
use payout_app::events::{EventSink, Rejected, SinkError};
use payout_aws::store::order_to_image;
use payout_domain::TradeNo;
use payout_domain::events::PayoutEvent;
use payout_domain::order::{Order, OrderStatus};
use payout_testkit::RecordingMetrics;

use super::*;

/// What the sink does with each call, in order; once the script runs out it publishes all.
enum Step {
    /// Refuses the entries at these positions of the call.
    Refuse(Vec<usize>),
    Fail,
}

#[derive(Default)]
struct ScriptedSink {
    script: Mutex<VecDeque<Step>>,
    /// Every call's event ids, and which were published.
    calls: Mutex<Vec<Vec<String>>>,
    published: Mutex<Vec<String>>,
}

impl ScriptedSink {
    fn with(steps: Vec<Step>) -> Self {
        Self {
            script: Mutex::new(steps.into()),
            ..Self::default()
        }
    }

    fn published(&self) -> Vec<String> {
        self.published.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl EventSink for ScriptedSink {
    async fn put(&self, events: &[&PayoutEvent]) -> Result<Vec<Option<Rejected>>, SinkError> {
        assert!(
            events.len() <= MAX_ENTRIES,
            "{} entries in one call",
            events.len()
        );
        let ids: Vec<String> = events.iter().map(|e| e.detail.event_id.clone()).collect();
        self.calls.lock().unwrap().push(ids.clone());
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::Fail) => Err(SinkError("throttled".into())),
            Some(Step::Refuse(positions)) => {
                let mut answers = Vec::new();
                for (k, id) in ids.into_iter().enumerate() {
                    if positions.contains(&k) {
                        answers.push(Some(Rejected {
                            code: "ThrottlingException".into(),
                        }));
                    } else {
                        self.published.lock().unwrap().push(id);
                        answers.push(None);
                    }
                }
                Ok(answers)
            }
            None => {
                self.published.lock().unwrap().extend(ids);
                Ok(vec![None; events.len()])
            }
        }
    }
}

fn publisher(sink: ScriptedSink) -> Publisher<ScriptedSink, RecordingMetrics> {
    Publisher {
        backoff: Duration::from_millis(1),
        ..Publisher::new(sink, RecordingMetrics::default())
    }
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// A stream record moving `trade_no` from `from` to `to`, counted as event `version`.
fn moved(
    trade_no: &str,
    from: OrderStatus,
    to: OrderStatus,
    version: u64,
    seq: u64,
) -> serde_json::Value {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap();
    let mut old = Order::pending(
        TradeNo::parse(trade_no).unwrap(),
        &payout_testkit::payout(trade_no, 1500),
        t0,
        t0,
    );
    old.status = from;
    // version - 1 events before this move: the order was at `version` (1 while PENDING).
    old.version = version;
    let mut new = old.clone();
    new.status = to;
    new.version += 1;
    serde_json::json!({
        "eventID": format!("e{seq}"),
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "SequenceNumber": seq.to_string(),
            "OldImage": order_to_image(&old),
            "NewImage": order_to_image(&new),
        }
    })
}

fn batch(records: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({ "Records": records })
}

fn failures(answer: &DynamoDbEventResponse) -> Vec<&str> {
    answer
        .batch_item_failures
        .iter()
        .map(|f| {
            f.item_identifier
                .as_deref()
                .expect("every failure names its record")
        })
        .collect()
}

/// `n` records, each one event: `T{i}#1`.
fn records(n: u64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            moved(
                &format!("T{i}"),
                OrderStatus::Pending,
                OrderStatus::Processing,
                1,
                100 + i,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_is_published_in_order_at_most_ten_per_call() {
    let p = publisher(ScriptedSink::default());

    let answer = p.handle(&batch(records(23)), later()).await.unwrap();

    assert!(answer.batch_item_failures.is_empty());
    let calls = p.sink.calls();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
    let expected: Vec<String> = (0..23).map(|i| format!("T{i}#1")).collect();
    assert_eq!(p.sink.published(), expected);
    assert_eq!(p.metrics.total(metrics::PAYOUT_EVENTS_PUBLISHED), 23);
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        serde_json::json!({"batchItemFailures": []})
    );
}

#[tokio::test]
async fn a_refused_entry_is_sent_again_alone_and_nothing_is_handed_back() {
    let p = publisher(ScriptedSink::with(vec![Step::Refuse(vec![3, 7])]));

    let answer = p.handle(&batch(records(10)), later()).await.unwrap();

    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        p.sink.calls()[1],
        ["T3#1", "T7#1"],
        "only the refused ones again"
    );
    let mut published = p.sink.published();
    published.sort();
    assert_eq!(published.len(), 10);
    published.dedup();
    assert_eq!(published.len(), 10, "each once");
    assert_eq!(p.metrics.total(metrics::PAYOUT_EVENTS_REFUSED), 2);
}

#[tokio::test]
async fn an_entry_refused_every_time_hands_back_its_record_and_all_after_it() {
    // T12 is the third entry of the second call, then the only one of its retries.
    let p = publisher(ScriptedSink::with(vec![
        Step::Refuse(vec![]),
        Step::Refuse(vec![2]),
        Step::Refuse(vec![0]),
        Step::Refuse(vec![0]),
    ]));

    let answer = p.handle(&batch(records(25)), later()).await.unwrap();

    // Records 12..25 are handed back.
    let expected: Vec<String> = (112..125).map(|s| s.to_string()).collect();
    assert_eq!(failures(&answer), expected);
    assert!(!p.sink.published().contains(&"T12#1".to_owned()));
    assert!(
        p.sink
            .calls()
            .iter()
            .all(|c| !c.contains(&"T20#1".to_owned())),
        "nothing after a failed chunk is sent"
    );
    assert_eq!(p.metrics.total(metrics::PAYOUT_EVENT_RECORDS_RETRIED), 13);
}

#[tokio::test]
async fn a_put_events_call_that_fails_is_tried_again_then_handed_back() {
    let p = publisher(ScriptedSink::with(vec![Step::Fail, Step::Fail]));
    let answer = p.handle(&batch(records(3)), later()).await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "third try publishes");
    assert_eq!(p.sink.calls().len(), 3);

    let p = publisher(ScriptedSink::with(vec![Step::Fail, Step::Fail, Step::Fail]));
    let answer = p.handle(&batch(records(3)), later()).await.unwrap();
    assert_eq!(failures(&answer), ["100", "101", "102"]);
    assert!(p.sink.published().is_empty());
}

#[tokio::test]
async fn no_call_starts_when_the_deadline_is_too_close_and_the_batch_is_handed_back() {
    let p = publisher(ScriptedSink::default());
    let answer = p
        .handle(
            &batch(records(2)),
            Instant::now() + Duration::from_millis(10),
        )
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["100", "101"]);
    assert!(p.sink.calls().is_empty());
}

#[tokio::test]
async fn an_unreadable_record_hands_back_itself_and_what_follows_after_publishing_what_precedes() {
    let mut rs = records(4);
    rs[2] = serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "102",
        "NewImage": {"tradeNo": {"S": "T2"}}}});
    let p = publisher(ScriptedSink::default());

    let answer = p.handle(&batch(rs), later()).await.unwrap();

    assert_eq!(failures(&answer), ["102", "103"]);
    assert_eq!(p.sink.published(), ["T0#1", "T1#1"]);
}

#[tokio::test]
async fn a_record_without_a_sequence_number_fails_the_whole_batch_not_silently() {
    let mut rs = records(2);
    rs[1] = serde_json::json!({"eventName": "MODIFY", "dynamodb": {"NewImage": 7}});
    let p = publisher(ScriptedSink::default());
    assert!(matches!(
        p.handle(&batch(rs), later()).await,
        Err(PublishError::Unidentifiable(1))
    ));
    assert!(matches!(
        p.handle(&serde_json::json!({"detail": {}}), later()).await,
        Err(PublishError::NotAStreamBatch)
    ));
}

#[tokio::test]
async fn a_redelivered_batch_publishes_the_same_event_ids() {
    let p = publisher(ScriptedSink::default());
    let rs = vec![
        moved("R1", OrderStatus::Pending, OrderStatus::Processing, 1, 1),
        moved("R1", OrderStatus::Processing, OrderStatus::Succeeded, 2, 2),
    ];
    p.handle(&batch(rs.clone()), later()).await.unwrap();
    p.handle(&batch(rs), later()).await.unwrap();
    assert_eq!(p.sink.published(), ["R1#1", "R1#2", "R1#1", "R1#2"]);
}
