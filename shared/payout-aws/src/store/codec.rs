//! An order as a DynamoDB item and back; the attribute values of the maps inside it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::schema::{self, attr, member};
use payout_domain::order::{
    Anomaly, AnomalyReason, HistoryEntry, Order, ReportSource, VexoraAnswer,
};
use payout_domain::{Amount, TradeNo};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub use payout_domain::timestamp;

fn map(
    entries: impl IntoIterator<Item = (&'static str, Option<AttributeValue>)>,
) -> AttributeValue {
    AttributeValue::M(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

pub fn answer_to_attr(a: &VexoraAnswer) -> AttributeValue {
    map([
        (member::CODE, a.code.as_deref().map(s)),
        (member::STATUS, a.status.as_deref().map(s)),
        (member::MESSAGE, a.message.as_deref().map(s)),
        (
            member::PLATFORM_TRADE_NO,
            a.plat_form_trade_no.as_deref().map(s),
        ),
    ])
}

pub fn anomaly_to_attr(a: &Anomaly) -> AttributeValue {
    let report = a.report.iter().map(|(k, v)| (k.clone(), s(v))).collect();
    map([
        (member::AT, Some(s(&timestamp(a.at)))),
        (member::SOURCE, Some(s(a.source.label()))),
        (member::REASON, Some(s(a.reason.label()))),
        (member::REPORT, Some(AttributeValue::M(report))),
    ])
}

pub fn history_to_attr(h: &HistoryEntry) -> AttributeValue {
    map([
        (member::AT, Some(s(&timestamp(h.at)))),
        (member::SOURCE, Some(s(h.source.label()))),
        (member::STATUS, Some(s(&h.status))),
        (
            member::PLATFORM_TRADE_NO,
            h.plat_form_trade_no.as_deref().map(s),
        ),
        (member::AMOUNT, h.amount.as_deref().map(s)),
        (
            member::OPERATOR,
            h.decision.as_ref().map(|d| s(&d.operator)),
        ),
        (
            member::EVIDENCE,
            h.decision.as_ref().map(|d| s(&d.evidence)),
        ),
    ])
}

pub fn to_item(o: &Order) -> Item {
    let list =
        |values: Vec<AttributeValue>| (!values.is_empty()).then_some(AttributeValue::L(values));
    let mut item: Item = [
        (attr::TRADE_NO, Some(s(o.trade_no.as_str()))),
        (attr::STATUS, Some(s(o.status.as_str()))),
        (attr::VERSION, Some(n(o.version))),
        (attr::AMOUNT, Some(n(o.amount.yen()))),
        (attr::CURRENCY, Some(s("JPY"))),
        (attr::BANK_CODE, Some(s(&o.bank_code))),
        (attr::BANK_NUMBER_MASKED, Some(s(&o.bank_number_masked))),
        (attr::USER_ID, Some(s(&o.user_id))),
        (attr::FINGERPRINT, Some(s(&o.fingerprint))),
        (attr::CREATED_AT, Some(s(&timestamp(o.created_at)))),
        (attr::UPDATED_AT, Some(s(&timestamp(o.updated_at)))),
        (attr::ANOMALY_COUNT, Some(n(o.anomaly_count))),
        (attr::REMARK, o.remark.as_deref().map(s)),
        (
            attr::PLATFORM_TRADE_NO,
            o.plat_form_trade_no.as_deref().map(s),
        ),
        (attr::VEXORA, o.vexora.as_ref().map(answer_to_attr)),
        (
            attr::ANOMALIES,
            list(o.anomalies.iter().map(anomaly_to_attr).collect()),
        ),
        (
            attr::HISTORY,
            list(o.history.iter().map(history_to_attr).collect()),
        ),
        (
            attr::CHECK_ATTEMPTS,
            (o.check_attempts > 0).then(|| n(o.check_attempts)),
        ),
        (
            attr::LAST_QUERY_AT,
            o.last_query_at.map(|at| n(at.timestamp_millis())),
        ),
        (
            attr::MANUAL_REVIEW,
            o.manual_review.then_some(AttributeValue::Bool(true)),
        ),
        (attr::LAST_WRITE, o.last_write.as_deref().map(s)),
        (attr::INTENT_ID, o.intent_id.as_deref().map(s)),
        (attr::BATCH_ID, o.batch_id.as_deref().map(s)),
        (
            attr::BATCH_IDS,
            (!o.batch_ids.is_empty()).then(|| AttributeValue::Ss(o.batch_ids.clone())),
        ),
        (attr::SENT_AT, o.sent_at.map(|at| s(&timestamp(at)))),
        (
            attr::REPORTED_PAID_AT,
            o.reported_paid_at.map(|at| s(&timestamp(at))),
        ),
        (
            attr::LAST_ANOMALY,
            o.last_anomaly.as_ref().map(anomaly_to_attr),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();
    // Only a non-final order is in the unresolved index.
    if let (false, Some(at)) = (o.status.is_final(), o.check_after) {
        item.insert(attr::UNRESOLVED.to_owned(), s(schema::UNRESOLVED_MARK));
        item.insert(attr::CHECK_AFTER.to_owned(), n(at.timestamp_millis()));
    }
    item
}

pub fn get_s<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(name)),
    }
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &'static str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| StoreError::Corrupt(name)),
        _ => Err(StoreError::Corrupt(name)),
    }
}

/// A number attribute that may be absent.
fn opt_n<T: std::str::FromStr>(item: &Item, name: &'static str) -> Result<Option<T>, StoreError> {
    item.get(name).map(|_| get_n(item, name)).transpose()
}

fn get_time(item: &Item, name: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(name))
}

