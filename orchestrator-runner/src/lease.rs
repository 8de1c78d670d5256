//! When an attempt's next heartbeat is due, and how long its lease holds without one.
//! A heartbeat that fails for a passing reason is tried again sooner (or when the
//! orchestrator asked), until the lease would have run out: from then on the lease is
//! lost, whatever the orchestrator later says.

use std::time::Duration;

use tokio::time::Instant;

/// First wait after a failed heartbeat; it doubles with each failure in a row, up to the
/// heartbeat interval.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The heartbeat schedule of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct LeaseKeeper {
    every: Duration,
    ttl: Duration,
    next: Instant,
    expires: Instant,
    failures: u32,
}

impl LeaseKeeper {
    /// The schedule of a lease of `ttl` granted at `granted`, renewed every `every`.
    pub(crate) fn new(every: Duration, ttl: Duration, granted: Instant) -> Self {
        Self {
            every,
            ttl,
            next: granted + every,
            expires: granted + ttl,
            failures: 0,
        }
    }

    /// When the next heartbeat is due.
    pub(crate) fn next_beat(&self) -> Instant {
        self.next
    }

    /// When the lease runs out unless a heartbeat renews it.
    pub(crate) fn expires(&self) -> Instant {
        self.expires
    }

    /// Heartbeats failed in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A heartbeat sent at `sent` renewed the lease.
    pub(crate) fn renewed(&mut self, sent: Instant) {
        self.expires = sent + self.ttl;
        self.next = sent + self.every;
        self.failures = 0;
    }

    /// A heartbeat failed at `now` for a passing reason; the next is due after
    /// `retry_after` if the orchestrator named a wait, else after a backoff. `false` once
    /// the lease has run out.
    pub(crate) fn failed(&mut self, now: Instant, retry_after: Option<Duration>) -> bool {
        self.failures += 1;
        let backoff = FIRST_RETRY
            .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
            .min(self.every);
        let wait = retry_after.unwrap_or(backoff);
        // No point waiting past the lease's end: one last try goes just before it.
        let last_chance = self
            .expires
            .checked_sub(FIRST_RETRY)
            .unwrap_or(now)
            .max(now);
        self.next = (now + wait).min(last_chance);
        now < self.expires
    }

    /// Whether the lease has run out by `now`.
    pub(crate) fn lost_by(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_retry_sooner_with_backoff_until_the_lease_runs_out() {
        let start = Instant::now();
        let every = Duration::from_secs(5);
        let mut keeper = LeaseKeeper::new(every, Duration::from_secs(12), start);
        assert_eq!(keeper.next_beat(), start + every);

        let at = start + every;
        assert!(keeper.failed(at, None));
        assert_eq!(keeper.next_beat(), at + Duration::from_millis(500));
        assert!(keeper.failed(at, None));
        assert_eq!(keeper.next_beat(), at + Duration::from_secs(1));
        for _ in 0..10 {
            assert!(keeper.failed(at, None));
        }
        assert_eq!(
            keeper.next_beat(),
            at + every,
            "the backoff stops at the interval"
        );
        assert!(keeper.failed(at, Some(Duration::from_secs(2))));
        assert_eq!(
            keeper.next_beat(),
            at + Duration::from_secs(2),
            "Retry-After is honoured"
        );
        assert!(keeper.failed(at, Some(Duration::from_secs(600))));
        assert_eq!(
            keeper.next_beat(),
            start + Duration::from_millis(11_500),
            "the last try comes before the lease's end"
        );

        let late = start + Duration::from_secs(12);
        assert!(keeper.lost_by(late));
        assert!(!keeper.failed(late, None));

        keeper.renewed(late);
        assert_eq!(keeper.failures(), 0);
        assert_eq!(keeper.expires(), late + Duration::from_secs(12));
        assert_eq!(keeper.next_beat(), late + every);
        assert!(!keeper.lost_by(late));
    }
}
