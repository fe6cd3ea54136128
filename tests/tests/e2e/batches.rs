//! Batches over the real binaries: `submit-payout` stores and queues, `submit-batch-items` (three
//! processes fed from moto's SQS as Lambda would) sends, the sandbox's ledger counts every call.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use payout_aws::store::schema::attr;
use payout_domain::order::OrderStatus;
use payout_e2e::sandbox::SandboxConfig;
use payout_e2e::stack::{Stack, StackConfig};
use payout_testkit::Moto;
use serde_json::{Value, json};

use super::{APP_SECRET, eventually, payout};

fn items(prefix: &str, n: usize, amount: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut p = payout(&format!("{prefix}{i}"), amount);
            p.as_object_mut().unwrap().remove("tradeNo");
            p
        })
        .collect()
}

async fn post_batch(s: &Stack, body: &Value) -> (u16, Value) {
    let response = s
        .http
        .post(format!("{}/batches", s.submit.url))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A `GET` that answered 200 (the emulator, serializing every request, can be slow enough for
/// a `503` now and then: the read is tried again).
async fn get_json(s: &Stack, path: &str) -> Value {
    eventually(Duration::from_secs(30), || async {
        let response = s
            .http
            .get(format!("{}{path}", s.submit.url))
            .send()
            .await
            .unwrap();
        let ok = response.status().as_u16() == 200;
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if ok { Ok(body) } else { Err(body) }
    })
    .await
}

/// Every item's status, through every page of `GET /batches/{id}`.
async fn statuses(s: &Stack, batch_id: &str) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut next = String::new();
    loop {
        let page = get_json(s, &format!("/batches/{batch_id}{next}")).await;
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            all.insert(
                item["tradeNo"].as_str().unwrap_or_default().to_owned(),
                item["status"].as_str().unwrap_or_default().to_owned(),
            );
        }
        match page["next"].as_str() {
            Some(n) => next = format!("?next={n}"),
            None => return all,
        }
    }
}

fn config(moto: &Moto) -> StackConfig {
    let mut config = StackConfig::new(moto, APP_SECRET);
    // The production default: every Vexora answer here is expected within it, even on a busy
    // machine (a shorter one would turn a slow answer into an unconfirmed item).
    config.vexora_timeout_ms = 8000;
    config.sandbox = SandboxConfig {
        time_scale: 0.001,
        processing_time: Duration::from_millis(100),
        ..SandboxConfig::default()
    };
    config.submit_instances = 2;
    config.webhook_instances = 2;
    config.batches = true;
    config.batch_workers = 3;
    config
}

/// The items named by the batch-queue messages in SQS events.
fn trade_nos_in(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .flat_map(|event| event["Records"].as_array().cloned().unwrap_or_default())
        .filter_map(|record| {
            let body: Value = serde_json::from_str(record["body"].as_str()?).ok()?;
            Some(body["tradeNo"].as_str()?.to_owned())
        })
        .collect()
}

fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Of `trade_nos`, the items a worker has taken (claimed) and Vexora has not received.
async fn taken_unsent(s: &Stack, trade_nos: &BTreeSet<String>) -> BTreeSet<String> {
    let submits = s.sandbox.ledger().submits;
    let mut taken = BTreeSet::new();
    for trade_no in trade_nos.iter().filter(|t| !submits.contains_key(*t)) {
        let item = s
            .dynamodb
            .get_item()
            .table_name(&s.config.table)
            .key(attr::TRADE_NO, AttributeValue::S(trade_no.clone()))
            .consistent_read(true)
            .send()
            .await
            .ok()
            .and_then(|read| read.item)
            .unwrap_or_default();
        let pending = item.get(attr::STATUS).and_then(|v| v.as_s().ok())
            == Some(&OrderStatus::Pending.as_str().to_owned());
        if pending && item.contains_key(attr::INTENT_ID) {
            taken.insert(trade_no.clone());
        }
    }
    taken
}

