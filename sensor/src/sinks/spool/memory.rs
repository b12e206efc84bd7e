//! The memory lane of a spool: while its disk cannot take records (free space below the
//! reserve, a full disk, an I/O error), a network output keeps delivering from memory instead of
//! going blind. Filling the disk is the cheapest way to silence a sensor that only spools: with
//! the lane, the remote keeps receiving as long as it is reachable, and only what overflows the
//! lane (or is still held when the sensor stops) is lost, counted in the sink's loss record.
//!
//! - The pipeline thread pushes the records the spool refused; when the lane is full the oldest
//!   held record makes room (it is counted as lost), so the lane always holds the latest
//!   activity and the lost records come in `seq` order, as a loss record counts them.
//! - The sender delivers the lane once the spooled backlog is delivered (during the episode
//!   nothing new enters the spool, so this keeps `seq` order), copying a batch and forgetting it
//!   only once delivered: nothing in flight is lost if delivery fails.
//! - When the disk works again, what the lane still holds is spooled ahead of the loss record
//!   and of the new records; a batch in flight at that moment may arrive twice (delivery is
//!   at-least-once; receivers de-duplicate by `(instance, seq)`).

use std::collections::VecDeque;

use super::super::transport::Outgoing;

/// The most a lane holds in payload bytes (or the spool's own bound, when smaller).
pub const LANE_BYTES: usize = 8 * 1024 * 1024;

/// A record held in memory: what the spool and a loss record need about it.
#[derive(Debug, Clone)]
pub struct Held {
    pub seq: u64,
    pub boot_ns: u64,
    /// `integrity.prev_hash` of the record (a loss record names the gap's predecessor by it).
    pub prev_hash: String,
    pub payload: Vec<u8>,
}

/// Records held in memory, oldest first, bounded by payload bytes.
#[derive(Debug)]
pub struct MemoryLane {
    held: VecDeque<Held>,
    bytes: usize,
    max_bytes: usize,
}

impl MemoryLane {
    pub fn new(max_bytes: usize) -> Self {
        Self { held: VecDeque::new(), bytes: 0, max_bytes }
    }

    /// Holds `h`; returns the oldest records evicted to make room (lost, in `seq` order). A
    /// record larger than the whole lane is not held: it comes back as the only one evicted.
    pub fn push(&mut self, h: Held) -> Vec<Held> {
        if h.payload.len() > self.max_bytes {
            return vec![h];
        }
        let mut evicted = Vec::new();
        while self.bytes + h.payload.len() > self.max_bytes {
            let Some(old) = self.held.pop_front() else { break };
            self.bytes -= old.payload.len();
            evicted.push(old);
        }
        self.bytes += h.payload.len();
        self.held.push_back(h);
        evicted
    }

    /// The held records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Held> {
        self.held.iter()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// A copy of the oldest records, up to `records` and about `bytes` (at least one).
    pub fn batch(&self, records: usize, bytes: usize) -> Vec<Outgoing> {
        let mut size = 0;
        self.held
            .iter()
            .take(records)
            .take_while(|h| {
                let fits = size == 0 || size + h.payload.len() <= bytes;
                size += h.payload.len();
                fits
            })
            .map(|h| Outgoing { seq: h.seq, payload: h.payload.clone() })
            .collect()
    }

    /// Forgets the held records up to `seq` (delivered); returns how many.
    pub fn delivered(&mut self, seq: u64) -> usize {
        let mut n = 0;
        while self.held.front().is_some_and(|h| h.seq <= seq) {
            if let Some(h) = self.held.pop_front() {
                self.bytes -= h.payload.len();
                n += 1;
            }
        }
        self.shrink_when_empty();
        n
    }

    /// Takes every held record (to be spooled, or counted as lost), oldest first.
    pub fn take(&mut self) -> VecDeque<Held> {
        self.bytes = 0;
        let all = std::mem::take(&mut self.held);
        self.shrink_when_empty();
        all
    }

    /// An episode's memory goes back to the allocator once the lane is empty.
    fn shrink_when_empty(&mut self) {
        if self.held.is_empty() {
            self.held = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(seq: u64, len: usize) -> Held {
        Held { seq, boot_ns: seq * 10, prev_hash: format!("h{seq}"), payload: vec![0; len] }
    }

    #[test]
    fn a_full_lane_evicts_the_oldest_in_seq_order() {
        let mut lane = MemoryLane::new(100);
        for seq in 1..=4 {
            assert!(lane.push(held(seq, 25)).is_empty());
        }
        let evicted = lane.push(held(5, 40));
        assert_eq!(evicted.iter().map(|h| h.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lane.len(), 3);
        // Larger than the lane: not held, handed back.
        let too_big = lane.push(held(6, 101));
        assert_eq!(too_big.iter().map(|h| h.seq).collect::<Vec<_>>(), [6]);
        assert_eq!(lane.len(), 3);
    }

    #[test]
    fn batches_are_copies_until_delivered() {
        let mut lane = MemoryLane::new(1000);
        for seq in 1..=5 {
            lane.push(held(seq, 30));
        }
        let b = lane.batch(10, 70);
        assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lane.batch(1, 1).len(), 1, "at least one record per batch");
        assert_eq!(lane.len(), 5, "a batch in flight is still held");
        assert_eq!(lane.delivered(2), 2);
        assert_eq!(lane.batch(10, 1000).first().map(|o| o.seq), Some(3));
        // Taken for the spool: a delivery acknowledged afterwards forgets nothing.
        assert_eq!(lane.take().len(), 3);
        assert_eq!(lane.delivered(5), 0);
        assert_eq!(lane.len(), 0);
        assert!(lane.push(held(6, 1000)).is_empty(), "all the room is free again");
    }
}
