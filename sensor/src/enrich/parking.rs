//! Bulk events that arrive before their process's lineage events.
//!
//! File and network events come from their own ring buffers and readers, so the event of a
//! process that has just started can reach the record stage before its fork and exec (which
//! travel in the process ring). Such an event would be recorded without the process's program,
//! command line and ancestors. So bulk events wait here until the lineage mark has passed their
//! time — every process event stamped before the mark has been queued, and the lineage queue is
//! always emptied before a bulk event is taken — or [`MAX_PARK_NS`] has passed, or the queue is
//! full; then they are enriched in order as usual. The wait is about one drain interval.

use std::collections::VecDeque;

/// Longest an event waits for its process's lineage events (the process ring is drained at
/// least every 20 ms, so this leaves a wide margin).
pub const MAX_PARK_NS: u64 = 250_000_000;
/// Most events parked at once; beyond it the oldest go on without waiting.
pub const MAX_PARKED: usize = 8192;
/// Room kept once the queue has emptied (a burst's room is given back).
const KEEP_PARKED: usize = 256;

/// Events waiting, oldest first, and the lineage clock.
#[derive(Debug)]
pub struct Parking<E> {
    waiting: VecDeque<(u64, E)>,
    /// The lineage mark (boot ns): process events stamped before it have been enriched.
    lineage_clock: u64,
}

impl<E> Default for Parking<E> {
    fn default() -> Self {
        Self { waiting: VecDeque::new(), lineage_clock: 0 }
    }
}

impl<E> Parking<E> {
    /// The parked events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.waiting.iter().map(|(_, e)| e)
    }

    /// Every process event stamped before `boot_ns` has been enriched.
    pub fn advance_mark(&mut self, boot_ns: u64) {
        self.lineage_clock = self.lineage_clock.max(boot_ns);
    }

    /// Whether an event of time `boot_ns` must wait (its lineage may still be on the way, or
    /// older events wait: order is kept).
    pub fn should_park(&self, boot_ns: u64) -> bool {
        boot_ns > self.lineage_clock || !self.waiting.is_empty()
    }

    /// Parks an event; returns the oldest one when the queue overflows.
    pub fn park(&mut self, boot_ns: u64, ev: E) -> Option<E> {
        self.waiting.push_back((boot_ns, ev));
        if self.waiting.len() > MAX_PARKED { self.waiting.pop_front().map(|(_, e)| e) } else { None }
    }

    /// The next event whose wait is over at `now_boot_ns` (or every event with `all`).
    pub fn next_ready(&mut self, now_boot_ns: u64, all: bool) -> Option<E> {
        let (t, _) = self.waiting.front()?;
        let ready = all || *t <= self.lineage_clock || now_boot_ns.saturating_sub(*t) >= MAX_PARK_NS;
        if ready { self.waiting.pop_front().map(|(_, e)| e) } else { None }
    }

    /// Gives back the room of a burst once the queue has emptied (called now and then, not on
    /// every drain: a storm would regrow it each time).
    pub fn shrink_if_idle(&mut self) {
        crate::capacity::shrink_deque_if_idle(&mut self.waiting, KEEP_PARKED);
    }

    /// Time (boot ns) of the oldest event waiting.
    pub fn oldest(&self) -> Option<u64> {
        self.waiting.front().map(|(t, _)| *t)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wait_for_the_lineage_clock_or_the_deadline() {
        let mut p = Parking::default();
        p.advance_mark(100);
        assert!(!p.should_park(90), "lineage already past it");
        assert!(p.should_park(200));
        assert_eq!(p.park(200, "a"), None);
        assert_eq!(p.park(300, "b"), None);
        assert_eq!(p.oldest(), Some(200));
        assert_eq!(p.next_ready(250, false), None, "still waiting");
        p.advance_mark(250);
        assert_eq!(p.next_ready(250, false), Some("a"));
        assert_eq!(p.next_ready(250, false), None);
        assert_eq!(p.next_ready(300 + MAX_PARK_NS, false), Some("b"), "deadline");
        p.park(400, "c");
        assert_eq!(p.next_ready(0, true), Some("c"), "all at stop");
        assert!(p.is_empty());
    }

    #[test]
    fn overflow_releases_the_oldest() {
        let mut p = Parking::default();
        for i in 0..MAX_PARKED {
            assert_eq!(p.park(1000 + i as u64, i), None);
        }
        assert_eq!(p.park(u64::MAX, MAX_PARKED), Some(0));
        assert_eq!(p.len(), MAX_PARKED);
    }
}