/// Kills batch worker `pid` (SIGKILL) with an invocation in hand, preferably between taking an
/// item and sending it: it is stopped and looked at, and let go on when it holds no such item
/// (a few tries). What it held when it died, and of that what it had taken and not sent.
async fn kill_between_taking_and_sending(
    s: &Stack,
    pid: u32,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let worker = &s.batches.as_ref().unwrap().worker;
    let mut tries = 0;
    loop {
        tries += 1;
        eventually(Duration::from_secs(60), || async {
            (!worker.in_hand(pid).is_empty()).then_some(()).ok_or(())
        })
        .await;
        signal(pid, "-STOP");
        // A request it had already sent is answered meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = trade_nos_in(&worker.in_hand(pid));
        let taken = taken_unsent(s, &held).await;
        if !taken.is_empty() || tries == 20 {
            signal(pid, "-KILL");
            return (held, taken);
        }
        signal(pid, "-CONT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_items_are_each_sent_once_through_redeliveries_a_worker_crash_and_a_moto_restart()
 {
    let state = std::env::temp_dir().join(format!("moto-batch-{}.state", uuid::Uuid::new_v4()));
    let mut moto = Moto::start_keeping_state(&state).unwrap();
    let mut config = config(&moto);
    config.batch_redeliver_every = Some(3);
    config.batch_redeliver_concurrently_every = Some(4);
    let s = Stack::spawn(config).await.unwrap();

    let body = json!({"batchId": "E2E_THOUSAND", "items": items("K", 1000, 1000)});
    let (status, answer) = post_batch(&s, &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["items"], 1000);

    // A worker process dies mid-batch, if it can be caught so, between taking an item and
    // sending it (its invocation never answers; its messages come back). What it held when it
    // died are the only items that may go unsent.
    let sent = || s.sandbox.ledger().submits.len();
    eventually(Duration::from_secs(120), || async {
        (sent() >= 100).then_some(()).ok_or(())
    })
    .await;
    let batches = s.batches.as_ref().unwrap();
    let victim = batches.worker.pids()[0];
    let (held, taken) = kill_between_taking_and_sending(&s, victim).await;
    let outside_its_hand: Vec<String> = (0..1000)
        .map(|i| format!("E2E_THOUSAND-{i}"))
        .filter(|t| !held.contains(t))
        .collect();

    // DynamoDB and SQS go away for 1.5 s and come back with their data.
    eventually(Duration::from_secs(120), || async {
        (sent() >= 400).then_some(()).ok_or(())
    })
    .await;
    moto.restart(Duration::from_millis(1500)).await.unwrap();

    // The same batch again, mid-flight: 200, nothing sent twice.
    let (again, answer) = post_batch(&s, &body).await;
    assert_eq!(again, 200, "{answer}");

    // Every item leaves the queue; those the dead worker held unsent are abandoned and
    // resolved by the reconciler (never sent twice, never failed for want of an answer).
    let pending = |view: &Value| view["counts"]["PENDING"].as_u64().unwrap_or(0);
    // Progress from the sandbox's ledger (no load on the emulator), then the batch's own view.
    let unsent = eventually(Duration::from_secs(300), || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let submits = s.sandbox.ledger().submits;
        let unsent: Vec<&String> = outside_its_hand
            .iter()
            .filter(|t| !submits.contains_key(*t))
            .collect();
        if unsent.is_empty() {
            Ok(Vec::new())
        } else {
            Err(unsent.into_iter().take(20).cloned().collect())
        }
    })
    .await;
    assert!(
        unsent.is_empty(),
        "unsent, yet not in the dead worker's hand (of {held:?}): {unsent:?}"
    );
    let view = eventually(Duration::from_secs(120), || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let view = get_json(&s, "/batches/E2E_THOUSAND").await;
        (pending(&view) <= held.len() as u64)
            .then_some(view.clone())
            .ok_or(view)
    })
    .await;
    assert!(
        pending(&view) <= held.len() as u64,
        "the workers stopped sending: {view}"
    );
    let schedule = json!({"source": "aws.scheduler"});
    let settled = eventually(Duration::from_secs(120), || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let view = get_json(&s, "/batches/E2E_THOUSAND").await;
        let unsettled = pending(&view) + view["counts"]["PROCESSING"].as_u64().unwrap_or(0);
        if unsettled > 0 {
            let _ = s.reconcile.invoke(&schedule).await;
            return Err(BTreeMap::new());
        }
        Ok(statuses(&s, "E2E_THOUSAND").await)
    })
    .await;
    assert_eq!(settled.len(), 1000, "items left PENDING or PROCESSING");

    let ledger = s.sandbox.ledger();
    let twice: Vec<_> = ledger.submits.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let never_sent: BTreeSet<String> = settled
        .keys()
        .filter(|t| !ledger.submits.contains_key(*t))
        .cloned()
        .collect();
    assert!(
        never_sent.is_subset(&held),
        "only what the dead worker held may be unsent: {:?} (it held {held:?})",
        never_sent.difference(&held).collect::<Vec<_>>()
    );
    for (trade_no, status) in &settled {
        let expected = if ledger.submits.contains_key(trade_no) {
            "SUCCEEDED"
        } else {
            "UNCONFIRMED"
        };
        assert_eq!(status, expected, "{trade_no}");
    }
    let view = get_json(&s, "/batches/E2E_THOUSAND").await;
    assert_eq!(view["status"], "DONE", "{view}");
    let stats = &batches.pump.stats;
    assert!(
        stats.redelivered.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "redeliveries were injected"
    );
    assert!(
        stats
            .redelivered_concurrently
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "concurrent redeliveries were injected"
    );
    assert!(
        batches.worker.twins_answered() > 0,
        "the same messages were in two live workers' hands at once"
    );
    eprintln!(
        "the dead worker held {held:?}, had taken {taken:?} unsent; never sent: {never_sent:?}; \
         {} batches in two workers' hands at once",
        batches.worker.twins_answered()
    );
    let _ = std::fs::remove_file(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_over_the_balance_is_refused_whole_and_a_replay_sends_nothing_again() {
    let mut config = config(Moto::shared());
    config.sandbox.starting_balance = 10_000;
    config.batch_workers = 1;
    let s = Stack::spawn(config).await.unwrap();

    let (status, answer) = post_batch(
        &s,
        &json!({"batchId": "TOO_MUCH", "items": items("T", 11, 1000)}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "insufficient_balance");
    let (status, _) = (
        s.http
            .get(format!("{}/payouts/TOO_MUCH-0", s.submit.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        (),
    );
    assert_eq!(status, 404, "nothing stored");

    let body = json!({"batchId": "FITS", "items": items("F", 5, 1000)});
    let (status, _) = post_batch(&s, &body).await;
    assert_eq!(status, 202);
    let done = eventually(Duration::from_secs(60), || async {
        let view = get_json(&s, "/batches/FITS").await;
        (view["status"] == "DONE")
            .then_some(view.clone())
            .ok_or(view)
    })
    .await;
    assert_eq!(done["status"], "DONE", "{done}");
    for _ in 0..3 {
        let (status, replay) = post_batch(&s, &body).await;
        assert_eq!(status, 200, "{replay}");
    }
    let other = post_batch(
        &s,
        &json!({"batchId": "FITS", "items": items("F", 5, 1001)}),
    )
    .await;
    assert_eq!(other.0, 422);
    assert!(s.ledger_sent_once(5));
    assert!(
        s.sandbox
            .ledger()
            .submits
            .keys()
            .all(|t| t.starts_with("FITS-")),
        "nothing of TOO_MUCH reached Vexora"
    );
}

trait Ledger {
    fn ledger_sent_once(&self, n: usize) -> bool;
}

impl Ledger for Stack {
    fn ledger_sent_once(&self, n: usize) -> bool {
        let submits = self.sandbox.ledger().submits;
        submits.len() == n && submits.values().all(|c| *c == 1)
    }
}

/// Ten payouts with their own tradeNos (a merchant's own references).
fn own_items(prefix: &str, n: usize, amount: u64) -> Vec<Value> {
    (0..n)
        .map(|i| payout(&format!("{prefix}-{i}"), amount))
        .collect()
}

/// Makes committing batch `batch_id` fail (DynamoDB answers 500 to every try): its request
/// stores every item and then answers 503, the items queued under a batch never accepted.
async fn failing_commit(batch_id: &str) {
    let key = format!("batch#{batch_id}");
    Moto::shared()
        .inject(&payout_testkit::Fault {
            target: "DynamoDB_20120810.UpdateItem",
            contains: &key,
            times: 20,
            ..payout_testkit::Fault::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_stored_batch_re_sent_under_a_new_batch_id_sends_every_item_once_and_ends_done() {
    // Issue 22's second break: a batch request fails after storing its items; the merchant,
    // who never learnt the batch was stored, sends the same ten payouts under a new batchId.
    let s = Stack::spawn(config(Moto::shared())).await.unwrap();
    failing_commit("HALF_A").await;
    let items = own_items("HALFX", 10, 1000);
    let (status, answer) = post_batch(&s, &json!({"batchId": "HALF_A", "items": items})).await;
    assert_eq!(status, 503, "{answer}");

    let (status, answer) = post_batch(&s, &json!({"batchId": "HALF_B", "items": items})).await;

    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["items"], 10);
    let done = eventually(Duration::from_secs(120), || async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let view = get_json(&s, "/batches/HALF_B").await;
        // Every item paid (DONE alone holds once none is PENDING: PROCESSING ones count).
        (view["counts"]["SUCCEEDED"] == 10)
            .then_some(view.clone())
            .ok_or(view)
    })
    .await;
    assert_eq!(done["status"], "DONE", "{done}");
    for i in 0..10 {
        assert_eq!(
            s.sandbox.submits(&format!("HALFX-{i}")),
            1,
            "HALFX-{i} sent exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payout_of_a_half_stored_batch_posted_alone_right_away_is_in_flight_and_nothing_is_sent()
{
    // Right after the batch's request, it may still be running (and accept the item): the
    // payout is in flight (409), nothing is sent. Two minutes later it is answered as never
    // stored (handler test `a_payout_of_a_settled_half_stored_batch_is_stored_and_sent_afresh`).
    let mut config = config(Moto::shared());
    config.batch_workers = 1;
    let s = Stack::spawn(config).await.unwrap();
    failing_commit("HALF_C").await;
    let items = own_items("HALFC", 2, 1000);
    let (status, _) = post_batch(&s, &json!({"batchId": "HALF_C", "items": items})).await;
    assert_eq!(status, 503);

    let response = s
        .http
        .post(format!("{}/payouts", s.submit.url))
        .json(&items[0])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 409);
    assert_eq!(s.sandbox.submits("HALFC-0"), 0);
    assert_eq!(s.sandbox.submits("HALFC-1"), 0);
}
