//! Sending events: ring-buffer output with batched wakeups, and loss accounting.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::generated::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    maps::RingBuf,
};
use sensor_common::{EventHeader, EventKind, header::ring_wakeup};

use crate::maps::LOSS;

/// Wakeups: see `sensor_common::header::ring_wakeup`. A wakeup is an `irq_work` and a self-IPI
/// on the submitting CPU (a VM exit on virtual machines), the main cost of a storm's hot path
/// when paid per event: waking on every submit once the backlog passed 256 KiB did that
/// whenever the reader fell a little behind (at a 50,000 events/s load, at every drain tick).
/// Once per 64 KiB of growth, a reader asleep on a growing backlog still hears of it; a wakeup
/// lost to two CPUs submitting at once only waits for the next boundary or the timer. Past half
/// the ring the reader is losing the race and the next events are the ones at risk: every
/// submit wakes it again, which also holds the producer to the reader's pace instead of letting
/// the ring overflow.
#[inline(always)]
fn flags_for(ring: &RingBuf, before: u64, after: u64) -> u64 {
    if ring_wakeup(before, after, || ring.query(u64::from(BPF_RB_RING_SIZE))) {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Wakeup flag for an `output` of `size` bytes to `ring` (queried before the output).
#[inline(always)]
pub fn output_flags(ring: &RingBuf, size: usize) -> u64 {
    let before = ring.query(u64::from(BPF_RB_AVAIL_DATA));
    flags_for(ring, before, before + size as u64)
}

/// Wakeup flag for submitting an entry of `size` bytes reserved in `ring` (the reservation is
/// already counted as waiting data).
#[inline(always)]
fn submit_flags(ring: &RingBuf, size: usize) -> u64 {
    let after = ring.query(u64::from(BPF_RB_AVAIL_DATA));
    flags_for(ring, after.saturating_sub(size as u64), after)
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
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe {
            match why {
                Loss::RingFull => (*slot).ringbuf_full += 1,
                Loss::ReadFailed => (*slot).read_failed += 1,
            }
        }
    }
}

/// Fills a fixed-size event's header.
///
/// # Safety
/// `h` must be writable.
#[inline(always)]
pub unsafe fn fill_header(
    h: *mut EventHeader,
    kind: EventKind,
    size: usize,
    tgid: u32,
    tid: u32,
    flags: u32,
) {
    // SAFETY: per the contract; the helpers have no preconditions.
    unsafe {
        (*h).kind = kind as u32;
        (*h).size = size as u32;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        (*h).tgid = tgid;
        (*h).tid = tid;
        (*h).cpu = bpf_get_smp_processor_id();
        (*h).flags = flags;
    }
}

/// Reserves a `T` in the process ring, lets `fill` write it, and submits it (or discards it when
/// `fill` fails). Failures are counted as losses of `kind`.
#[inline(always)]
pub fn emit<T: 'static>(kind: EventKind, fill: impl FnOnce(*mut T) -> Result<(), i32>) {
    let ring = &crate::maps::PROC_EVENTS;
    let Some(mut entry) = ring.reserve::<T>(0) else {
        count_loss(kind, Loss::RingFull);
        return;
    };
    match fill(entry.as_mut_ptr()) {
        Ok(()) => entry.submit(submit_flags(ring, size_of::<T>())),
        Err(_) => {
            entry.discard(0);
            count_loss(kind, Loss::ReadFailed);
        }
    }
}
