//! The store's behaviour, run against the real adapter on a moto server and against the
//! in-memory fake, so the fake the handler tests use cannot drift from DynamoDB.

use super::codec::s;
use super::*;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use chrono::{Duration, TimeZone};
use payout_app::batch::BatchStore;
use payout_app::store::*;
use payout_domain::order::{Anomaly, HistoryEntry, Order, OrderStatus, VexoraAnswer};
use payout_domain::order::{AnomalyReason, ReportSource};
use payout_domain::{Amount, TradeNo};
use payout_testkit::{InMemoryStore, Moto, aws_config_for};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn order(trade_no: &str, amount: u64) -> Order {
    let mut order = Order::pending(
        TradeNo::parse(trade_no).unwrap(),
        &payout_testkit::payout(trade_no, amount),
        t0(),
        t0() + Duration::seconds(30),
    );
    order.intent_id = Some(format!("intent-{trade_no}"));
    order
}

fn tn(s: &str) -> TradeNo {
    TradeNo::parse(s).unwrap()
}

fn move_to(to: OrderStatus, minutes: i64) -> Transition {
    Transition {
        to,
        expected_version: None,
        answer: Some(VexoraAnswer {
            code: Some("0000".into()),
            status: Some("0015".into()),
            message: Some("processing".into()),
            plat_form_trade_no: Some("PF-1".into()),
        }),
        at: t0() + Duration::minutes(minutes),
        check_after: Some(t0() + Duration::minutes(minutes + 5)),
        expected_amount: None,
        history: None,
        anomaly: None,
        write_id: None,
        expected_intent: None,
        operator_resolution: false,
        refusal: false,
    }
}

/// Keeps `history` and `anomaly` on the order as it stands now.
async fn annotate(
    store: &impl OrderStore,
    trade_no: &str,
    history: Option<HistoryEntry>,
    anomaly: Option<Anomaly>,
) -> bool {
    let known = store.get(&tn(trade_no)).await.unwrap().unwrap();
    store
        .annotate(
            &tn(trade_no),
            &Annotation::new(&known, history, anomaly, payout_app::apply::write_id()),
        )
        .await
        .unwrap()
        .is_some()
}

fn notification(i: i64) -> HistoryEntry {
    HistoryEntry {
        at: t0() + Duration::seconds(i),
        source: ReportSource::Webhook,
        status: "0000".into(),
        plat_form_trade_no: Some("PF-1".into()),
        amount: Some("1500.00".into()),
        decision: None,
    }
}

async fn moto_table() -> (Client, String) {
    let moto = Moto::shared();
    let config = aws_config_for(&moto.endpoint).await;
    let client = Client::new(&config);
    let table = format!("payouts-{}", uuid::Uuid::new_v4());
    create_table(&client, &table).await.unwrap();
    (client, table)
}

async fn moto_store() -> DynamoOrderStore {
    let (client, table) = moto_table().await;
    DynamoOrderStore::new(client, table)
}

/// Declares one behaviour test for each adapter.
macro_rules! store_behaviour {
    ($($name:ident),* $(,)?) => {
        mod dynamo {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::moto_store().await).await;
                }
            )*
        }
        mod in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::InMemoryStore::new()).await;
                }
            )*
        }
    };
}

store_behaviour!(
    a_created_order_reads_back_unchanged,
    a_second_create_returns_the_existing_order_and_changes_nothing,
    a_transition_moves_the_order_and_keeps_the_answer,
    a_transition_from_the_wrong_state_is_rejected_with_the_current_order,
    a_transition_at_a_stale_version_is_rejected,
    final_states_cannot_be_left,
    a_transition_of_an_unknown_order_is_not_found,
    nothing_moves_to_pending,
    anomalies_are_kept_up_to_a_bound_and_counted_beyond,
    only_a_pending_order_at_its_version_is_deleted,
    a_transition_for_another_amount_is_rejected,
    a_transition_keeps_its_notification_in_the_history,
    a_full_history_never_blocks_a_transition,
    due_orders_are_found_through_the_index_and_leave_it_when_final,
    a_retried_write_recognizes_its_own_landed_write,
    a_transition_for_one_intent_never_moves_another,
    each_move_and_each_anomaly_counts_one_event_in_the_same_write,
    an_operators_resolution_is_kept_with_its_decision_and_only_once,
    a_keep_retried_after_another_write_lands_once,
    a_refusal_moves_only_an_order_of_which_nothing_else_is_known,
    nothing_moves_to_failed_once_a_report_said_paid,
    a_queued_item_is_claimed_once_and_its_review_flag_cleared,
    a_queued_item_is_listed_by_later_batches_and_withdrawn_only_as_last_read,
    a_batch_record_is_stored_once_and_committed,
    the_unresolved_index_pages,
    orders_due_at_the_same_instant_page_once_each,
    a_check_is_claimed_once_per_reading_and_counts_its_attempt,
    a_refresh_is_claimed_at_most_once_per_interval,
);

