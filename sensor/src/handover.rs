//! What a run hands to the next one that adopts its pinned programs (see `crate::pin`): the
//! `HANDOVER` array, pinned with the rings and mapped into memory here, so that every update is
//! a plain atomic store that survives a SIGKILL (the memory is the map's, not the process's).
//!
//! Slots (u64), for the kind at position `i` of `EventKind::ALL`:
//! - `i` and `KINDS + i`: kernel loss counts already put into loss records (`ringbuf_full`,
//!   `read_failed`; see `sources::loss`), so an adopting run reports only what is new;
//! - `2 KINDS + i`: events of that kind this run read from the rings;
//! - `3 KINDS + i`: of those, the ones whose records every output has taken (flushed), or that
//!   needed no record;
//! - `4 KINDS + i`: runs of that kind's programs the kernel skipped (`recursion_misses`, see
//!   `sources::loss`) already put into loss records; `5 KINDS`: the same for the raw syscall
//!   dispatchers (`loader::Runs::Syscalls`);
//! - the last slot: boot time of the last loss poll.
//!
//! A run that ends abnormally leaves `read - written` events that no record holds: they were
//! in the sensor's memory when it died. The next run reports them in a loss record (reason
//! `in_flight`), so even a SIGKILL leaves no silent hole.

use std::{
    os::fd::{AsFd, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use sensor_common::{
    EventKind, LossCounter,
    header::{HANDOVER_SLOTS, RUN_GROUPS},
};

const KINDS: usize = EventKind::ALL.len();
const READ: usize = 2 * KINDS;
const WRITTEN: usize = 3 * KINDS;
const SKIPPED: usize = 4 * KINDS;
const LAST_POLL: usize = HANDOVER_SLOTS as usize - 1;
const SLOTS: usize = HANDOVER_SLOTS as usize;

/// The mapped `HANDOVER` array.
pub struct Handover {
    base: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: shared memory that lives as long as `Handover`, only accessed through atomics.
unsafe impl Send for Handover {}
// SAFETY: as above.
unsafe impl Sync for Handover {}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").field("in_flight", &self.in_flight()).finish()
    }
}

impl Handover {
    /// Maps the array behind `map` (created with `BPF_F_MMAPABLE`).
    pub fn map(map: &impl AsFd) -> std::io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = (SLOTS * 8).div_ceil(page) * page;
        // SAFETY: a fresh shared read-write mapping of an mmapable array map (the kernel checks
        // the length against the map); the mapping keeps the map alive after the fd closes.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast()).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Self { base, len })
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < SLOTS, "handover slot {i}");
        // SAFETY: `i` is within the mapping (SLOTS u64s, page aligned); array map values are
        // 8-byte aligned, and only atomics access them.
        unsafe { self.base.add(i).as_ref() }
    }

    /// One event of `kind` was read from a ring.
    pub fn read(&self, kind: EventKind) {
        self.slot(READ + kind.index()).fetch_add(1, Ordering::Relaxed);
    }

    /// `n` events of the kind at `index` have been written (or needed no record) in total.
    pub fn set_written(&self, index: usize, n: u64) {
        if index < KINDS {
            self.slot(WRITTEN + index).store(n, Ordering::Release);
        }
    }

    /// Events read but not written, per kind (in `EventKind::ALL` order).
    pub fn in_flight(&self) -> [u64; KINDS] {
        std::array::from_fn(|i| {
            let written = self.slot(WRITTEN + i).load(Ordering::Acquire);
            self.slot(READ + i).load(Ordering::Acquire).saturating_sub(written)
        })
    }

    /// What the previous run left in flight, per kind, and a clean slate for this run.
    pub fn take_in_flight(&self) -> [u64; KINDS] {
        let left = self.in_flight();
        for i in 0..KINDS {
            self.slot(READ + i).store(0, Ordering::Release);
            self.slot(WRITTEN + i).store(0, Ordering::Release);
        }
        left
    }

    /// Skipped program runs of the group at `index` (an event kind's position, or `KINDS` for
    /// the raw syscall dispatchers) already reported (the sum over its programs of their
    /// `recursion_misses`, which count from the program's load).
    pub fn skipped_reported(&self, index: usize) -> u64 {
        if index < RUN_GROUPS { self.slot(SKIPPED + index).load(Ordering::Acquire) } else { 0 }
    }

    /// Saves the skipped runs reported so far (see [`Handover::skipped_reported`]).
    pub fn set_skipped_reported(&self, index: usize, n: u64) {
        if index < RUN_GROUPS {
            self.slot(SKIPPED + index).store(n, Ordering::Release);
        }
    }

    /// Kernel loss counts already reported for the kind at `index`, and the boot time of the
    /// poll that found them (0: none yet).
    pub fn reported(&self, index: usize) -> (LossCounter, u64) {
        let c = LossCounter {
            ringbuf_full: self.slot(index).load(Ordering::Acquire),
            read_failed: self.slot(KINDS + index).load(Ordering::Acquire),
        };
        (c, self.slot(LAST_POLL).load(Ordering::Acquire))
    }

    /// Saves the loss counts reported so far (see [`Handover::reported`]).
    pub fn set_reported(&self, index: usize, c: &LossCounter, polled_boot_ns: u64) {
        if index < KINDS {
            self.slot(index).store(c.ringbuf_full, Ordering::Release);
            self.slot(KINDS + index).store(c.read_failed, Ordering::Release);
        }
        self.slot(LAST_POLL).store(polled_boot_ns, Ordering::Release);
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of `len` bytes; no reference into it outlives self.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// The record stage's count of events taken per kind, published as `written` whenever every
/// output has flushed.
#[derive(Debug, Default)]
pub struct WrittenCounter {
    taken: [u64; KINDS],
}

impl WrittenCounter {
    /// The record stage took an event of `kind`.
    pub fn took(&mut self, kind: EventKind) {
        self.taken[kind.index()] += 1;
    }

    /// Every output has flushed: what was taken is written, except the events still `parked`
    /// (per kind) in the enricher.
    pub fn flushed(&self, parked: &[u64; KINDS], handover: &Handover) {
        for (i, (t, p)) in self.taken.iter().zip(parked).enumerate() {
            handover.set_written(i, t.saturating_sub(*p));
        }
    }
}

const _: () = assert!(SKIPPED + RUN_GROUPS <= LAST_POLL, "the layout fits the array");
