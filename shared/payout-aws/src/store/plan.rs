//! The conditional writes that move or annotate an order, built as data (pure, unit-tested):
//! what an `UpdateItem` changes and under which condition.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{anomaly_to_attr, answer_to_attr, history_to_attr, n, s, timestamp};
use super::schema::attr;
use chrono::{DateTime, Utc};
use payout_app::store::{Annotation, StoreError, Transition};
use payout_domain::order::{Anomaly, OrderStatus};

/// One `UpdateItem`'s expressions and their placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdatePlan {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    /// Joined with `AND`.
    pub conditions: Vec<String>,
    pub set: Vec<String>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl UpdatePlan {
    /// The `#placeholder` of an attribute name (every name goes through one: some, like
    /// `status`, are DynamoDB reserved words).
    fn name(&mut self, attribute: &str) -> String {
        let key = format!("#{attribute}");
        self.names.insert(key.clone(), attribute.to_owned());
        key
    }

    fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let key = format!(":{key}");
        self.values.insert(key.clone(), value);
        key
    }

    /// Appends `entry` to a list attribute and counts it in `count`.
    fn append(&mut self, list: &str, count: &str, key: &str, entry: AttributeValue) {
        let (list, count) = (self.name(list), self.name(count));
        let empty = self.value("empty", AttributeValue::L(Vec::new()));
        let one = self.value("one", n(1));
        let entry = self.value(key, AttributeValue::L(vec![entry]));
        self.set.push(format!(
            "{list} = list_append(if_not_exists({list}, {empty}), {entry})"
        ));
        self.add.push(format!("{count} {one}"));
    }

    /// Counts an entry that is not kept (its list is full).
    fn count(&mut self, count: &str) {
        let count = self.name(count);
        let one = self.value("one", n(1));
        self.add.push(format!("{count} {one}"));
    }

    /// Notes, once, that a report said the payout was paid ([`Transition::says_paid`], [`Annotation::says_paid`]).
    fn reported_paid(&mut self, at: DateTime<Utc>) {
        let name = self.name(attr::REPORTED_PAID_AT);
        let value = self.value("paidAt", s(&timestamp(at)));
        self.set
            .push(format!("{name} = if_not_exists({name}, {value})"));
    }

    /// Keeps `anomaly` as the item's last one (also when its list is full).
    fn last_anomaly(&mut self, anomaly: &Anomaly) {
        let name = self.name(attr::LAST_ANOMALY);
        let value = self.value("lastAnomaly", anomaly_to_attr(anomaly));
        self.set.push(format!("{name} = {value}"));
    }

    pub fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        for (verb, clauses, separator) in [
            ("SET", &self.set, ", "),
            ("ADD", &self.add, ", "),
            ("REMOVE", &self.remove, ", "),
        ] {
            if !clauses.is_empty() {
                parts.push(format!("{verb} {}", clauses.join(separator)));
            }
        }
        parts.join(" ")
    }

    pub fn condition_expression(&self) -> String {
        self.conditions.join(" AND ")
    }
}