fn get_time_opt(item: &Item, name: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    item.get(name).map(|_| get_time(item, name)).transpose()
}

fn millis(item: &Item, name: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_n(item, name)?
        .map(|ms| DateTime::from_timestamp_millis(ms).ok_or(StoreError::Corrupt(name)))
        .transpose()
}

/// The entry's source; `None` for a label this build does not know (written by a newer build:
/// the entry is left out of what this build reads, never a reason to refuse the whole order).
fn source(item: &Item) -> Result<Option<ReportSource>, StoreError> {
    Ok(ReportSource::from_label(get_s(item, member::SOURCE)?))
}

fn answer_from_attr(v: &AttributeValue) -> Option<VexoraAnswer> {
    let m = v.as_m().ok()?;
    Some(VexoraAnswer {
        code: opt_s(m, member::CODE),
        status: opt_s(m, member::STATUS),
        message: opt_s(m, member::MESSAGE),
        plat_form_trade_no: opt_s(m, member::PLATFORM_TRADE_NO),
    })
}

fn history_from_attr(v: &AttributeValue) -> Result<Option<HistoryEntry>, StoreError> {
    let m = v.as_m().map_err(|_| StoreError::Corrupt(attr::HISTORY))?;
    let Some(source) = source(m)? else {
        return Ok(None);
    };
    Ok(Some(HistoryEntry {
        at: get_time(m, member::AT)?,
        source,
        status: get_s(m, member::STATUS)?.to_owned(),
        plat_form_trade_no: opt_s(m, member::PLATFORM_TRADE_NO),
        amount: opt_s(m, member::AMOUNT),
        decision: match (opt_s(m, member::OPERATOR), opt_s(m, member::EVIDENCE)) {
            (Some(operator), Some(evidence)) => {
                Some(payout_domain::order::OperatorDecision { operator, evidence })
            }
            _ => None,
        },
    }))
}

/// An anomaly; `None` when its source or reason is a label this build does not know.
fn anomaly_from_attr(v: &AttributeValue) -> Result<Option<Anomaly>, StoreError> {
    let m = v.as_m().map_err(|_| StoreError::Corrupt(attr::ANOMALIES))?;
    let report = match m.get(member::REPORT) {
        Some(AttributeValue::M(r)) => r
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let (Some(source), Some(reason)) = (
        source(m)?,
        AnomalyReason::from_label(get_s(m, member::REASON)?),
    ) else {
        return Ok(None);
    };
    Ok(Some(Anomaly {
        at: get_time(m, member::AT)?,
        source,
        reason,
        report,
    }))
}

fn list<T>(
    item: &Item,
    name: &'static str,
    read: fn(&AttributeValue) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    match item.get(name) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(read)
            .filter_map(Result::transpose)
            .collect(),
        _ => Ok(Vec::new()),
    }
}

