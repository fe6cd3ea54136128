//! Status events: what each stored change of an order tells the merchant's other systems, and
//! the one rule that derives them from the table's stream (old and new image of a write).
//!
//! Every move out of a state is one `Payout Status Changed` event and every recorded anomaly one
//! `Payout Anomaly Recorded` event. The write that makes the change also counts it in the item
//! (`version` for a move, `anomalyCount` for an anomaly: [`Order::event_count`]), so each event's `version` is its place in the
//! order's own sequence (1, 2, 3, ... without gaps): a consumer that holds version 3 and not 2
//! knows it missed one, and a redelivered stream record gives the same `eventId`
//! (`tradeNo#version`). A `PENDING` intent is not an event: it is not yet a payout (it may be
//! withdrawn when nothing reached Vexora), so the first event of an order is its first answer.

use serde::Serialize;

use crate::order::{Anomaly, Order, OrderStatus};

/// The events' `source`.
pub const SOURCE: &str = "vexora.payouts";

/// The kind of an event, as its `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DetailType {
    #[serde(rename = "Payout Status Changed")]
    StatusChanged,
    #[serde(rename = "Payout Anomaly Recorded")]
    AnomalyRecorded,
}

impl DetailType {
    pub const ALL: [Self; 2] = [Self::StatusChanged, Self::AnomalyRecorded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "Payout Status Changed",
            Self::AnomalyRecorded => "Payout Anomaly Recorded",
        }
    }
}

/// An event's `detail`: the order as the change left it, without personal data (no account
/// number, names, mobile, e-mail, user id or remark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// `tradeNo#version`: the same for every delivery of this event.
    pub event_id: String,
    pub trade_no: String,
    /// This event's place in the order's sequence of events, from 1.
    pub version: u64,
    pub status: OrderStatus,
    /// The state before the write (`PENDING` for an order's first answer).
    pub previous_status: Option<OrderStatus>,
    /// Whole yen.
    pub amount: u64,
    pub currency: &'static str,
    pub plat_form_trade_no: Option<String>,
    /// RFC 3339, when the change was stored.
    pub occurred_at: String,
    /// Why the report was kept as an anomaly (anomaly events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutEvent {
    pub detail_type: DetailType,
    pub detail: Detail,
}

impl PayoutEvent {
    /// The `detail` as EventBridge takes it (a JSON object in a string).
    pub fn detail_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(&self.detail).unwrap_or_default()
    }
}

/// The events a stored change stands for, in version order: none for a new `PENDING` intent,
/// a withdrawn one or a write that only annotates; one for a move or an anomaly; two for a move
/// that recorded an anomaly in the same write (the move first).
///
/// The versions come from the new image's [`Order::event_count`], which the same write counted:
/// they are `new - k + 1 ..= new` for `k` events. A stream record delivered again yields the same
/// events with the same ids.
pub fn for_change(old: Option<&Order>, new: Option<&Order>) -> Vec<PayoutEvent> {
    let Some(new) = new else {
        return Vec::new();
    };
    let previous_status = old.map(|o| o.status);
    let moved = previous_status != Some(new.status) && new.status != OrderStatus::Pending;
    let anomaly = new.anomaly_count > old.map_or(0, |o| o.anomaly_count);
    let count = u64::from(moved) + u64::from(anomaly);
    let first = new.event_count().saturating_sub(count) + 1;
    let event = |detail_type, version: u64, occurred_at, reason| PayoutEvent {
        detail_type,
        detail: Detail {
            event_id: format!("{}#{version}", new.trade_no.as_str()),
            trade_no: new.trade_no.as_str().to_owned(),
            version,
            status: new.status,
            previous_status,
            amount: new.amount.yen(),
            currency: "JPY",
            plat_form_trade_no: new.plat_form_trade_no.clone(),
            occurred_at,
            reason,
        },
    };
    let mut events = Vec::with_capacity(2);
    if moved {
        events.push(event(
            DetailType::StatusChanged,
            first,
            crate::timestamp(new.updated_at),
            None,
        ));
    }
    if anomaly {
        // `lastAnomaly` is this write's anomaly. Without it (an item written before it was kept),
        // the list's last entry is this write's only while the list is not full.
        let list_complete = new.anomalies.len() as u64 == new.anomaly_count;
        let recorded: Option<&Anomaly> = new
            .last_anomaly
            .as_ref()
            .or_else(|| new.anomalies.last().filter(|_| list_complete));
        events.push(event(
            DetailType::AnomalyRecorded,
            first + u64::from(moved),
            crate::timestamp(recorded.map_or(new.updated_at, |a| a.at)),
            Some(recorded.map_or("unrecorded", |a| a.reason.label())),
        ));
    }
    events
}