/// The guarded write of a [`Transition`]: allowed only from the states that may move to its
/// target (and at its version, amount and intent when given); it moves the state, counts the
/// version, keeps the answer, the history entry and the anomaly, and takes a final order out of
/// the unresolved index.
pub fn transition(t: &Transition) -> Result<UpdatePlan, StoreError> {
    let sources = OrderStatus::allowed_sources(t.to);
    if sources.is_empty() {
        return Err(StoreError::ImpossibleTransition(t.to));
    }
    let mut p = UpdatePlan::default();
    let key = p.name(attr::TRADE_NO);
    p.conditions.push(format!("attribute_exists({key})"));
    let status = p.name(attr::STATUS);
    let from: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| p.value(&format!("from{i}"), s(source.as_str())))
        .collect();
    p.conditions
        .push(format!("{status} IN ({})", from.join(", ")));
    let version = p.name(attr::VERSION);
    if let Some(expected) = t.expected_version {
        let expected = p.value("expected", n(expected));
        p.conditions.push(format!("{version} = {expected}"));
    }
    if let Some(amount) = t.expected_amount {
        let (name, value) = (p.name(attr::AMOUNT), p.value("amount", n(amount.yen())));
        p.conditions.push(format!("{name} = {value}"));
    }
    if let Some(intent) = &t.expected_intent {
        let (name, value) = (p.name(attr::INTENT_ID), p.value("intent", s(intent)));
        p.conditions.push(format!("{name} = {value}"));
    }
    if t.operator_resolution {
        let (name, value) = (
            p.name(attr::MANUAL_REVIEW),
            p.value("review", AttributeValue::Bool(true)),
        );
        p.conditions.push(format!("{name} = {value}"));
    }
    // Evidence ranks: nothing moves to FAILED once a report said paid; a request-level refusal
    // moves only an order of which nothing else is known (`Transition::knows_nothing`).
    if t.to == OrderStatus::Failed || t.refusal {
        let paid = p.name(attr::REPORTED_PAID_AT);
        p.conditions.push(format!("attribute_not_exists({paid})"));
    }
    if t.refusal {
        let pending = p.value("pending", s(OrderStatus::Pending.as_str()));
        p.conditions.push(format!("{status} = {pending}"));
        let platform = p.name(attr::PLATFORM_TRADE_NO);
        p.conditions
            .push(format!("attribute_not_exists({platform})"));
        let (count, zero) = (p.name(attr::HISTORY_COUNT), p.value("zero", n(0)));
        p.conditions.push(format!(
            "(attribute_not_exists({count}) OR {count} = {zero})"
        ));
    }
    if t.says_paid() {
        p.reported_paid(t.at);
    }
    let to = p.value("to", s(t.to.as_str()));
    let one = p.value("one", n(1));
    let (updated, at) = (p.name(attr::UPDATED_AT), p.value("at", s(&timestamp(t.at))));
    p.set.push(format!("{status} = {to}"));
    p.set.push(format!("{version} = {version} + {one}"));
    p.set.push(format!("{updated} = {at}"));
    if let Some(entry) = &t.history {
        p.append(
            attr::HISTORY,
            attr::HISTORY_COUNT,
            "entry",
            history_to_attr(entry),
        );
    }
    if let Some(anomaly) = &t.anomaly {
        p.append(
            attr::ANOMALIES,
            attr::ANOMALY_COUNT,
            "anomaly",
            anomaly_to_attr(anomaly),
        );
        p.last_anomaly(anomaly);
    }
    if let Some(write_id) = &t.write_id {
        let (name, value) = (p.name(attr::LAST_WRITE), p.value("write", s(write_id)));
        p.set.push(format!("{name} = {value}"));
    }
    if let Some(answer) = &t.answer {
        let (name, value) = (
            p.name(attr::VEXORA),
            p.value("vexora", answer_to_attr(answer)),
        );
        p.set.push(format!("{name} = {value}"));
        if let Some(platform) = &answer.plat_form_trade_no {
            let name = p.name(attr::PLATFORM_TRADE_NO);
            let value = p.value("platform", s(platform));
            p.set.push(format!("{name} = {value}"));
        }
    }
    // A batch item's request (personal data) leaves the table with its first move.
    let payload = p.name(attr::QUEUED_PAYLOAD);
    p.remove.push(payload);
    match (t.to.is_final(), t.check_after) {
        (true, _) => {
            // A final order leaves the unresolved index.
            let (unresolved, check) = (p.name(attr::UNRESOLVED), p.name(attr::CHECK_AFTER));
            p.remove.extend([unresolved, check]);
        }
        (false, Some(next)) => {
            let name = p.name(attr::CHECK_AFTER);
            let value = p.value("checkAfter", n(next.timestamp_millis()));
            p.set.push(format!("{name} = {value}"));
        }
        (false, None) => {}
    }
    Ok(p)
}

