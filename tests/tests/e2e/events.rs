//! Status events end to end: the real functions, the table's stream on moto feeding the real
//! `publish-payout-events` binary, moto's EventBridge bus and a rule to an SQS queue, read as a
//! consumer would. (Part of the `e2e` test binary; helpers from its root.)

use std::sync::atomic::Ordering;

use payout_e2e::events::Received;

use super::*;

async fn events_stack() -> Stack {
    stack_with(3000, |c| c.events = true).await
}

/// The events of `trade_no` once there are `n` distinct ones (deduplicated, version order).
async fn events_of(s: &Stack, trade_no: &str, n: usize) -> Vec<Received> {
    let collector = &s.events.as_ref().unwrap().collector;
    eventually(Duration::from_secs(30), || async {
        let events = collector.for_order(trade_no);
        if events.len() >= n {
            Ok(events)
        } else {
            Err(events)
        }
    })
    .await
}

fn schema() -> jsonschema::Validator {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("schemas/payout-events.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Every event as delivered matches the published schema and carries no personal data.
fn assert_well_formed(events: &[Received]) {
    let schema = schema();
    for event in events {
        let delivered = json!({
            "source": event.source, "detail-type": event.detail_type, "detail": event.detail,
        });
        let errors: Vec<String> = schema
            .iter_errors(&delivered)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{delivered}: {errors:?}");
        let text = delivered.to_string();
        for personal in [
            "1234567",
            "09012345678",
            "taro@example.jp",
            "user-42",
            "タロウ",
            "ヤマダ",
        ] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
    }
}

fn summary(events: &[Received]) -> Vec<(u64, String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.version(),
                e.detail_type.clone(),
                e.status().to_owned(),
                e.detail["previousStatus"]
                    .as_str()
                    .unwrap_or("null")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payout_publishes_one_event_per_change_and_an_anomaly_its_own() {
    let s = events_stack().await;

    let (status, order) = s.submit(&payout("EVT-HAPPY", 1500)).await;
    assert_eq!(status, 201, "{order}");
    s.status_becomes("EVT-HAPPY", "SUCCEEDED").await;
    let events = events_of(&s, "EVT-HAPPY", 2).await;
    assert_eq!(
        summary(&events),
        [
            (
                1,
                "Payout Status Changed".into(),
                "PROCESSING".into(),
                "PENDING".into()
            ),
            (
                2,
                "Payout Status Changed".into(),
                "SUCCEEDED".into(),
                "PROCESSING".into()
            ),
        ]
    );
    assert_eq!(events[0].event_id(), "EVT-HAPPY#1");
    assert_eq!(events[1].detail["amount"], 1500);
    assert!(events[1].detail["platFormTradeNo"].is_string());

    // A signed report that contradicts the final state: nothing moves, one anomaly event.
    let contradiction = signed_json(
        &[
            ("tradeNo", "EVT-HAPPY"),
            ("status", "00029"),
            ("amount", "1500"),
        ],
        APP_SECRET,
    );
    assert_eq!(s.notify(contradiction.clone()).await, 200);
    let events = events_of(&s, "EVT-HAPPY", 3).await;
    let anomaly = &events[2];
    assert_eq!(anomaly.detail_type, "Payout Anomaly Recorded");
    assert_eq!(anomaly.event_id(), "EVT-HAPPY#3");
    assert_eq!(anomaly.status(), "SUCCEEDED");
    assert_eq!(anomaly.detail["reason"], "contradicts_final_state");
    assert_eq!(s.status_of("EVT-HAPPY").await, "SUCCEEDED");

    // A replay of a notification already applied is no event.
    let replay = signed_json(
        &[
            ("tradeNo", "EVT-HAPPY"),
            ("status", "0000"),
            ("amount", "1500"),
        ],
        APP_SECRET,
    );
    assert_eq!(s.notify(replay).await, 200);
    // Nor is the same contradicting report again (kept once); a new one (another timestamp) is.
    assert_eq!(s.notify(contradiction).await, 200);
    let another = signed_json(
        &[
            ("tradeNo", "EVT-HAPPY"),
            ("status", "00029"),
            ("amount", "1500"),
            ("timestamp", "1764900000000"),
        ],
        APP_SECRET,
    );
    assert_eq!(s.notify(another).await, 200);
    let events = events_of(&s, "EVT-HAPPY", 4).await;
    assert_eq!(events.len(), 4, "only the new anomaly adds one");
    assert_eq!(events[3].event_id(), "EVT-HAPPY#4");
    assert_well_formed(&s.events.as_ref().unwrap().collector.received());
    for event in &s.events.as_ref().unwrap().collector.received() {
        assert_eq!(event.source, "vexora.payouts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_put_events_entry_is_published_after_its_record_is_delivered_again() {
    let s = events_stack().await;
    // EventBridge refuses this event four times: more than the publisher's own three tries,
    // so its record goes back to the event source and comes again.
    Moto::shared()
        .inject(&Fault {
            target: "AWSEvents.PutEvents",
            contains: "EVT-REFUSED#2",
            times: 4,
            partial: true,
            ..Fault::default()
        })
        .await
        .unwrap();

    let (status, _) = s.submit(&payout("EVT-REFUSED", 1500)).await;
    assert_eq!(status, 201);
    s.status_becomes("EVT-REFUSED", "SUCCEEDED").await;

    let events = events_of(&s, "EVT-REFUSED", 2).await;
    assert_eq!(
        events.iter().map(Received::event_id).collect::<Vec<_>>(),
        ["EVT-REFUSED#1", "EVT-REFUSED#2"],
        "nothing lost, nothing invented"
    );
    let pump = &s.events.as_ref().unwrap().pump.stats;
    assert!(
        pump.handed_back.load(Ordering::Relaxed) >= 1,
        "the record was handed back and delivered again"
    );
    assert!(
        s.events
            .as_ref()
            .unwrap()
            .publisher
            .logs()
            .contains("PutEvents refused an entry")
    );
    // Redelivery may repeat events; each repeat carries the same id.
    let received = s.events.as_ref().unwrap().collector.received();
    let twos = received
        .iter()
        .filter(|e| e.trade_no() == "EVT-REFUSED" && e.version() == 2)
        .count();
    assert_eq!(twos, 1, "the refused entry was never published before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unconfirmed_payout_tells_each_step_of_its_resolution() {
    let s = events_stack().await;
    let amount = Behaviour::SystemErrorButCreated.amount();

    let (status, _) = s.submit(&payout("EVT-DOUBT", amount)).await;
    assert_eq!(status, 202);
    s.status_becomes("EVT-DOUBT", "SUCCEEDED").await;

    let events = events_of(&s, "EVT-DOUBT", 2).await;
    let steps: Vec<(&str, String)> = events
        .iter()
        .map(|e| {
            (
                e.status(),
                e.detail["previousStatus"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(steps[0], ("UNCONFIRMED", "PENDING".to_owned()));
    assert_eq!(steps.last().unwrap().0, "SUCCEEDED");
    let versions: Vec<u64> = events.iter().map(Received::version).collect();
    assert_eq!(
        versions,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert_well_formed(&events);
}
