//! Per-account token buckets: one agent cannot starve the signer for everyone else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept at most; idle full buckets are dropped first when the map is full.
const MAX_BUCKETS: usize = 100_000;

/// A token-bucket limiter keyed by account.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` sustained requests per account with bursts of `burst`. A rate of 0
    /// disables limiting.
    #[must_use]
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `account` (compared case-insensitively); `false` when empty.
    pub fn allow(&self, account: &str) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let account = account.to_ascii_lowercase();
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&account) {
            let (rate, burst) = (self.per_second, self.burst);
            // Drop buckets that have refilled completely: forgetting them changes nothing.
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let entry = buckets.entry(account).or_insert((self.burst, now));
        let refilled = (entry.0 + now.duration_since(entry.1).as_secs_f64() * self.per_second).min(self.burst);
        if refilled >= 1.0 {
            *entry = (refilled - 1.0, now);
            true
        } else {
            *entry = (refilled, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_limits_per_account() {
        let r = RateLimiter::new(1.0, 3.0);
        assert!((0..3).all(|_| r.allow("AA")));
        assert!(!r.allow("aa"), "same account, other case");
        assert!(r.allow("bb"), "other accounts unaffected");
    }

    #[test]
    fn zero_rate_disables() {
        let r = RateLimiter::new(0.0, 1.0);
        assert!((0..1000).all(|_| r.allow("a")));
    }
}
