//! Repeated log lines, rate-limited: the first occurrence is logged at once, later ones at most
//! once per interval, each with how many were not logged since. A storm of bad kernel events or a
//! failing disk then costs a line every few seconds, not one per event, and the count is kept.

use std::time::{Duration, Instant};

/// Default interval between two lines of the same kind.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of repeated log line.
#[derive(Debug, Clone)]
pub struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for RateLimited {
    fn default() -> Self {
        Self::new(EVERY)
    }
}

impl RateLimited {
    pub const fn new(every: Duration) -> Self {
        Self { every, last: None, suppressed: 0 }
    }

    /// Whether to log this occurrence: `Some(n)` with the occurrences not logged since the last
    /// line, `None` to stay quiet (it is counted).
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_once_per_interval_with_the_count() {
        let mut r = RateLimited::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.allow_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(r.allow_at(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(r.allow_at(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(r.allow_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(r.allow_at(t0 + Duration::from_secs(25)), Some(1));
    }
}
