//! Where status events go: the port ([`EventSink`]). Its EventBridge adapter is
//! `payout_aws::events::EventBridgeSink`.

use std::future::Future;

use payout_domain::events::PayoutEvent;

/// At most this many entries per call (EventBridge's `PutEvents` limit).
pub const MAX_ENTRIES: usize = 10;

/// The call failed as a whole (throttled, unreachable, timed out): nothing is known to be
/// published, so every entry is to be sent again.
#[derive(Debug, thiserror::Error)]
#[error("PutEvents failed: {0}")]
pub struct SinkError(pub String);

/// One entry EventBridge refused (its `ErrorCode`, e.g. `ThrottlingException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: String,
}

/// Publishes events; answers, entry by entry, which were refused (`None` = published).
pub trait EventSink: Send + Sync {
    fn put(
        &self,
        events: &[&PayoutEvent],
    ) -> impl Future<Output = Result<Vec<Option<Rejected>>, SinkError>> + Send;
}
