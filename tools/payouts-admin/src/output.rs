//! What the tool prints: aligned tables for people, JSON for scripts, CSV for accounting.
//! Never personal data: no names, mobile, e-mail, `userId` or `remark` (free text); the account
//! number is stored masked (last 4 digits) and shown as stored.

use std::io::Write;

use payout_domain::order::{Order, OrderStatus};
use payout_domain::timestamp;
use serde_json::{Value, json};

fn print(text: &str) {
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Text from Vexora (messages, reports) shown on a terminal: control characters (escape
/// sequences) become `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A CSV cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`,
/// tab or carriage return gets a leading `'` (OWASP's advice for CSV injection).
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

fn print_json(value: &Value) {
    print(&serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// When the order reached its final state (its last move), if it has.
fn final_at(order: &Order) -> Option<String> {
    order.status.is_final().then(|| timestamp(order.updated_at))
}

fn summary(order: &Order) -> Value {
    json!({
        "tradeNo": order.trade_no.as_str(),
        "status": order.status.as_str(),
        "amount": order.amount.yen(),
        "currency": "JPY",
        "platFormTradeNo": order.plat_form_trade_no,
        "createdAt": timestamp(order.created_at),
        "updatedAt": timestamp(order.updated_at),
        "manualReview": order.manual_review,
    })
}

pub fn list(orders: &[Order], more: bool, json: bool) {
    if json {
        print_json(&Value::Array(orders.iter().map(summary).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.trade_no.as_str().to_owned(),
                o.status.as_str().to_owned(),
                o.amount.yen().to_string(),
                timestamp(o.created_at),
                timestamp(o.updated_at),
                if o.manual_review { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    print(&table(
        &[
            "TRADENO", "STATUS", "AMOUNT", "CREATED", "UPDATED", "REVIEW",
        ],
        &rows,
    ));
    if more {
        print(&format!(
            "{} order(s) shown; more match: raise --limit to see them",
            orders.len()
        ));
    } else {
        print(&format!("{} order(s)", orders.len()));
    }
}

fn detail(order: &Order) -> Value {
    let mut value = summary(order);
    value["bankCode"] = json!(order.bank_code);
    value["bankNumberLast4"] = json!(order.bank_number_masked);
    value["version"] = json!(order.version);
    value["checkAttempts"] = json!(order.check_attempts);
    value["vexora"] = order.vexora.as_ref().map_or(
        Value::Null,
        |v| json!({"code": v.code, "status": v.status, "message": v.message}),
    );
    value["history"] = order
        .history
        .iter()
        .map(|h| {
            let mut entry = json!({
                "at": timestamp(h.at),
                "source": h.source.label(),
                "status": h.status,
                "platFormTradeNo": h.plat_form_trade_no,
                "amount": h.amount,
            });
            if let Some(d) = &h.decision {
                entry["operator"] = json!(d.operator);
                entry["evidence"] = json!(d.evidence);
            }
            entry
        })
        .collect();
    value["anomalies"] = order
        .anomalies
        .iter()
        .map(|a| {
            json!({
                "at": timestamp(a.at),
                "source": a.source.label(),
                "reason": a.reason.label(),
                "report": a.report,
            })
        })
        .collect();
    value["anomalyCount"] = json!(order.anomaly_count);
    value
}

pub fn show(order: &Order, json: bool) {
    let value = detail(order);
    if json {
        print_json(&value);
        return;
    }
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut lines = Vec::new();
    for key in [
        "tradeNo",
        "status",
        "amount",
        "currency",
        "platFormTradeNo",
        "bankCode",
        "bankNumberLast4",
        "createdAt",
        "updatedAt",
        "manualReview",
        "checkAttempts",
        "anomalyCount",
    ] {
        lines.push(format!("{key:<16} {}", text(&value[key])));
    }
    if let Some(v) = &order.vexora {
        lines.push(format!(
            "{:<16} code {} status {} {}",
            "vexora",
            v.code.as_deref().unwrap_or("-"),
            v.status.as_deref().unwrap_or("-"),
            clean(v.message.as_deref().unwrap_or("")),
        ));
    }
    print(&lines.join("\n"));
    let history: Vec<Vec<String>> = order
        .history
        .iter()
        .map(|h| {
            vec![
                timestamp(h.at),
                h.source.label().to_owned(),
                clean(&h.status),
                clean(&h.amount.clone().unwrap_or_default()),
                h.decision
                    .as_ref()
                    .map(|d| clean(&format!("{}: {}", d.operator, d.evidence)))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print("\nHistory");
    print(&table(
        &["AT", "SOURCE", "STATUS", "AMOUNT", "DECISION"],
        &history,
    ));
    let anomalies: Vec<Vec<String>> = order
        .anomalies
        .iter()
        .map(|a| {
            vec![
                timestamp(a.at),
                a.source.label().to_owned(),
                a.reason.label().to_owned(),
                clean(
                    &a.report
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]
        })
        .collect();
    print("\nAnomalies");
    print(&table(&["AT", "SOURCE", "REASON", "REPORT"], &anomalies));
}

pub fn refreshed(trade_no: &str, from: OrderStatus, to: OrderStatus, outcome: &str, json: bool) {
    if json {
        print_json(
            &json!({"tradeNo": trade_no, "from": from.as_str(), "status": to.as_str(),
                           "outcome": outcome}),
        );
    } else if outcome == "unknown" {
        print(&format!(
            "{trade_no}: Vexora's query told nothing (not found, an error or no answer); still {to}"
        ));
    } else {
        print(&format!("{trade_no}: {from} -> {to} ({outcome})"));
    }
}

pub fn resolved(order: &Order, operator: &str, json: bool) {
    if json {
        let mut value = summary(order);
        value["operator"] = json!(operator);
        print_json(&value);
    } else {
        print(&format!(
            "{}: resolved {} by {operator} (recorded in its history)",
            order.trade_no.as_str(),
            order.status
        ));
    }
}

/// The CSV ledger (or JSON with `--json`).
pub fn export(orders: &[Order], json: bool) -> Result<(), String> {
    if json {
        print_json(&Value::Array(
            orders
                .iter()
                .map(|o| {
                    json!({
                        "tradeNo": o.trade_no.as_str(),
                        "platFormTradeNo": o.plat_form_trade_no,
                        "amount": o.amount.yen(),
                        "status": o.status.as_str(),
                        "createdAt": timestamp(o.created_at),
                        "finalAt": final_at(o),
                    })
                })
                .collect(),
        ));
        return Ok(());
    }
    let mut csv = csv::Writer::from_writer(std::io::stdout().lock());
    let fail = |e: csv::Error| format!("writing the CSV failed: {e}");
    csv.write_record([
        "tradeNo",
        "platFormTradeNo",
        "amount",
        "status",
        "createdAt",
        "finalAt",
    ])
    .map_err(fail)?;
    for o in orders {
        csv.write_record([
            cell(o.trade_no.as_str()),
            cell(o.plat_form_trade_no.as_deref().unwrap_or("")),
            o.amount.yen().to_string(),
            o.status.as_str().to_owned(),
            timestamp(o.created_at),
            final_at(o).unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    csv.flush()
        .map_err(|e| format!("writing the CSV failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_formulas_and_terminal_escapes_are_defused() {
        for (raw, safe) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("-1-1", "'-1-1"),
            ("+1", "'+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tX", "'\tX"),
            ("VX123", "VX123"),
            ("", ""),
        ] {
            assert_eq!(cell(raw), safe);
        }
        assert_eq!(clean("ok\u{1b}[2Jdone\n"), "ok?[2Jdone?");
    }
}