async fn a_check_is_claimed_once_per_reading_and_counts_its_attempt(
    store: &(impl OrderStore + BatchStore),
) {
    let mut o = order("CC1", 1500);
    o.check_after = Some(t0());
    store.create(&o).await.unwrap();
    let claim = CheckClaim {
        seen: t0(),
        next: t0() + Duration::minutes(5),
        now: t0() + Duration::seconds(1),
        manual_review: true,
    };

    assert!(store.claim_check(&tn("CC1"), &claim).await.unwrap());
    // A second run that read the same `checkAfter` finds it taken.
    assert!(!store.claim_check(&tn("CC1"), &claim).await.unwrap());

    let stored = store.get(&tn("CC1")).await.unwrap().unwrap();
    assert_eq!(stored.check_after, Some(t0() + Duration::minutes(5)));
    assert_eq!(stored.check_attempts, 1);
    assert!(stored.manual_review);
    assert_eq!(stored.last_query_at, Some(t0() + Duration::seconds(1)));
    // A final order is never claimed.
    store
        .transition(&tn("CC1"), &move_to(OrderStatus::Succeeded, 6))
        .await
        .unwrap();
    let later = CheckClaim {
        seen: t0() + Duration::minutes(5),
        ..claim
    };
    assert!(!store.claim_check(&tn("CC1"), &later).await.unwrap());
    assert!(!store.claim_check(&tn("ABSENT"), &claim).await.unwrap());
}

async fn a_refresh_is_claimed_at_most_once_per_interval(store: &(impl OrderStore + BatchStore)) {
    store.create(&order("RC1", 1500)).await.unwrap();
    let interval = Duration::seconds(10);

    assert!(
        store
            .claim_refresh(&tn("RC1"), t0(), interval)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_refresh(&tn("RC1"), t0() + Duration::seconds(9), interval)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_refresh(&tn("RC1"), t0() + Duration::seconds(10), interval)
            .await
            .unwrap()
    );
}

async fn a_keep_retried_after_another_write_lands_once(store: &(impl OrderStore + BatchStore)) {
    store.create(&order("KR1", 1500)).await.unwrap();
    let known = store.get(&tn("KR1")).await.unwrap().unwrap();
    let first = Annotation::new(&known, Some(notification(1)), None, "keep-a".into());
    let second = Annotation::new(&known, Some(notification(2)), None, "keep-b".into());
    store.annotate(&tn("KR1"), &first).await.unwrap();
    store.annotate(&tn("KR1"), &second).await.unwrap();

    // The SDK sends the first again (its answer was lost) after the second landed.
    let again = store.annotate(&tn("KR1"), &first).await.unwrap();

    assert_eq!(again.map(|o| o.history.len()), Some(2));
    assert_eq!(
        store.get(&tn("KR1")).await.unwrap().unwrap().history.len(),
        2
    );
}

async fn a_refusal_moves_only_an_order_of_which_nothing_else_is_known(
    store: &(impl OrderStore + BatchStore),
) {
    let refusal = |minutes| Transition {
        refusal: true,
        write_id: Some(format!("r-{minutes}")),
        ..Transition::to(OrderStatus::Failed, t0() + Duration::minutes(minutes))
    };
    store.create(&order("RF1", 1500)).await.unwrap();
    assert!(matches!(
        store.transition(&tn("RF1"), &refusal(1)).await.unwrap(),
        Transitioned::Applied(ref o) if o.status == OrderStatus::Failed
    ));
    // Known to Vexora (a webhook moved it): refused, in the write itself.
    store.create(&order("RF2", 1500)).await.unwrap();
    let mut processing = move_to(OrderStatus::Processing, 1);
    processing.history = Some(notification(1));
    store.transition(&tn("RF2"), &processing).await.unwrap();
    assert!(matches!(
        store.transition(&tn("RF2"), &refusal(2)).await.unwrap(),
        Transitioned::Rejected(ref o) if o.status == OrderStatus::Processing
    ));
    // PENDING still, but a report was kept on it (history): refused too.
    store.create(&order("RF3", 1500)).await.unwrap();
    assert!(annotate(store, "RF3", Some(notification(1)), None).await);
    assert!(matches!(
        store.transition(&tn("RF3"), &refusal(3)).await.unwrap(),
        Transitioned::Rejected(_)
    ));
}

