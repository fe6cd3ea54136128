//! Time budgets: every call a function makes is bounded, and the bounds along each path add up
//! to less than the function's timeout, with a margin (a test holds the SAM template to these).
//! A submit that outlives its function would leave an order nobody records; a webhook slower
//! than Vexora's 10 seconds is a failed delivery.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// One attempt of an AWS call (connect, send, answer).
pub const AWS_ATTEMPT: Duration = Duration::from_millis(1000);
/// One AWS call, the SDK's retries included: the bound every path below counts with.
pub const AWS_CALL: Duration = Duration::from_millis(1500);
/// What every path keeps free below its function's timeout.
pub const MARGIN: Duration = Duration::from_secs(1);

/// The SDK timeouts every AWS client is built with.
pub fn aws_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(AWS_ATTEMPT)
        .operation_attempt_timeout(AWS_ATTEMPT)
        .operation_timeout(AWS_CALL)
        .build()
}

fn aws_calls(n: u32) -> Duration {
    AWS_CALL * n
}

/// `POST /payouts`, worst case: the secret read after its cache expired, the conditional put,
/// the read after a put that reported an error, the Vexora call, then either the withdrawal of
/// an intent that never left and the recording of the answer (a transition and, when refused,
/// keeping the report).
pub fn submit(vexora_timeout: Duration) -> Duration {
    aws_calls(3) + vexora_timeout + aws_calls(3)
}

/// `GET /payouts/{tradeNo}?refresh=true`, worst case: the read, storing an abandoned order as
/// `UNCONFIRMED`, the refresh claim, the secret, the query, and applying its answer.
pub fn refresh(vexora_timeout: Duration) -> Duration {
    aws_calls(4) + vexora_timeout + aws_calls(2)
}

/// One notification, worst case: the secret (current and previous after a rotation), the order
/// read that allows a refresh after a failed signature, the transition, keeping the report.
pub const fn webhook() -> Duration {
    Duration::from_millis(AWS_CALL.as_millis() as u64 * 5)
}

/// One order checked by the reconciler, worst case: the read, the claim, storing an abandoned
/// order as `UNCONFIRMED`, the secret (two stages after a rotation), the query, applying its
/// answer (a transition and keeping the report). A run never passes its deadline: it cuts the
/// order in hand short one margin before it (safe: every write is guarded, the claim returns).
pub fn reconcile_one(vexora_timeout: Duration) -> Duration {
    aws_calls(5) + vexora_timeout + aws_calls(2)
}

/// One batch item, worst case: the secret (after its cache expired), the claim and its retry,
/// the Vexora call, then putting back an item that certainly never left, and recording the
/// answer (a transition, a second one after an amount mismatch, keeping the report). A worker
/// starts no item with less left.
pub fn batch_item_worst_case(vexora_timeout: Duration) -> Duration {
    aws_calls(3) + vexora_timeout + aws_calls(4)
}

/// How long an invocation may run when its context's deadline cannot be right: Lambda never
/// hands over an event with less than a second left, but some local emulators send none (0) or
/// one already past.
pub const UNKNOWN_DEADLINE_BUDGET: Duration = Duration::from_secs(30);

/// The moment a Lambda invocation must have answered by, from its context (epoch milliseconds).
pub fn deadline_of(
    deadline_epoch_ms: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> std::time::Instant {
    let left = i64::try_from(deadline_epoch_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(now.timestamp_millis())
        .max(0)
        .unsigned_abs();
    let left = if left < 1000 {
        tracing::warn!(
            deadline_epoch_ms,
            "the invocation's deadline is missing or already past; assuming {} s",
            UNKNOWN_DEADLINE_BUDGET.as_secs()
        );
        UNKNOWN_DEADLINE_BUDGET
    } else {
        Duration::from_millis(left)
    };
    std::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_deadline_that_cannot_be_right_gets_the_fallback_budget() {
        let now = chrono::Utc::now();
        let ms = |d: i64| u64::try_from(now.timestamp_millis() + d).unwrap();
        let left = |deadline| {
            super::deadline_of(deadline, now).saturating_duration_since(std::time::Instant::now())
        };
        assert!(left(ms(60_000)) > super::Duration::from_secs(55));
        assert!(left(ms(60_000)) <= super::Duration::from_secs(60));
        for broken in [0, ms(-5_000), ms(200)] {
            let l = left(broken);
            assert!(l > super::Duration::from_secs(25), "{broken}: {l:?}");
            assert!(l <= super::UNKNOWN_DEADLINE_BUDGET);
        }
    }

    use super::*;

    #[test]
    fn each_path_fits_the_default_vexora_timeout_with_margin() {
        let v = crate::config::DEFAULT_VEXORA_TIMEOUT;
        assert_eq!(submit(v), Duration::from_secs(17));
        assert_eq!(refresh(v), Duration::from_secs(17));
        assert_eq!(webhook(), Duration::from_millis(7500));
        assert_eq!(reconcile_one(v), Duration::from_millis(18_500));
        assert!(AWS_ATTEMPT < AWS_CALL);
    }
}
