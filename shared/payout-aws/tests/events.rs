//! The event rule over real sequences of writes (the one applier, the in-memory store that the
//! store's behaviour suite holds to DynamoDB), and over stream records in DynamoDB's JSON.
// A test binary: a failed set-up step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};

use payout_app::apply::{Applier, Report, Schedule};
use payout_app::store::{Annotation, OrderStore};
use payout_aws::events::stream::StreamRecord;
use payout_aws::store::order_to_image;
use payout_domain::TradeNo;
use payout_domain::events::*;
use payout_domain::order::{Order, OrderStatus, ReportSource};
use payout_testkit::{InMemoryStore, RecordingMetrics};
use vexora::{ReportedAmount, VexoraStatus};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

fn webhook(trade_no: &str, status: &str, yen: u64) -> Report {
    Report {
        source: ReportSource::Webhook,
        outcome: VexoraStatus::parse(status).outcome(),
        status: Some(status.to_owned()),
        amount: ReportedAmount::Whole(yen),
        amount_text: Some(yen.to_string()),
        plat_form_trade_no: Some(format!("PF-{trade_no}")),
        answer: None,
        details: [("tradeNo".to_owned(), trade_no.to_owned())]
            .into_iter()
            .collect(),
        intent: None,
    }
}

/// Applies reports one by one and collects the events of every write, as the stream would.
struct Recorder {
    store: InMemoryStore,
    metrics: RecordingMetrics,
    events: Vec<PayoutEvent>,
    last: Option<Order>,
}

impl Recorder {
    fn new(trade_no: &str) -> Self {
        let store = InMemoryStore::new();
        let order = Order::pending(
            tn(trade_no),
            &payout_testkit::payout(trade_no, 1500),
            t0(),
            t0() + chrono::Duration::seconds(28),
        );
        let events = for_change(None, Some(&order));
        store.insert(order.clone());
        Self {
            store,
            metrics: RecordingMetrics::default(),
            events,
            last: Some(order),
        }
    }

    async fn apply(&mut self, report: &Report) {
        let trade_no = self.last.as_ref().unwrap().trade_no.clone();
        Applier {
            store: &self.store,
            metrics: &self.metrics,
            schedule: Schedule {
                processing_age: chrono::Duration::minutes(15),
            },
        }
        .apply(&trade_no, report, t0())
        .await
        .unwrap();
        self.observe();
    }

    fn observe(&mut self) {
        let trade_no = self.last.as_ref().unwrap().trade_no.clone();
        let now = self.store.snapshot(&trade_no);
        if now != self.last {
            self.events
                .extend(for_change(self.last.as_ref(), now.as_ref()));
        }
        self.last = now;
    }