async fn nothing_moves_to_failed_once_a_report_said_paid(store: &(impl OrderStore + BatchStore)) {
    store.create(&order("PD1", 1500)).await.unwrap();
    let mut paid = notification(1);
    paid.status = "0000".into();
    let mut unknown = move_to(OrderStatus::Unconfirmed, 1);
    unknown.history = Some(paid);
    store.transition(&tn("PD1"), &unknown).await.unwrap();
    assert!(
        store
            .get(&tn("PD1"))
            .await
            .unwrap()
            .unwrap()
            .reported_paid_at
            .is_some()
    );

    let failed = store
        .transition(&tn("PD1"), &move_to(OrderStatus::Failed, 2))
        .await
        .unwrap();

    assert!(
        matches!(failed, Transitioned::Rejected(ref o) if o.status == OrderStatus::Unconfirmed),
        "{failed:?}"
    );
    assert!(matches!(
        store
            .transition(&tn("PD1"), &move_to(OrderStatus::Succeeded, 3))
            .await
            .unwrap(),
        Transitioned::Applied(_)
    ));
}

fn queued(trade_no: &str, batch: &str) -> Order {
    let mut o = order(trade_no, 1500);
    o.intent_id = None;
    o.queued = true;
    o.batch_id = Some(batch.to_owned());
    o.batch_ids = vec![batch.to_owned()];
    o
}

