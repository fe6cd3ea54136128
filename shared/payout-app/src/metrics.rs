//! Alarm and run metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: CloudWatch
//! turns them into metrics from the function's logs, so emitting one costs no API call.

use std::io::Write;

/// The CloudWatch namespace of every metric (the SAM template's alarms use it).
pub const NAMESPACE: &str = "VexoraPayouts";

/// A Vexora report (submit answer, notification or query answer) contradicted a final state or
/// the order's amount, or was undocumented. Alarmed.
pub const PAYOUT_ANOMALY: &str = "PayoutAnomaly";
/// A webhook's signature did not verify (missing, wrong, or signed with an unknown secret). Alarmed.
pub const WEBHOOK_SIGNATURE_REJECTED: &str = "WebhookSignatureRejected";

/// Unresolved orders past the reconciler's age limit, seen in one run (marked for manual
/// review). Alarmed.
pub const STUCK_ORDERS: &str = "StuckOrders";
/// One per reconciler run that finished: the heartbeat (alarmed when missing).
pub const RECONCILE_RUN: &str = "ReconcileRun";
/// Per reconciler run: orders checked, resolved to a new state, still unresolved.
pub const RECONCILE_CHECKED: &str = "ReconcileChecked";
pub const RECONCILE_RESOLVED: &str = "ReconcileResolved";
pub const RECONCILE_STILL_PENDING: &str = "ReconcileStillPending";

/// A call to Vexora got no usable answer (not connected, timed out, dropped, HTTP 5xx, not JSON).
/// Alarmed.
pub const VEXORA_UNAVAILABLE: &str = "VexoraUnavailable";
/// A new payout whose submit was recorded (its outcome known or not).
pub const PAYOUT_SUBMITTED: &str = "PayoutSubmitted";
/// A new payout whose submit ended `UNCONFIRMED`. Alarmed as a rate of [`PAYOUT_SUBMITTED`].
pub const PAYOUT_UNCONFIRMED: &str = "PayoutUnconfirmed";

/// Vexora's available balance in yen, read once per reconciler run. Alarmed below the
/// `LowBalanceThreshold` parameter.
pub const VEXORA_AVAILABLE_BALANCE: &str = "VexoraAvailableBalance";

/// Status events published to EventBridge ([`payout_domain::events`]).
pub const PAYOUT_EVENTS_PUBLISHED: &str = "PayoutEventsPublished";
/// Entries EventBridge refused (each is sent again, then its record handed back).
pub const PAYOUT_EVENTS_REFUSED: &str = "PayoutEventsRefused";
/// Stream records handed back to Lambda for another delivery. Alarmed.
pub const PAYOUT_EVENT_RECORDS_RETRIED: &str = "PayoutEventRecordsRetried";

/// Every metric the functions emit.
pub const ALL: [&str; 14] = [
    PAYOUT_ANOMALY,
    WEBHOOK_SIGNATURE_REJECTED,
    STUCK_ORDERS,
    RECONCILE_RUN,
    RECONCILE_CHECKED,
    RECONCILE_RESOLVED,
    RECONCILE_STILL_PENDING,
    VEXORA_UNAVAILABLE,
    PAYOUT_SUBMITTED,
    PAYOUT_UNCONFIRMED,
    VEXORA_AVAILABLE_BALANCE,
    PAYOUT_EVENTS_PUBLISHED,
    PAYOUT_EVENTS_REFUSED,
    PAYOUT_EVENT_RECORDS_RETRIED,
];

/// The dimension sets a metric is published under: what the template's alarms and dashboard
/// select on, no more (each set is a custom metric of its own, billed every month). Every
/// metric is by `Environment` (dev and prod in one account never trip each other's alarms);
/// only the webhook's signature refusals are also by `Function`, which their alarm names.
pub fn dimensions(name: &str) -> &'static [&'static [&'static str]] {
    if name == WEBHOOK_SIGNATURE_REJECTED {
        &[&["Environment", "Function"]]
    } else {
        &[&["Environment"]]
    }
}

/// Where functions send counts.
pub trait Metrics: Send + Sync {
    fn count(&self, name: &'static str, value: u64);
}

/// EMF lines on stdout, by the dimension sets of [`dimensions`]; every line also names the
/// function (a log field, not a dimension, unless the metric's alarm selects on it).
#[derive(Debug, Clone)]
pub struct EmfMetrics {
    pub environment: String,
    pub function: &'static str,
}

impl Metrics for EmfMetrics {
    fn count(&self, name: &'static str, value: u64) {
        let line = emf_line(
            &self.environment,
            self.function,
            name,
            value,
            chrono::Utc::now().timestamp_millis(),
        );
        // One write of a whole line, so concurrent log lines never interleave inside it.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// One EMF document for a count.
pub fn emf_line(
    environment: &str,
    function: &str,
    name: &str,
    value: u64,
    timestamp_ms: i64,
) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions(name),
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        },
        "Environment": environment,
        "Function": function,
        name: value
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_names_namespace_dimension_and_value() {
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("prod", "payout-webhook", PAYOUT_ANOMALY, 1, 42))
                .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 42);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Environment"]])
        );
        assert_eq!(line["Environment"], "prod");
        assert_eq!(directive["Metrics"][0]["Name"], PAYOUT_ANOMALY);
        assert_eq!(line["Function"], "payout-webhook");
        assert_eq!(line[PAYOUT_ANOMALY], 1);
        let line: serde_json::Value = serde_json::from_str(&emf_line(
            "prod",
            "payout-webhook",
            WEBHOOK_SIGNATURE_REJECTED,
            1,
            42,
        ))
        .unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Environment", "Function"]])
        );
    }
}