    fn seen(&self) -> Vec<(u64, DetailType, OrderStatus, Option<&'static str>)> {
        self.events
            .iter()
            .map(|e| {
                (
                    e.detail.version,
                    e.detail_type,
                    e.detail.status,
                    e.detail.reason,
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn every_move_is_one_event_numbered_from_one_and_a_pending_intent_is_none() {
    let mut r = Recorder::new("E1");
    assert!(r.events.is_empty(), "a PENDING intent is not an event");

    r.apply(&webhook("E1", "0015", 1500)).await;
    r.apply(&webhook("E1", "0015", 1500)).await; // duplicate: kept in history, no event
    r.apply(&webhook("E1", "0000", 1500)).await;
    r.apply(&webhook("E1", "0015", 1500)).await; // stale: no event

    assert_eq!(
        r.seen(),
        vec![
            (1, DetailType::StatusChanged, OrderStatus::Processing, None),
            (2, DetailType::StatusChanged, OrderStatus::Succeeded, None),
        ]
    );
    let first = &r.events[0].detail;
    assert_eq!(first.event_id, "E1#1");
    assert_eq!(first.previous_status, Some(OrderStatus::Pending));
    assert_eq!(first.amount, 1500);
    assert_eq!(
        r.events[1].detail.previous_status,
        Some(OrderStatus::Processing)
    );
    assert_eq!(r.last.as_ref().unwrap().event_count(), 2);
}

#[tokio::test]
async fn an_anomaly_is_its_own_event_and_a_move_with_one_is_two() {
    let mut r = Recorder::new("E2");
    // An undocumented status moves a PENDING order to UNCONFIRMED and is flagged, in one write.
    // (Not `0001`: a partial payment counts as said paid, and then nothing fails the order.)
    r.apply(&webhook("E2", "0042", 1500)).await;
    r.apply(&webhook("E2", "00029", 1500)).await;
    // Success after failure: kept as an anomaly, nothing moves.
    r.apply(&webhook("E2", "0000", 1500)).await;
    // Another amount: an anomaly on a final order.
    r.apply(&webhook("E2", "00029", 1600)).await;

    assert_eq!(
        r.seen(),
        vec![
            (1, DetailType::StatusChanged, OrderStatus::Unconfirmed, None),
            (
                2,
                DetailType::AnomalyRecorded,
                OrderStatus::Unconfirmed,
                Some("undocumented_status")
            ),
            (3, DetailType::StatusChanged, OrderStatus::Failed, None),
            (
                4,
                DetailType::AnomalyRecorded,
                OrderStatus::Failed,
                Some("contradicts_final_state")
            ),
            (
                5,
                DetailType::AnomalyRecorded,
                OrderStatus::Failed,
                Some("amount_mismatch")
            ),
        ]
    );
    let ids: Vec<_> = r
        .events
        .iter()
        .map(|e| e.detail.event_id.as_str())
        .collect();
    assert_eq!(ids, ["E2#1", "E2#2", "E2#3", "E2#4", "E2#5"]);
}

#[tokio::test]
async fn an_anomaly_past_the_kept_list_still_has_its_event_and_reason() {
    let mut r = Recorder::new("E3");
    r.apply(&webhook("E3", "0000", 1500)).await;
    let kept = payout_aws::store::schema::MAX_ANOMALIES_KEPT;
    for i in 0..kept + 2 {
        // Each a new report (Vexora's timestamp differs): the same one again is not kept twice.
        let mut report = webhook("E3", "00029", 1500);
        report.details.insert("timestamp".into(), i.to_string());
        r.apply(&report).await;
    }
    let again = r.last.clone().unwrap().anomaly_count;
    let mut same = webhook("E3", "00029", 1500);
    same.details
        .insert("timestamp".into(), (kept + 1).to_string());
    r.apply(&same).await;
    assert_eq!(
        r.last.clone().unwrap().anomaly_count,
        again,
        "a replay keeps nothing"
    );
    let order = r.last.clone().unwrap();
    assert_eq!(order.anomalies.len(), kept);
    assert_eq!(order.anomaly_count, kept as u64 + 2);
    let last = r.events.last().unwrap();
    assert_eq!(last.detail.version, kept as u64 + 3);
    assert_eq!(last.detail.reason, Some("contradicts_final_state"));
    let versions: Vec<u64> = r.events.iter().map(|e| e.detail.version).collect();
    assert_eq!(
        versions,
        (1..=kept as u64 + 3).collect::<Vec<_>>(),
        "no gaps"
    );
}

#[tokio::test]
async fn a_write_that_only_annotates_and_a_withdrawn_intent_are_no_events() {
    let mut r = Recorder::new("E4");
    let order = r.last.clone().unwrap();
    assert!(
        r.store
            .annotate(
                &order.trade_no,
                &Annotation::new(&order, None, None, "w-1".into())
            )
            .await
            .unwrap()
            .is_some()
    );
    r.observe();
    assert!(r.events.is_empty());
    assert!(for_change(Some(&order), None).is_empty(), "REMOVE");
}

#[test]
fn the_detail_carries_no_personal_data_and_exactly_the_contracts_fields() {
    let mut order = Order::pending(tn("E5"), &payout_testkit::payout("E5", 2500), t0(), t0());
    let old = order.clone();
    order.status = OrderStatus::Processing;
    order.version = 2;
    order.plat_form_trade_no = Some("PF-9".into());
    let events = for_change(Some(&old), Some(&order));
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail_json()).unwrap();
    let mut names: Vec<&str> = detail
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "amount",
            "currency",
            "eventId",
            "occurredAt",
            "platFormTradeNo",
            "previousStatus",
            "status",
            "tradeNo",
            "version"
        ]
    );
    assert_eq!(detail["amount"], 2500);
    assert_eq!(detail["status"], "PROCESSING");
    assert_eq!(detail["previousStatus"], "PENDING");
    assert_eq!(detail["occurredAt"], "2026-11-25T03:00:00.000Z");
    let text = detail.to_string();
    // payout_testkit::payout_json's payee.
    for personal in [
        "1234567",
        "09012345678",
        "taro@example.jp",
        "user-42",
        "タロウ",
        "ヤマダ",
        "test payout",
    ] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
}

fn record(name: &str, old: Option<&Order>, new: Option<&Order>, seq: u64) -> serde_json::Value {
    let mut change = serde_json::json!({
        "SequenceNumber": seq.to_string(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_764_039_600.0,
        "SizeBytes": 1,
    });
    if let Some(old) = old {
        change["OldImage"] = order_to_image(old);
    }
    if let Some(new) = new {
        change["NewImage"] = order_to_image(new);
        change["Keys"] = serde_json::json!({"tradeNo": {"S": new.trade_no.as_str()}});
    }
    serde_json::json!({
        "eventID": "1", "eventName": name, "eventSource": "aws:dynamodb",
        "awsRegion": "ap-northeast-1", "dynamodb": change,
    })
}

#[tokio::test]
async fn a_stream_record_in_dynamodbs_json_yields_the_same_events_every_delivery() {
    let mut r = Recorder::new("E6");
    let before = r.last.clone().unwrap();
    r.apply(&webhook("E6", "0000", 1500)).await;
    let after = r.last.clone().unwrap();

    let raw = record("MODIFY", Some(&before), Some(&after), 42);
    let first = StreamRecord::parse(&raw).unwrap();
    let again = StreamRecord::parse(&raw).unwrap();
    assert_eq!(first.sequence_number.as_deref(), Some("42"));
    assert_eq!(
        first.new.as_ref(),
        Some(&after),
        "the image reads back as the order"
    );
    assert_eq!(first.events(), again.events());
    assert_eq!(first.events()[0].detail.event_id, "E6#1");

    let insert = StreamRecord::parse(&record("INSERT", None, Some(&before), 41)).unwrap();
    assert!(insert.events().is_empty());
    let remove = StreamRecord::parse(&record("REMOVE", Some(&before), None, 43)).unwrap();
    assert!(remove.events().is_empty());
}

#[test]
fn an_unreadable_record_fails_itself_and_still_names_its_sequence_number() {
    for raw in [
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "7",
            "NewImage": {"tradeNo": {"S": "X1"}}}}),
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "7",
            "NewImage": {"tradeNo": {"Q": "X1"}}}}),
        serde_json::json!({"eventName": "TRUNCATE", "dynamodb": {"SequenceNumber": "7"}}),
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "7",
            "NewImage": "not an image"}}),
        // A parser's message would quote the value: the error (which is logged) must not.
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "7",
            "NewImage": {"remark": {"S": {"canary": "taro@example.com"}}}}}),
        serde_json::json!({"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "7",
            "NewImage": {"userId": {"N": "taro@example.com"}, "tradeNo": {"S": "X1"}}}}),
    ] {
        let error = StreamRecord::parse(&raw).expect_err(&raw.to_string());
        assert!(
            !format!("{error} {error:?}").contains("taro@example.com"),
            "{error:?}"
        );
        assert_eq!(StreamRecord::sequence_number_of(&raw).as_deref(), Some("7"));
    }
}