async fn a_queued_item_is_claimed_once_and_its_review_flag_cleared(
    store: &(impl OrderStore + BatchStore),
) {
    let mut item = queued("QC1", "B1");
    item.manual_review = true;
    store.create_queued(&item, "{\"payload\":1}").await.unwrap();
    let read = store.get(&tn("QC1")).await.unwrap().unwrap();
    assert!(read.queued && read.manual_review);

    let claimed = store
        .claim_queued(&tn("QC1"), "attempt-1", t0(), t0() + Duration::minutes(1))
        .await
        .unwrap();

    let (order, payload) = claimed.expect("claimed");
    assert_eq!(payload, "{\"payload\":1}");
    assert!(!order.queued);
    let stored = store.get(&tn("QC1")).await.unwrap().unwrap();
    assert!(
        !stored.manual_review,
        "a review flag set before it was sent no longer holds"
    );
    // An operator who read it before the claim cannot resolve it on that reading.
    let stale =
        payout_app::review::resolution(&read, OrderStatus::Failed, "op", "ticket", t0()).unwrap();
    assert!(matches!(
        store.transition(&tn("QC1"), &stale).await.unwrap(),
        Transitioned::Rejected(_)
    ));
    // The same attempt again finds it ours; another finds nothing.
    assert!(
        store
            .claim_queued(&tn("QC1"), "attempt-1", t0(), t0())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .claim_queued(&tn("QC1"), "attempt-2", t0(), t0())
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_queued_item_is_listed_by_later_batches_and_withdrawn_only_as_last_read(
    store: &(impl OrderStore + BatchStore),
) {
    use payout_app::batch::{Adopted, BatchId};
    store
        .create_queued(&queued("QL1", "B1"), "{}")
        .await
        .unwrap();
    let first = store.get(&tn("QL1")).await.unwrap().unwrap();
    let later = t0() + Duration::minutes(5);

    let adopted = store
        .adopt_queued(&tn("QL1"), &BatchId::parse("B2").unwrap(), later)
        .await
        .unwrap();

    let Adopted::Listed(order) = adopted else {
        panic!("not listed: {adopted:?}")
    };
    assert_eq!(order.batch_ids, vec!["B1".to_owned(), "B2".to_owned()]);
    assert_eq!(order.listed_by(), vec!["B1", "B2"]);
    // A withdrawal decided on the earlier reading is refused: a batch listed it since.
    assert!(
        !store
            .withdraw_queued(&tn("QL1"), first.updated_at)
            .await
            .unwrap()
    );
    let now = store.get(&tn("QL1")).await.unwrap().unwrap();
    assert!(
        store
            .withdraw_queued(&tn("QL1"), now.updated_at)
            .await
            .unwrap()
    );
    assert!(store.get(&tn("QL1")).await.unwrap().is_none());
    assert_eq!(
        store
            .adopt_queued(&tn("QL1"), &BatchId::parse("B3").unwrap(), later)
            .await
            .unwrap(),
        Adopted::Gone
    );
    // Taken by a worker: neither listed nor withdrawn.
    store
        .create_queued(&queued("QL2", "B1"), "{}")
        .await
        .unwrap();
    store
        .claim_queued(&tn("QL2"), "a", t0(), t0())
        .await
        .unwrap();
    let taken = store.get(&tn("QL2")).await.unwrap().unwrap();
    assert_eq!(
        store
            .adopt_queued(&tn("QL2"), &BatchId::parse("B2").unwrap(), later)
            .await
            .unwrap(),
        Adopted::Taken(Box::new(taken.clone())),
        "taken: the order as it stands"
    );
    assert!(
        !store
            .withdraw_queued(&tn("QL2"), taken.updated_at)
            .await
            .unwrap()
    );
}

async fn a_batch_record_is_stored_once_and_committed(store: &(impl OrderStore + BatchStore)) {
    use payout_app::batch::{BatchId, BatchRecord};
    let record = BatchRecord {
        batch_id: BatchId::parse("BR1").unwrap(),
        fingerprint: "f".into(),
        trade_nos: vec![tn("BR1-0"), tn("BR1-1")],
        created_at: t0(),
        committed: false,
    };
    assert_eq!(store.put_batch(&record).await.unwrap(), None);
    let again = store
        .put_batch(&BatchRecord {
            fingerprint: "g".into(),
            ..record.clone()
        })
        .await
        .unwrap();
    assert_eq!(again.map(|r| r.fingerprint), Some("f".to_owned()));
    store.commit_batch(&record.batch_id).await.unwrap();
    let stored = store.get_batch(&record.batch_id).await.unwrap().unwrap();
    assert!(stored.committed);
    assert_eq!(stored.trade_nos, record.trade_nos);
    store
        .create_queued(&queued("BR1-0", "BR1"), "{}")
        .await
        .unwrap();
    let many = store.get_many(&[tn("BR1-0"), tn("BR1-1")]).await.unwrap();
    assert_eq!(many.len(), 1, "only what exists");
}

async fn a_created_order_reads_back_unchanged(store: &impl OrderStore) {
    let o = order("READ1", 1500);
    assert_eq!(store.create(&o).await.unwrap(), Created::Created);
    assert_eq!(store.get(&tn("READ1")).await.unwrap(), Some(o));
    assert_eq!(store.get(&tn("NOPE")).await.unwrap(), None);
}

async fn a_second_create_returns_the_existing_order_and_changes_nothing(store: &impl OrderStore) {
    let first = order("DUP1", 1500);
    store.create(&first).await.unwrap();
    let second = order("DUP1", 9999);

    let result = store.create(&second).await.unwrap();

    assert_eq!(result, Created::AlreadyExists(Box::new(first.clone())));
    assert_eq!(store.get(&tn("DUP1")).await.unwrap(), Some(first));
}

async fn a_transition_moves_the_order_and_keeps_the_answer(store: &impl OrderStore) {
    store.create(&order("MOVE1", 1500)).await.unwrap();

    let result = store
        .transition(&tn("MOVE1"), &move_to(OrderStatus::Processing, 1))
        .await
        .unwrap();

    let Transitioned::Applied(moved) = result else {
        panic!("not applied: {result:?}");
    };
    assert_eq!(moved.status, OrderStatus::Processing);
    assert_eq!(moved.version, 2);
    assert_eq!(moved.plat_form_trade_no.as_deref(), Some("PF-1"));
    assert_eq!(
        moved.vexora.as_ref().unwrap().status.as_deref(),
        Some("0015")
    );
    assert_eq!(moved.updated_at, t0() + Duration::minutes(1));
    assert_eq!(moved.created_at, t0());
    assert_eq!(moved.check_after, Some(t0() + Duration::minutes(6)));
    assert_eq!(store.get(&tn("MOVE1")).await.unwrap(), Some(moved));
}

async fn a_transition_from_the_wrong_state_is_rejected_with_the_current_order(
    store: &impl OrderStore,
) {
    store.create(&order("WRONG1", 1500)).await.unwrap();
    store
        .transition(&tn("WRONG1"), &move_to(OrderStatus::Processing, 1))
        .await
        .unwrap();

    // PROCESSING may not move to UNCONFIRMED.
    let result = store
        .transition(&tn("WRONG1"), &move_to(OrderStatus::Unconfirmed, 2))
        .await
        .unwrap();

    let Transitioned::Rejected(current) = result else {
        panic!("not rejected: {result:?}");
    };
    assert_eq!(current.status, OrderStatus::Processing);
    assert_eq!(current.version, 2);
}

async fn a_transition_at_a_stale_version_is_rejected(store: &impl OrderStore) {
    store.create(&order("VER1", 1500)).await.unwrap();
    let mut t = move_to(OrderStatus::Unconfirmed, 1);
    t.expected_version = Some(7);

    let result = store.transition(&tn("VER1"), &t).await.unwrap();

    assert!(
        matches!(result, Transitioned::Rejected(ref o) if o.version == 1 && o.status == OrderStatus::Pending)
    );
    t.expected_version = Some(1);
    assert!(matches!(
        store.transition(&tn("VER1"), &t).await.unwrap(),
        Transitioned::Applied(ref o) if o.version == 2
    ));
}

async fn final_states_cannot_be_left(store: &impl OrderStore) {
    store.create(&order("FINAL1", 1500)).await.unwrap();
    let Transitioned::Applied(done) = store
        .transition(&tn("FINAL1"), &move_to(OrderStatus::Succeeded, 1))
        .await
        .unwrap()
    else {
        panic!("success not applied");
    };
    for to in [
        OrderStatus::Failed,
        OrderStatus::Processing,
        OrderStatus::Unconfirmed,
        OrderStatus::Succeeded,
    ] {
        let result = store
            .transition(&tn("FINAL1"), &move_to(to, 2))
            .await
            .unwrap();
        assert_eq!(result, Transitioned::Rejected(done.clone()), "{to}");
    }
}

async fn a_transition_of_an_unknown_order_is_not_found(store: &impl OrderStore) {
    let result = store
        .transition(&tn("GHOST"), &move_to(OrderStatus::Succeeded, 1))
        .await
        .unwrap();
    assert_eq!(result, Transitioned::NotFound);
    assert_eq!(
        store.get(&tn("GHOST")).await.unwrap(),
        None,
        "no item may be created"
    );
}

async fn nothing_moves_to_pending(store: &impl OrderStore) {
    store.create(&order("PEND1", 1500)).await.unwrap();
    let err = store
        .transition(&tn("PEND1"), &move_to(OrderStatus::Pending, 1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::ImpossibleTransition(OrderStatus::Pending)
    ));
}

async fn a_transition_for_another_amount_is_rejected(store: &impl OrderStore) {
    store.create(&order("AMT1", 1500)).await.unwrap();
    let mut t = move_to(OrderStatus::Succeeded, 1);
    t.expected_amount = Some(Amount::new(1600).unwrap());

    let result = store.transition(&tn("AMT1"), &t).await.unwrap();

    assert!(matches!(result, Transitioned::Rejected(ref o) if o.status == OrderStatus::Pending));
    t.expected_amount = Some(Amount::new(1500).unwrap());
    assert!(matches!(
        store.transition(&tn("AMT1"), &t).await.unwrap(),
        Transitioned::Applied(_)
    ));
}

async fn a_transition_keeps_its_notification_in_the_history(store: &impl OrderStore) {
    store.create(&order("HIS1", 1500)).await.unwrap();
    let mut t = move_to(OrderStatus::Processing, 1);
    t.history = Some(notification(1));

    store.transition(&tn("HIS1"), &t).await.unwrap();
    assert!(annotate(store, "HIS1", Some(notification(2)), None).await);

    let stored = store.get(&tn("HIS1")).await.unwrap().unwrap();
    assert_eq!(stored.history, vec![notification(1), notification(2)]);
    assert_eq!(stored.status, OrderStatus::Processing);
}

async fn a_full_history_never_blocks_a_transition(store: &impl OrderStore) {
    store.create(&order("HIS2", 1500)).await.unwrap();
    for i in 0..schema::MAX_HISTORY_KEPT as i64 + 2 {
        assert!(annotate(store, "HIS2", Some(notification(i)), None).await);
    }
    let mut t = move_to(OrderStatus::Succeeded, 1);
    t.history = Some(notification(999));

    let result = store.transition(&tn("HIS2"), &t).await.unwrap();

    let Transitioned::Applied(done) = result else {
        panic!("a full history blocked the move: {result:?}");
    };
    assert_eq!(done.status, OrderStatus::Succeeded);
    // Transitions append past the bound (an order moves at most four times).
    assert_eq!(done.history.len(), schema::MAX_HISTORY_KEPT + 1);
    assert_eq!(done.history[0], notification(0));
    assert_eq!(done.history[schema::MAX_HISTORY_KEPT], notification(999));
}

async fn only_a_pending_order_at_its_version_is_deleted(store: &impl OrderStore) {
    store.create(&order("DEL1", 1500)).await.unwrap();
    store.create(&order("DEL2", 1500)).await.unwrap();
    store
        .transition(&tn("DEL2"), &move_to(OrderStatus::Unconfirmed, 1))
        .await
        .unwrap();

    assert!(
        !store
            .delete_pending(&tn("DEL1"), "another-intent")
            .await
            .unwrap(),
        "another intent's order (a later submit of the same tradeNo)"
    );
    assert!(
        !store
            .delete_pending(&tn("DEL2"), "intent-DEL2")
            .await
            .unwrap(),
        "no longer pending"
    );
    assert!(
        !store
            .delete_pending(&tn("GHOST"), "intent-GHOST")
            .await
            .unwrap(),
        "absent"
    );
    store.create(&order("DEL3", 1500)).await.unwrap();
    let flagged = Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: AnomalyReason::AmountMismatch,
        report: std::collections::BTreeMap::new(),
    };
    assert!(annotate(store, "DEL3", None, Some(flagged)).await);
    assert!(
        !store
            .delete_pending(&tn("DEL3"), "intent-DEL3")
            .await
            .unwrap(),
        "an intent that stands for an event (its anomaly) is kept: a later intent would reuse DEL3#1"
    );
    assert!(store.get(&tn("DEL1")).await.unwrap().is_some());
    assert!(store.get(&tn("DEL2")).await.unwrap().is_some());
    assert!(store.get(&tn("DEL3")).await.unwrap().is_some());

    assert!(
        store
            .delete_pending(&tn("DEL1"), "intent-DEL1")
            .await
            .unwrap()
    );
    assert_eq!(store.get(&tn("DEL1")).await.unwrap(), None);
}

async fn anomalies_are_kept_up_to_a_bound_and_counted_beyond(store: &impl OrderStore) {
    store.create(&order("ANOM1", 1500)).await.unwrap();
    let anomaly = |i: i64| Anomaly {
        at: t0() + Duration::seconds(i),
        source: ReportSource::Webhook,
        reason: AnomalyReason::ContradictsFinalState,
        report: [
            ("status".to_owned(), "00029".to_owned()),
            ("amount".to_owned(), "1500".to_owned()),
        ]
        .into_iter()
        .collect(),
    };
    let total = schema::MAX_ANOMALIES_KEPT as i64 + 3;
    for i in 0..total {
        assert!(annotate(store, "ANOM1", None, Some(anomaly(i))).await);
    }
    assert!(!keep_absent(store).await, "an absent order is not found");

    let stored = store.get(&tn("ANOM1")).await.unwrap().unwrap();
    assert_eq!(stored.anomalies.len(), schema::MAX_ANOMALIES_KEPT);
    assert_eq!(stored.anomalies[0], anomaly(0));
    assert_eq!(stored.anomaly_count, total as u64);
    assert_eq!(
        stored.status,
        OrderStatus::Pending,
        "an anomaly changes no state"
    );
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.event_count(),
        total as u64,
        "every anomaly is one status event, kept in the list or not"
    );
    assert_eq!(stored.last_anomaly, Some(anomaly(total - 1)));
}

