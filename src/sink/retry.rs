//! Reconnect pacing: exponential backoff with jitter.
//!
//! Delay *n* is drawn uniformly from `[d/2, d]` where `d = min(max, base · 2^n)` ("equal
//! jitter"): never less than half the nominal delay, so a dead receiver is not hammered, and
//! spread enough that many sensors restarted together do not reconnect in lockstep.

use rand::Rng;
use std::time::Duration;

/// Backoff state for one output.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Consecutive failures since the last success.
    failures: u32,
}

impl Default for Backoff {
    /// 250 ms doubling to 30 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Starts at `base`, doubles per failure, never above `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The nominal (un-jittered) delay after the current number of failures.
    fn nominal(&self) -> Duration {
        let shift = self.failures.min(31);
        self.base.saturating_mul(1u32 << shift).min(self.max)
    }

    /// Records a failure and returns how long to wait before the next attempt. `longest` jumps
    /// straight to the maximum (for configuration errors, which retrying soon cannot fix).
    pub fn fail(&mut self, longest: bool) -> Duration {
        if longest {
            self.failures = 31;
        }
        let d = self.nominal();
        self.failures = self.failures.saturating_add(1);
        let half = d / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=d - half)
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubling_within_jitter_bounds_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(3);
        let mut b = Backoff::new(base, max);
        for n in 0..12u32 {
            let nominal = (base * 2u32.pow(n)).min(max);
            let d = b.fail(false);
            assert!(
                d >= nominal / 2 && d <= nominal,
                "failure {n}: {d:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
        }
        assert_eq!(b.failures(), 12);
        b.reset();
        assert!(b.fail(false) <= base);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
            b.fail(false);
            b.fail(false);
            seen.insert(b.fail(false));
        }
        assert!(seen.len() > 10, "50 draws gave only {} distinct delays", seen.len());
    }

    #[test]
    fn configuration_errors_wait_longest_and_huge_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        assert!(b.fail(true) >= Duration::from_secs(15));
        for _ in 0..100 {
            assert!(b.fail(false) <= Duration::from_secs(30));
        }
    }
}
