//! Giving back what a burst grew.
//!
//! A `Vec` or `VecDeque` keeps the capacity of the largest backlog it ever held: a queue that
//! once took a burst of thousands of events holds their room for the rest of the run, and the
//! sensor's resident size climbs in steps with every new high-water mark. Their owners shrink
//! them back to a small working size now and then, when they are empty (not on every drain: a
//! storm would regrow them each time); the periodic heap trim (`pipeline::memory`) then returns
//! the pages to the system.

use std::collections::VecDeque;

/// Capacity beyond which an empty buffer is shrunk, as a multiple of its working size (so a
/// buffer that regularly holds a bit more than its working size is not reallocated each time).
const SLACK: usize = 4;

/// Shrinks `v` to `keep` elements' room when it is empty and holds far more.
pub fn shrink_if_idle<T>(v: &mut Vec<T>, keep: usize) {
    if v.is_empty() && v.capacity() > keep.saturating_mul(SLACK) {
        v.shrink_to(keep);
    }
}

/// [`shrink_if_idle`] for a `VecDeque`.
pub fn shrink_deque_if_idle<T>(v: &mut VecDeque<T>, keep: usize) {
    if v.is_empty() && v.capacity() > keep.saturating_mul(SLACK) {
        v.shrink_to(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_and_oversized_buffers_shrink() {
        let mut v: Vec<u64> = Vec::with_capacity(10_000);
        v.push(1);
        shrink_if_idle(&mut v, 16);
        assert!(v.capacity() >= 10_000, "not empty: kept");
        v.clear();
        shrink_if_idle(&mut v, 16);
        assert!(v.capacity() < 10_000 && v.capacity() >= 16, "{}", v.capacity());
        let mut small: Vec<u64> = Vec::with_capacity(60);
        shrink_if_idle(&mut small, 16);
        assert!(small.capacity() >= 60, "within the slack: kept");

        let mut d: VecDeque<u64> = VecDeque::with_capacity(10_000);
        shrink_deque_if_idle(&mut d, 16);
        assert!(d.capacity() < 10_000 && d.capacity() >= 16, "{}", d.capacity());
    }
}