async fn each_move_and_each_anomaly_counts_one_event_in_the_same_write(store: &impl OrderStore) {
    store.create(&order("EVT1", 1500)).await.unwrap();
    assert_eq!(
        store.get(&tn("EVT1")).await.unwrap().unwrap().event_count(),
        0,
        "an intent is no event"
    );
    let flagged = Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: AnomalyReason::UndocumentedStatus,
        report: std::collections::BTreeMap::new(),
    };
    let moved = store
        .transition(
            &tn("EVT1"),
            &Transition {
                anomaly: Some(flagged.clone()),
                ..move_to(OrderStatus::Unconfirmed, 1)
            },
        )
        .await
        .unwrap();
    let Transitioned::Applied(moved) = moved else {
        panic!("{moved:?}")
    };
    assert_eq!(
        moved.event_count(),
        2,
        "a move with an anomaly is two events"
    );
    assert_eq!(moved.last_anomaly, Some(flagged));
    let Transitioned::Applied(done) = store
        .transition(&tn("EVT1"), &move_to(OrderStatus::Succeeded, 2))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(done.event_count(), 3);
    assert!(annotate(store, "EVT1", Some(notification(3)), None).await);
    assert_eq!(
        store.get(&tn("EVT1")).await.unwrap().unwrap().event_count(),
        3,
        "a kept duplicate is no event"
    );
}