#[tokio::test]
async fn an_anomaly_on_an_intent_still_being_sent_is_numbered_and_shows_pending() {
    let mut r = Recorder::new("E6");
    r.apply(&webhook("E6", "0000", 1600)).await; // another amount while PENDING
    r.apply(&webhook("E6", "0000", 1500)).await;
    assert_eq!(
        r.seen(),
        vec![
            (
                1,
                DetailType::AnomalyRecorded,
                OrderStatus::Pending,
                Some("amount_mismatch")
            ),
            (2, DetailType::StatusChanged, OrderStatus::Succeeded, None),
        ]
    );
}

/// An order written by a build that kept neither `lastAnomaly` nor anything events-specific
/// (stored before events existed, or by the old version during a canary deploy): its events are
/// numbered from the counters every build keeps, so a later event never reuses an id.
#[test]
fn orders_written_before_events_existed_number_their_events_without_collisions() {
    let mut old = Order::pending(tn("E7"), &payout_testkit::payout("E7", 1500), t0(), t0());
    // Moved once (PENDING → PROCESSING) and one anomaly kept, by the older build.
    old.status = OrderStatus::Processing;
    old.version = 2;
    old.anomaly_count = 1;
    old.anomalies = vec![payout_domain::order::Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: payout_domain::order::AnomalyReason::UndocumentedStatus,
        report: std::collections::BTreeMap::new(),
    }];
    let mut new = old.clone();
    new.status = OrderStatus::Succeeded;
    new.version = 3;
    let events = for_change(Some(&old), Some(&new));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detail.event_id, "E7#3",
        "#1 and #2 were the older build's"
    );

    // An anomaly the older build recorded with its list full and no `lastAnomaly`: the list's
    // last entry is an older anomaly, so its reason is not guessed.
    let mut full = new.clone();
    full.anomaly_count = full.anomalies.len() as u64 + 5;
    let mut after = full.clone();
    after.anomaly_count += 1;
    let events = for_change(Some(&full), Some(&after));
    assert_eq!(events[0].detail.reason, Some("unrecorded"));
    assert_eq!(events[0].detail.version, after.event_count());
}
