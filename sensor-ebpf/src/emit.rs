//! Sending events: ring-buffer output with batched wakeups, and loss accounting.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    maps::RingBuf,
};
use sensor_common::EventKind;

use crate::maps::LOSS;

/// Pending bytes above which a submit wakes the reader; below it, the reader's drain timer
/// collects the data. Avoids one wakeup per event, the main cost on hot paths.
const WAKEUP_BYTES: u64 = 256 * 1024;

/// Wakeup flag for the next submit to `ring`.
#[inline(always)]
pub fn wakeup_flags(ring: &RingBuf) -> u64 {
    if ring.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Why an event was lost.
#[derive(Clone, Copy)]
pub enum Loss {
    RingFull,
    ReadFailed,
}

/// Counts one lost event of `kind`.
#[inline(always)]
pub fn count_loss(kind: EventKind, why: Loss) {
    if let Some(slot) = LOSS.get_ptr_mut(kind.counter_index()) {
        // SAFETY: per-CPU slot; programs on one CPU do not run concurrently with each other
        // for the tracepoints used here (non-preemptible context).
        unsafe {
            match why {
                Loss::RingFull => (*slot).ringbuf_full += 1,
                Loss::ReadFailed => (*slot).read_failed += 1,
            }
        }
    }
}