async fn a_transition_for_one_intent_never_moves_another(store: &impl OrderStore) {
    store.create(&order("INT1", 1500)).await.unwrap();
    let mut t = move_to(OrderStatus::Unconfirmed, 1);
    t.expected_intent = Some("a-withdrawn-intent".into());

    assert_eq!(
        store.transition(&tn("INT1"), &t).await.unwrap(),
        Transitioned::NotFound
    );
    assert_eq!(
        store.get(&tn("INT1")).await.unwrap().unwrap().status,
        OrderStatus::Pending
    );
    t.expected_intent = Some("intent-INT1".into());
    assert!(matches!(
        store.transition(&tn("INT1"), &t).await.unwrap(),
        Transitioned::Applied(_)
    ));
}

async fn keep_absent(store: &impl OrderStore) -> bool {
    let known = order("GHOST", 1500);
    store
        .annotate(
            &tn("GHOST"),
            &Annotation::new(&known, Some(notification(1)), None, "w".into()),
        )
        .await
        .unwrap()
        .is_some()
}

async fn a_retried_write_recognizes_its_own_landed_write(store: &impl OrderStore) {
    store.create(&order("RETRY1", 1500)).await.unwrap();
    let mut t = move_to(OrderStatus::Processing, 1);
    t.write_id = Some("w-1".into());
    t.history = Some(notification(1));
    assert!(matches!(
        store.transition(&tn("RETRY1"), &t).await.unwrap(),
        Transitioned::Applied(_)
    ));

    // The same write again, as the SDK sends it when the first answer was lost.
    let again = store.transition(&tn("RETRY1"), &t).await.unwrap();

    let Transitioned::Applied(order) = again else {
        panic!("our own write was taken for another's: {again:?}");
    };
    assert_eq!(order.version, 2, "applied once");
    assert_eq!(order.history.len(), 1);
    let known = store.get(&tn("RETRY1")).await.unwrap().unwrap();
    let k = Annotation::new(&known, Some(notification(2)), None, "w-2".into());
    assert!(store.annotate(&tn("RETRY1"), &k).await.unwrap().is_some());
    assert!(store.annotate(&tn("RETRY1"), &k).await.unwrap().is_some());
    let stored = store.get(&tn("RETRY1")).await.unwrap().unwrap();
    assert_eq!(stored.history.len(), 2, "kept once");
    assert_eq!(stored.last_write.as_deref(), Some("w-2"));
}

