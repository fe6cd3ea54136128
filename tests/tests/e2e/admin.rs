//! The real `payouts-admin` binary against moto and the Vexora sandbox: every command, its
//! refusals (exit 1, one line, nothing changed), `--help`, `--json`, and no personal data.

use std::time::Duration;

use payout_aws::store::schema::attr;
use payout_e2e::lambda::binary;
use serde_json::Value;

use super::{Behaviour, Client, eventually, payout, stack_with};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

async fn admin(s: &payout_e2e::stack::Stack, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(binary("payouts-admin"))
        .args(args)
        .envs(s.env("http://127.0.0.1/unused"))
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A refusal: exit 1, one line naming the reason, nothing on stdout.
fn assert_refused(run: &Run, reason: &str) {
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(reason), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// No personal field of the payouts (see `payout`) in anything the tool printed.
fn assert_no_personal_data(run: &Run) {
    let all = format!("{}{}", run.stdout, run.stderr);
    for canary in [
        "taro@example.jp",
        "09012345678",
        "タロウ",
        "ヤマダ",
        "1234567",
        "user-42",
    ] {
        assert!(!all.contains(canary), "{canary} printed:\n{all}");
    }
}

async fn status(s: &payout_e2e::stack::Stack, trade_no: &str) -> String {
    let run = admin(s, &["show", trade_no, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operator_command_works_on_the_real_table_and_refuses_what_it_must() {
    let s = stack_with(1000, |c| c.submit_instances = 1).await;
    let paid = ("ADM-PAID", Behaviour::ImmediateSuccess.amount());
    let lost = ("ADM-LOST", Behaviour::SystemErrorNotCreated.amount());
    let quiet = ("ADM-QUIET", Behaviour::QueryOnly.amount());
    for (trade_no, amount) in [paid, lost, quiet] {
        let (code, body) = s.submit(&payout(trade_no, amount)).await;
        assert!(code == 201 || code == 202, "{trade_no}: {code} {body}");
    }

    // list: everything, as JSON and as a table, and by status.
    let all = admin(&s, &["list", "--json"]).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.json().as_array().unwrap().len(), 3, "{}", all.stdout);
    let succeeded = admin(&s, &["list", "--status", "SUCCEEDED"]).await;
    assert_eq!(succeeded.code, 0);
    assert!(
        succeeded.stdout.starts_with("TRADENO"),
        "{}",
        succeeded.stdout
    );
    assert!(succeeded.stdout.contains("ADM-PAID") && !succeeded.stdout.contains("ADM-LOST"));
    assert_no_personal_data(&all);

    // show: a table and JSON, no personal data; an unknown order is refused.
    let shown = admin(&s, &["show", "ADM-PAID"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("SUCCEEDED") && shown.stdout.contains("History"));
    assert_no_personal_data(&shown);
    assert_refused(&admin(&s, &["show", "NOPE"]).await, "no order NOPE");
    assert_refused(
        &admin(&s, &["show", "not a tradeNo"]).await,
        "is not a tradeNo",
    );

    // refresh: Vexora's query resolves the order no webhook will tell about.
    eventually(Duration::from_secs(20), || async {
        let ledger = s.sandbox.ledger();
        let status = ledger.orders.get("ADM-QUIET").map(|o| o.status.clone());
        (status.as_deref() == Some("0000")).then_some(()).ok_or(())
    })
    .await;
    let refreshed = admin(&s, &["refresh", "ADM-QUIET", "--json"]).await;
    assert_eq!(refreshed.code, 0, "{}", refreshed.stderr);
    assert_eq!(refreshed.json()["status"], "SUCCEEDED");
    assert_eq!(status(&s, "ADM-QUIET").await, "SUCCEEDED");
    assert_refused(&admin(&s, &["refresh", "ADM-PAID"]).await, "(final)");
    // Vexora never created ADM-LOST: its query tells nothing, and nothing is failed for it.
    let unknown = admin(&s, &["refresh", "ADM-LOST"]).await;
    assert_eq!(unknown.code, 0, "{}", unknown.stderr);
    assert!(
        unknown.stdout.contains("told nothing"),
        "{}",
        unknown.stdout
    );
    assert_eq!(status(&s, "ADM-LOST").await, "UNCONFIRMED");

    // resolve: refused while the order is not in review, and for a final order.
    let not_in_review = admin(
        &s,
        &[
            "resolve",
            "ADM-LOST",
            "--as",
            "FAILED",
            "--evidence",
            "ticket V-1",
        ],
    )
    .await;
    assert_refused(&not_in_review, "not in manual review");
    assert_eq!(status(&s, "ADM-LOST").await, "UNCONFIRMED");

    // The reconciler's give-up flag, as it would set it after 72 h.
    s.dynamodb
        .update_item()
        .table_name(&s.config.table)
        .key(
            attr::TRADE_NO,
            aws_sdk_dynamodb::types::AttributeValue::S("ADM-LOST".into()),
        )
        .update_expression("SET #r = :t")
        .expression_attribute_names("#r", attr::MANUAL_REVIEW)
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let review = admin(&s, &["list", "--review", "--json"]).await;
    let in_review: Vec<String> = review
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["tradeNo"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(in_review, ["ADM-LOST"]);

    let no_evidence = admin(
        &s,
        &["resolve", "ADM-LOST", "--as", "FAILED", "--evidence", " "],
    )
    .await;
    assert_refused(&no_evidence, "--evidence is empty");
    let resolved = admin(
        &s,
        &[
            "resolve",
            "ADM-LOST",
            "--as",
            "FAILED",
            "--evidence",
            "Vexora ticket V-1: never created",
            "--json",
        ],
    )
    .await;
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    assert_eq!(resolved.json()["status"], "FAILED");
    let operator = resolved.json()["operator"].as_str().unwrap().to_owned();
    assert!(operator.starts_with("arn:"), "{operator}");
    let shown = admin(&s, &["show", "ADM-LOST", "--json"]).await.json();
    let last = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["source"], "operator");
    assert_eq!(last["operator"], operator.as_str());
    assert_eq!(last["evidence"], "Vexora ticket V-1: never created");

    // A final order never changes, by whoever asks.
    let again = admin(
        &s,
        &[
            "resolve",
            "ADM-LOST",
            "--as",
            "SUCCEEDED",
            "--evidence",
            "changed my mind",
        ],
    )
    .await;
    assert_refused(&again, "final");
    assert_refused(
        &admin(
            &s,
            &["resolve", "ADM-PAID", "--as", "FAILED", "--evidence", "x"],
        )
        .await,
        "final",
    );
    assert_eq!(status(&s, "ADM-LOST").await, "FAILED");
    assert_eq!(status(&s, "ADM-PAID").await, "SUCCEEDED");

    // export: today's (Japan) orders as CSV, no personal data; another range is empty.
    let today = (chrono::Utc::now() + chrono::Duration::hours(9))
        .date_naive()
        .to_string();
    let export = admin(&s, &["export", "--from", &today, "--to", &today]).await;
    assert_eq!(export.code, 0, "{}", export.stderr);
    let mut lines = export.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("tradeNo,platFormTradeNo,amount,status,createdAt,finalAt")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{}", export.stdout);
    let lost_row = rows.iter().find(|r| r.starts_with("ADM-LOST,")).unwrap();
    assert!(lost_row.contains(",FAILED,"), "{lost_row}");
    assert!(
        !lost_row.ends_with(','),
        "a final order has its finalAt: {lost_row}"
    );
    assert_no_personal_data(&export);
    let empty = admin(
        &s,
        &["export", "--from", "2020-01-01", "--to", "2020-01-02"],
    )
    .await;
    assert_eq!(empty.stdout.lines().count(), 1);
    assert_refused(
        &admin(
            &s,
            &["export", "--from", "2026-02-02", "--to", "2026-02-01"],
        )
        .await,
        "--to is before --from",
    );

    // Usage: --help everywhere, bad arguments are exit 2.
    for command in [
        vec!["--help"],
        vec!["list", "--help"],
        vec!["show", "--help"],
        vec!["refresh", "--help"],
        vec!["resolve", "--help"],
        vec!["export", "--help"],
    ] {
        let help = admin(&s, &command).await;
        assert_eq!(help.code, 0, "{command:?}");
        assert!(
            help.stdout.contains("Usage: payouts-admin"),
            "{}",
            help.stdout
        );
    }
    let bad = admin(
        &s,
        &["resolve", "ADM-LOST", "--as", "MAYBE", "--evidence", "x"],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // The tool never paid anything: one submit per payout reached Vexora.
    let ledger = s.sandbox.ledger();
    assert!(
        ledger.submits.values().all(|n| *n == 1),
        "{:?}",
        ledger.submits
    );
}

#[tokio::test]
async fn without_its_table_the_tool_says_which_variable_is_missing() {
    let out = tokio::process::Command::new(binary("payouts-admin"))
        .args(["list"])
        .env_remove("PAYOUTS_TABLE")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAYOUTS_TABLE is missing"));
}