pub fn from_item(item: &Item) -> Result<Order, StoreError> {
    let trade_no = TradeNo::parse(get_s(item, attr::TRADE_NO)?)
        .map_err(|_| StoreError::Corrupt(attr::TRADE_NO))?;
    let status = get_s(item, attr::STATUS)?
        .parse()
        .map_err(|_| StoreError::Corrupt(attr::STATUS))?;
    let amount =
        Amount::new(get_n(item, attr::AMOUNT)?).map_err(|_| StoreError::Corrupt(attr::AMOUNT))?;
    Ok(Order {
        trade_no,
        status,
        version: get_n(item, attr::VERSION)?,
        amount,
        bank_code: get_s(item, attr::BANK_CODE)?.to_owned(),
        bank_number_masked: get_s(item, attr::BANK_NUMBER_MASKED)?.to_owned(),
        user_id: get_s(item, attr::USER_ID)?.to_owned(),
        remark: opt_s(item, attr::REMARK),
        fingerprint: get_s(item, attr::FINGERPRINT)?.to_owned(),
        plat_form_trade_no: opt_s(item, attr::PLATFORM_TRADE_NO),
        vexora: item.get(attr::VEXORA).and_then(answer_from_attr),
        created_at: get_time(item, attr::CREATED_AT)?,
        updated_at: get_time(item, attr::UPDATED_AT)?,
        check_after: millis(item, attr::CHECK_AFTER)?,
        anomalies: list(item, attr::ANOMALIES, anomaly_from_attr)?,
        anomaly_count: opt_n(item, attr::ANOMALY_COUNT)?.unwrap_or(0),
        history: list(item, attr::HISTORY, history_from_attr)?,
        check_attempts: opt_n(item, attr::CHECK_ATTEMPTS)?.unwrap_or(0),
        last_query_at: millis(item, attr::LAST_QUERY_AT)?,
        manual_review: matches!(
            item.get(attr::MANUAL_REVIEW),
            Some(AttributeValue::Bool(true))
        ),
        last_write: opt_s(item, attr::LAST_WRITE),
        intent_id: opt_s(item, attr::INTENT_ID),
        last_anomaly: item
            .get(attr::LAST_ANOMALY)
            .map(anomaly_from_attr)
            .transpose()?
            .flatten(),
        reported_paid_at: get_time_opt(item, attr::REPORTED_PAID_AT)?,
        batch_id: opt_s(item, attr::BATCH_ID),
        // Queued: its request is here and no worker has taken it.
        queued: item.contains_key(attr::QUEUED_PAYLOAD) && !item.contains_key(attr::INTENT_ID),
        sent_at: get_time_opt(item, attr::SENT_AT)?,
        batch_ids: match item.get(attr::BATCH_IDS) {
            Some(AttributeValue::Ss(ids)) => {
                let mut ids = ids.clone();
                ids.sort();
                ids
            }
            Some(_) => return Err(StoreError::Corrupt(attr::BATCH_IDS)),
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item written by a newer build (a history entry or anomaly with a label this build
    /// does not know) still reads: the unknown entries are left out, never the whole order.
    #[test]
    fn entries_with_labels_of_a_newer_build_are_skipped_not_fatal() {
        let mut order = payout_domain::order::Order::pending(
            TradeNo::parse("NEWER1").unwrap(),
            &payout_testkit::payout("NEWER1", 1500),
            DateTime::from_timestamp_millis(1_764_126_000_000).unwrap(),
            DateTime::from_timestamp_millis(1_764_126_000_000).unwrap(),
        );
        order.history.push(HistoryEntry {
            at: order.created_at,
            source: ReportSource::Webhook,
            status: "0015".into(),
            plat_form_trade_no: None,
            amount: None,
            decision: None,
        });
        let mut item = to_item(&order);
        let Some(AttributeValue::L(history)) = item.get_mut(attr::HISTORY) else {
            panic!("no history")
        };
        let mut future = history[0].as_m().unwrap().clone();
        future.insert(member::SOURCE.into(), s("hologram"));
        history.push(AttributeValue::M(future.clone()));
        future.insert(member::REASON.into(), s("a_reason_from_the_future"));
        future.insert(member::SOURCE.into(), s("webhook"));
        item.insert(
            attr::ANOMALIES.into(),
            AttributeValue::L(vec![AttributeValue::M(future.clone())]),
        );
        item.insert(attr::LAST_ANOMALY.into(), AttributeValue::M(future));

        let read = from_item(&item).unwrap();
        assert_eq!(read.history, order.history, "the unknown entry is left out");
        assert!(read.anomalies.is_empty());
        assert_eq!(read.last_anomaly, None);
    }
}