async fn due_orders_are_found_through_the_index_and_leave_it_when_final(store: &impl OrderStore) {
    for (i, t) in ["DUE1", "DUE2", "DUE3"].into_iter().enumerate() {
        let mut o = order(t, 1500);
        o.check_after = Some(t0() + Duration::minutes(i as i64));
        store.create(&o).await.unwrap();
    }
    store
        .transition(&tn("DUE2"), &move_to(OrderStatus::Failed, 0))
        .await
        .unwrap();

    let page = store
        .due_for_check(t0() + Duration::seconds(90), 10, None)
        .await
        .unwrap();

    assert_eq!(page.trade_nos, vec![tn("DUE1")]);
    let later = store
        .due_for_check(t0() + Duration::hours(1), 10, None)
        .await
        .unwrap();
    assert_eq!(later.trade_nos, vec![tn("DUE1"), tn("DUE3")]);
}

#[tokio::test]
async fn racing_creates_of_one_trade_no_have_exactly_one_winner() {
    let store = moto_store().await;
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.create(&order("RACE1", 1000 + i)).await })
    });
    let mut created = 0;
    let mut existing = Vec::new();
    for handle in attempts {
        match handle.await.unwrap().unwrap() {
            Created::Created => created += 1,
            Created::AlreadyExists(o) => existing.push(*o),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(existing.len(), 7);
    let stored = store.get(&tn("RACE1")).await.unwrap().unwrap();
    assert!(
        existing.iter().all(|o| *o == stored),
        "every loser sees the winner's order"
    );
}

#[tokio::test]
async fn racing_transitions_apply_once() {
    let store = moto_store().await;
    store.create(&order("RACE2", 1500)).await.unwrap();
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .transition(&tn("RACE2"), &move_to(OrderStatus::Succeeded, 1))
                .await
        })
    });
    let mut applied = 0;
    for handle in attempts {
        if let Transitioned::Applied(_) = handle.await.unwrap().unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(store.get(&tn("RACE2")).await.unwrap().unwrap().version, 2);
}

async fn the_unresolved_index_pages(store: &(impl OrderStore + BatchStore)) {
    for i in 0..5 {
        let mut o = order(&format!("PAGE{i}"), 1500);
        o.check_after = Some(t0() + Duration::seconds(i));
        store.create(&o).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .due_for_check(t0() + Duration::hours(1), 2, cursor)
            .await
            .unwrap();
        assert!(page.trade_nos.len() <= 2);
        seen.extend(page.trade_nos);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..5).map(|i| tn(&format!("PAGE{i}"))).collect();
    assert_eq!(seen, expected);
}

