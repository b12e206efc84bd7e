//! Sending events: ring-buffer output with batched wakeups, and loss accounting.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    maps::RingBuf,
};
use sensor_common::{EventHeader, EventKind};

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
        Ok(()) => entry.submit(wakeup_flags(ring)),
        Err(_) => {
            entry.discard(0);
            count_loss(kind, Loss::ReadFailed);
        }
    }
}