/// The write of a [`Annotation`]: the history entry and the anomaly, each appended while its list has
/// room and counted always; refused when the order is gone or when this very write already
/// landed (a retry finds its own `lastWrite`).
pub fn annotate(k: &Annotation) -> UpdatePlan {
    let mut p = UpdatePlan::default();
    let key = p.name(attr::TRADE_NO);
    let last = p.name(attr::LAST_WRITE);
    let write = p.value("write", s(&k.write_id));
    let kept = p.name(attr::KEPT_WRITES);
    let ids = p.value("kept", AttributeValue::Ss(vec![k.write_id.clone()]));
    p.conditions.push(format!("attribute_exists({key})"));
    // An annotation lands once: its id stays in the item's set of kept writes, so an SDK retry that
    // comes after other writes still finds it.
    p.conditions.push(format!(
        "(attribute_not_exists({kept}) OR NOT contains({kept}, {write}))"
    ));
    p.set.push(format!("{last} = {write}"));
    p.add.push(format!("{kept} {ids}"));
    if k.says_paid() {
        let at = k
            .history
            .as_ref()
            .map(|h| h.at)
            .or(k.anomaly.as_ref().map(|a| a.at));
        if let Some(at) = at {
            p.reported_paid(at);
        }
    }
    if let Some(entry) = &k.history {
        if k.history_room {
            p.append(
                attr::HISTORY,
                attr::HISTORY_COUNT,
                "entry",
                history_to_attr(entry),
            );
        } else {
            p.count(attr::HISTORY_COUNT);
        }
    }
    if let Some(anomaly) = &k.anomaly {
        if k.anomalies_room {
            p.append(
                attr::ANOMALIES,
                attr::ANOMALY_COUNT,
                "anomaly",
                anomaly_to_attr(anomaly),
            );
        } else {
            p.count(attr::ANOMALY_COUNT);
        }
        p.last_anomaly(anomaly);
    }
    p
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use payout_domain::Amount;
    use payout_domain::order::{HistoryEntry, ReportSource};

    fn t0() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
    }

    fn entry() -> HistoryEntry {
        HistoryEntry {
            at: t0(),
            source: ReportSource::Webhook,
            status: "0000".into(),
            plat_form_trade_no: None,
            amount: Some("1500".into()),
            decision: None,
        }
    }

    /// Every `#name` and `:value` used is declared, and every declared one is used.
    fn assert_consistent(p: &UpdatePlan) {
        let text = format!("{} {}", p.update_expression(), p.condition_expression());
        for key in p.names.keys().chain(p.values.keys()) {
            assert!(
                text.contains(key.as_str()),
                "{key} declared, unused: {text}"
            );
        }
        for token in text.split(|c: char| !(c.is_alphanumeric() || c == '#' || c == ':')) {
            if token.starts_with('#') {
                assert!(p.names.contains_key(token), "{token} undeclared: {text}");
            }
            if token.starts_with(':') {
                assert!(p.values.contains_key(token), "{token} undeclared: {text}");
            }
        }
    }

    #[test]
    fn a_move_is_guarded_by_exactly_the_states_that_may_lead_to_it() {
        let p = transition(&Transition::to(OrderStatus::Processing, t0())).unwrap();
        assert_eq!(
            p.condition_expression(),
            "attribute_exists(#tradeNo) AND #status IN (:from0, :from1)"
        );
        assert_eq!(p.values[":from0"], s("PENDING"));
        assert_eq!(p.values[":from1"], s("UNCONFIRMED"));
        assert_eq!(
            p.update_expression(),
            "SET #status = :to, #version = #version + :one, #updatedAt = :at REMOVE #queuedPayload",
            "a batch item's request leaves with its first move"
        );
        assert_consistent(&p);
    }

    #[test]
    fn nothing_moves_to_pending() {
        assert!(matches!(
            transition(&Transition::to(OrderStatus::Pending, t0())),
            Err(StoreError::ImpossibleTransition(OrderStatus::Pending))
        ));
    }

    #[test]
    fn a_final_move_leaves_the_unresolved_index_and_a_non_final_one_sets_its_next_check() {
        let done = transition(&Transition {
            check_after: Some(t0()),
            ..Transition::to(OrderStatus::Succeeded, t0())
        })
        .unwrap();
        assert!(
            done.update_expression()
                .ends_with("REMOVE #queuedPayload, #unresolved, #checkAfter")
        );
        assert!(!done.values.contains_key(":checkAfter"));
        assert_consistent(&done);

        let later = transition(&Transition {
            check_after: Some(t0()),
            ..Transition::to(OrderStatus::Processing, t0())
        })
        .unwrap();
        assert!(later.set.contains(&"#checkAfter = :checkAfter".to_owned()));
        assert_eq!(
            later.remove,
            ["#queuedPayload"],
            "still unresolved: still indexed"
        );
        assert_consistent(&later);
    }

    #[test]
    fn every_guard_and_every_change_of_a_full_transition_is_in_the_plan() {
        let p = transition(&Transition {
            expected_version: Some(3),
            expected_amount: Amount::new(1500).ok(),
            expected_intent: Some("i-1".into()),
            history: Some(entry()),
            anomaly: None,
            write_id: Some("w-1".into()),
            answer: Some(payout_domain::order::VexoraAnswer {
                plat_form_trade_no: Some("PF".into()),
                ..Default::default()
            }),
            ..Transition::to(OrderStatus::Failed, t0())
        })
        .unwrap();
        let condition = p.condition_expression();
        for guard in [
            "#version = :expected",
            "#amount = :amount",
            "#intentId = :intent",
        ] {
            assert!(condition.contains(guard), "{guard} in {condition}");
        }
        let update = p.update_expression();
        for change in [
            "#history = list_append(if_not_exists(#history, :empty), :entry)",
            "#lastWrite = :write",
            "#vexora = :vexora",
            "#platFormTradeNo = :platform",
            "ADD #historyCount :one",
        ] {
            assert!(update.contains(change), "{change} in {update}");
        }
        assert_consistent(&p);
    }

    #[test]
    fn keeping_a_report_appends_while_there_is_room_and_always_counts() {
        let anomaly = payout_domain::order::Anomaly {
            at: t0(),
            source: ReportSource::Query,
            reason: payout_domain::order::AnomalyReason::AmountMismatch,
            report: Default::default(),
        };
        let room = annotate(&Annotation {
            history: Some(entry()),
            anomaly: Some(anomaly.clone()),
            history_room: true,
            anomalies_room: true,
            write_id: "w".into(),
        });
        assert!(room.update_expression().contains("#history = list_append"));
        assert!(
            room.update_expression()
                .contains("#anomalies = list_append")
        );
        assert_eq!(
            room.condition_expression(),
            "attribute_exists(#tradeNo) AND (attribute_not_exists(#keptWrites) OR NOT contains(#keptWrites, :write))"
        );
        assert_consistent(&room);

        let full = annotate(&Annotation {
            history: Some(entry()),
            anomaly: Some(anomaly),
            history_room: false,
            anomalies_room: false,
            write_id: "w".into(),
        });
        assert_eq!(
            full.update_expression(),
            "SET #lastWrite = :write, #reportedPaidAt = if_not_exists(#reportedPaidAt, :paidAt), #lastAnomaly = :lastAnomaly ADD #keptWrites :kept, #historyCount :one, #anomalyCount :one",
            "an anomaly past the kept list is still counted, kept as the last one, and an event; \
             a report of 0000 is noted as paid once"
        );
        assert_consistent(&full);

        let history_only = annotate(&Annotation {
            history: Some(entry()),
            anomaly: None,
            history_room: true,
            anomalies_room: true,
            write_id: "w".into(),
        });
        assert!(
            !history_only.update_expression().contains("anomalyCount")
                && !history_only.update_expression().contains("version"),
            "a duplicate or stale report is no event"
        );
    }
}