/// The cursor is rebuilt from the last order's `tradeNo` and `checkAfter` (the port holds no
/// DynamoDB key): orders due at the same instant, across page boundaries, each come once.
async fn orders_due_at_the_same_instant_page_once_each(store: &(impl OrderStore + BatchStore)) {
    for i in 0..5 {
        let mut o = order(&format!("SAME{i}"), 1500);
        o.check_after = Some(t0());
        store.create(&o).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .due_for_check(t0() + Duration::hours(1), 2, cursor)
            .await
            .unwrap();
        assert!(page.trade_nos.len() <= 2);
        seen.extend(page.trade_nos);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<_> = (0..5).map(|i| tn(&format!("SAME{i}"))).collect();
    assert_eq!(seen, expected, "each order once, none skipped");
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_an_error_not_an_outcome() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = aws_config_for(&format!("http://127.0.0.1:{port}")).await;
    let store = DynamoOrderStore::new(Client::new(&config), "payouts");
    let err = store.create(&order("DOWN1", 1500)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_corrupt_item_is_reported_by_attribute() {
    let (client, table) = moto_table().await;
    let store = DynamoOrderStore::new(client.clone(), &table);
    client
        .put_item()
        .table_name(&table)
        .item(schema::PARTITION_KEY, s("BROKEN1"))
        .item(schema::attr::STATUS, s("DONE"))
        .send()
        .await
        .unwrap();
    let err = store.get(&tn("BROKEN1")).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt("status")), "{err:?}");
}

async fn an_operators_resolution_is_kept_with_its_decision_and_only_once(store: &impl OrderStore) {
    let mut o = order("OPR1", 1500);
    o.manual_review = true;
    store.create(&o).await.unwrap();
    let stored = store.get(&tn("OPR1")).await.unwrap().unwrap();
    let resolve = |to| {
        payout_app::review::resolution(&stored, to, "arn:aws:iam::1:user/ops", "ticket V-9", t0())
            .unwrap()
    };
    let first = resolve(OrderStatus::Failed);
    let Transitioned::Applied(done) = store.transition(&tn("OPR1"), &first).await.unwrap() else {
        panic!("not applied")
    };
    assert_eq!(done.status, OrderStatus::Failed);
    let read = store.get(&tn("OPR1")).await.unwrap().unwrap();
    let entry = read.history.last().unwrap();
    assert_eq!(entry.source, ReportSource::Operator);
    assert_eq!(
        entry
            .decision
            .as_ref()
            .map(|d| (d.operator.as_str(), d.evidence.as_str())),
        Some(("arn:aws:iam::1:user/ops", "ticket V-9"))
    );
    // A second operator who read the order before the first resolved it changes nothing.
    let late = resolve(OrderStatus::Succeeded);
    assert!(!matches!(
        store.transition(&tn("OPR1"), &late).await.unwrap(),
        Transitioned::Applied(_)
    ));
    assert_eq!(
        store.get(&tn("OPR1")).await.unwrap().unwrap().status,
        OrderStatus::Failed
    );

    // Read, then a report of payment lands through a write that does not move the order (an
    // anomaly: another amount): the FAILED resolution built from the earlier read is refused
    // by the store itself, and SUCCEEDED still goes through.
    let mut o = order("OPR2", 1500);
    o.manual_review = true;
    store.create(&o).await.unwrap();
    let read = store.get(&tn("OPR2")).await.unwrap().unwrap();
    let failed =
        payout_app::review::resolution(&read, OrderStatus::Failed, "op", "ticket", t0()).unwrap();
    let paid_elsewhere = Anomaly {
        at: t0(),
        source: ReportSource::Webhook,
        reason: AnomalyReason::AmountMismatch,
        report: [("status".to_owned(), "0000".to_owned())]
            .into_iter()
            .collect(),
    };
    assert!(annotate(store, "OPR2", None, Some(paid_elsewhere)).await);
    assert!(
        store
            .get(&tn("OPR2"))
            .await
            .unwrap()
            .unwrap()
            .reported_paid_at
            .is_some()
    );
    assert!(matches!(
        store.transition(&tn("OPR2"), &failed).await.unwrap(),
        Transitioned::Rejected(_)
    ));
    let succeeded =
        payout_app::review::resolution(&read, OrderStatus::Succeeded, "op", "ticket", t0())
            .unwrap();
    assert!(matches!(
        store.transition(&tn("OPR2"), &succeeded).await.unwrap(),
        Transitioned::Applied(_)
    ));

    // Not flagged for review: the store refuses a resolution even when the caller skipped the check.
    store.create(&order("OPR3", 1500)).await.unwrap();
    let unflagged = Transition {
        operator_resolution: true,
        ..Transition::to(OrderStatus::Failed, t0())
    };
    assert!(matches!(
        store.transition(&tn("OPR3"), &unflagged).await.unwrap(),
        Transitioned::Rejected(_)
    ));
}

/// The paging key the adapter rebuilds from a cursor is the one DynamoDB returned: the table's
/// key and the index's, numbers in DynamoDB's canonical form.
#[test]
fn a_cursor_rebuilds_the_paging_key_dynamodb_returned() {
    let key = std::collections::HashMap::from([
        (schema::PARTITION_KEY.to_owned(), s("T1")),
        (
            schema::UNRESOLVED_KEY.to_owned(),
            s(schema::UNRESOLVED_MARK),
        ),
        (
            schema::CHECK_AFTER.to_owned(),
            AttributeValue::N("1764036000000".into()),
        ),
    ]);
    let cursor = super::cursor_of(&key).unwrap();
    assert_eq!(cursor.check_after_ms, 1_764_036_000_000);
    assert_eq!(super::cursor_key(cursor), key);
}

/// A paging key that does not read as exactly one instant and one order is an error, never
/// read as another position (which could skip unresolved orders).
#[test]
fn a_paging_key_that_is_not_one_instant_and_one_order_is_corrupt() {
    for check_after in ["1.5e12", "1764036000000.5", "", "-", "99999999999999999999"] {
        let key = std::collections::HashMap::from([
            (schema::PARTITION_KEY.to_owned(), s("T1")),
            (
                schema::CHECK_AFTER.to_owned(),
                AttributeValue::N(check_after.into()),
            ),
        ]);
        assert!(
            matches!(super::cursor_of(&key), Err(StoreError::Corrupt(_))),
            "{check_after:?}"
        );
    }
    let no_order = std::collections::HashMap::from([(
        schema::CHECK_AFTER.to_owned(),
        AttributeValue::N("1".into()),
    )]);
    assert!(matches!(
        super::cursor_of(&no_order),
        Err(StoreError::Corrupt(_))
    ));
}
