//! The caller's policy, checked once the document is authentic: debug mode, pinned PCRs, age.

use super::{MAX_CLOCK_SKEW_SECS, NitroDocument, NitroError, NitroPolicy};

/// Checks `document` against `policy` at `now_unix`, in the order debug → PCRs → timestamp.
pub(super) fn check(document: &NitroDocument, policy: &NitroPolicy, now_unix: u64) -> Result<(), NitroError> {
    if document.debug && !policy.allow_debug {
        return Err(NitroError::DebugMode);
    }
    for (&index, expected) in &policy.pcrs {
        match document.pcrs.get(&index) {
            None => return Err(NitroError::PcrMissing { index }),
            Some(actual) if actual != expected => return Err(NitroError::PcrMismatch { index }),
            Some(_) => {}
        }
    }
    check_timestamp(document.timestamp_ms, policy.max_age_secs, now_unix)
}

/// A timestamp from the future is rejected whatever the policy (a clock that far off, or a
/// forged time, is never acceptable); the age limit applies only when the policy sets one.
fn check_timestamp(timestamp_ms: u64, max_age_secs: Option<u64>, now_unix: u64) -> Result<(), NitroError> {
    let issued = timestamp_ms / 1000;
    if issued > now_unix.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(NitroError::TimestampInFuture);
    }
    let age_secs = now_unix.saturating_sub(issued);
    match max_age_secs {
        Some(max) if age_secs > max => Err(NitroError::Stale { age_secs }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bounds_are_inclusive() {
        let ts = 1_000_000_500; // ms
        let issued = 1_000_000;
        assert_eq!(check_timestamp(ts, Some(300), issued + 300), Ok(()));
        assert_eq!(check_timestamp(ts, Some(300), issued + 301), Err(NitroError::Stale { age_secs: 301 }));
        assert_eq!(check_timestamp(ts, None, issued + 1_000_000), Ok(()));
        assert_eq!(check_timestamp(ts, Some(0), issued - 60), Ok(()));
        assert_eq!(check_timestamp(ts, None, issued - 61), Err(NitroError::TimestampInFuture));
        assert_eq!(check_timestamp(u64::MAX, None, u64::MAX), Ok(()));
    }
}
