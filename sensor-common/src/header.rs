//! The fixed header that starts every event, and the stable event kinds.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A kind number that this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

/// Generates the kind types from the table in [`for_each_event_kind!`]: [`EventKind`],
/// `TryFrom<u32>`, [`EventKind::ALL`] (in declaration order, its length counted from the table),
/// [`EventKind::index`], [`EventKind::name`], and a marker type per kind in [`kind`] (for the
/// agent's per-kind traits). Every other place that handles a kind is an exhaustive `match` on
/// [`EventKind`] (or on the record's `oneof event`), or is generated from the same table, so the
/// compiler lists what a new kind still needs.
macro_rules! event_kinds {
    ([] $($(#[$doc:meta])* $kind:ident = $num:literal => $name:literal,)+) => {
        /// One marker type per event kind, named like its [`EventKind`] variant: the agent
        /// implements its per-kind traits (decoding, enrichment, attachment) on these.
        pub mod kind {
            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Copy)]
                pub struct $kind;
            )+
        }

        /// Stable numeric event kinds. Numbers are part of the ABI and are never reused.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $kind = $num,)+
        }

        /// Positions in [`EventKind::ALL`], numbered by the compiler in declaration order.
        enum Position {
            $($kind,)+
        }

        impl TryFrom<u32> for EventKind {
            type Error = UnknownKind;

            fn try_from(value: u32) -> Result<Self, Self::Error> {
                match value {
                    $($num => Ok(Self::$kind),)+
                    other => Err(UnknownKind(other)),
                }
            }
        }

        impl EventKind {
            /// All kinds, in number order (used to size and label per-kind counters).
            pub const ALL: [EventKind; [$($num),+].len()] = [$(EventKind::$kind),+];

            /// Position in [`EventKind::ALL`].
            pub const fn index(self) -> usize {
                match self {
                    $(EventKind::$kind => Position::$kind as usize,)+
                }
            }

            /// Snake-case name, as written in loss records.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventKind::$kind => $name,)+
                }
            }
        }
    };
}

/// The event kinds, declared once: each line gives the variant, its stable number and its
/// snake-case name. Calls the macro `$callback` with `[$extra]` (tokens passed through, e.g. the
/// caller's variables) and the table, so that code elsewhere (the agent's decoder, enricher and
/// loader) is generated per kind from this one list.
#[macro_export]
macro_rules! for_each_event_kind {
    ($callback:ident $(, $($extra:tt)*)?) => {
        $callback! {
            [$($($extra)*)?]
            /// A successful `execve`/`execveat` (`sched_process_exec`).
            Exec = 1 => "exec",
            /// A new process (or thread, when configured) (`sched_process_fork`).
            Fork = 2 => "fork",
            /// The last thread of a process exited (`sched_process_exit`).
            Exit = 3 => "exit",
            /// A successful credential change (setuid family, capset).
            Cred = 4 => "privilege",
            /// `ptrace` attach/seize.
            Ptrace = 5 => "ptrace",
            /// A kernel module was loaded (`module_load`).
            ModuleLoad = 6 => "module_load",
            /// `bpf(BPF_PROG_LOAD)` by another process.
            BpfLoad = 7 => "bpf_load",
            /// `memfd_create`.
            MemfdCreate = 8 => "memfd_create",
            /// A signal generated for the sensor (`signal/signal_generate`).
            Signal = 9 => "signal",
            /// A `bpf()` command touching the sensor's objects, or opening a pinned object.
            BpfAccess = 10 => "bpf_access",
            /// `io_uring_setup`: the process can now act through a ring the system call
            /// tracepoints do not see.
            IoUringSetup = 11 => "io_uring_setup",
            /// A security-relevant file operation (see `crate::file`).
            File = 16 => "file",
            /// A network operation (see `crate::net`).
            Net = 32 => "network",
        }
    };
}

for_each_event_kind!(event_kinds);

impl EventKind {
    /// Index of this kind's slot in the per-CPU loss counter array.
    pub const fn counter_index(self) -> u32 {
        self as u32
    }
}

// Every kind has a loss counter slot (slot 0 is unused).
const _: () = {
    let mut i = 0;
    while i < EventKind::ALL.len() {
        let n = EventKind::ALL[i] as u32;
        assert!(n > 0 && n < LOSS_COUNTER_SLOTS);
        // `ALL` is in number order (per-kind counters are reported in that order).
        assert!(i == 0 || (EventKind::ALL[i - 1] as u32) < n);
        i += 1;
    }
};

/// Entries of the `HANDOVER` array: five per event kind (two loss counts already reported,
/// events read, events written, skipped program runs reported), the skipped runs of the raw
/// syscall dispatchers reported, and the time of the last loss report in the last slot.
pub const HANDOVER_SLOTS: u32 = 128;
const _: () = assert!(4 * EventKind::ALL.len() + RUN_GROUPS < HANDOVER_SLOTS as usize - 1);

/// Groups of programs whose skipped runs are counted: one per event kind, then the raw
/// syscall dispatchers (which run for system calls of every kind).
pub const RUN_GROUPS: usize = EventKind::ALL.len() + 1;

/// `BPF_F_MMAPABLE`: userspace maps the `HANDOVER` array and updates it with plain stores.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Number of slots in the per-CPU loss counter array (`kind` is the index; slot 0 is unused).
pub const LOSS_COUNTER_SLOTS: u32 = 64;

/// Per-kind loss counts kept by the programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct LossCounter {
    /// `bpf_ringbuf_output`/`reserve` failed: the ring buffer was full.
    pub ringbuf_full: u64,
    /// A kernel read failed so the event could not be built.
    pub read_failed: u64,
}

const _: () = assert!(size_of::<LossCounter>() == 16);

/// The header first in every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EventHeader {
    /// An [`EventKind`] number.
    pub kind: u32,
    /// Total size in bytes of the event, header included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` when the event was produced (CLOCK_BOOTTIME).
    pub boot_ns: u64,
    /// Thread-group id (the userspace "pid").
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// CPU the event was produced on.
    pub cpu: u32,
    /// Kind-specific flags (see each event's `FLAG_*` constants).
    pub flags: u32,
}

/// Size of [`EventHeader`] in bytes.
pub const HEADER_SIZE: usize = size_of::<EventHeader>();
const _: () = assert!(HEADER_SIZE == 32);
const _: () = assert!(align_of::<EventHeader>() == 8);

/// A submit wakes a ring's reader each time the data waiting in the ring grows past a multiple
/// of `1 << RING_WAKEUP_SHIFT` bytes (64 KiB, an eighth of the smallest ring).
pub const RING_WAKEUP_SHIFT: u32 = 16;

/// Whether a submit that grows the data waiting in a ring from `before` to `after` bytes wakes
/// the reader: when it passes a multiple of `1 << RING_WAKEUP_SHIFT`, and whenever the ring is
/// more than half full (`ring_size` is asked only past the first boundary). Between wakeups the
/// reader's drain timer collects the data. See `sensor-ebpf/src/emit.rs` for why.
#[inline(always)]
pub fn ring_wakeup(before: u64, after: u64, ring_size: impl FnOnce() -> u64) -> bool {
    before >> RING_WAKEUP_SHIFT != after >> RING_WAKEUP_SHIFT
        || (after >> RING_WAKEUP_SHIFT != 0 && after.saturating_mul(2) > ring_size())
}

#[cfg(test)]
mod wakeup_tests {
    use super::{RING_WAKEUP_SHIFT, ring_wakeup};

    const STEP: u64 = 1 << RING_WAKEUP_SHIFT;
    const RING: u64 = 2 << 20;

    #[test]
    fn wakes_once_per_step_of_growth() {
        let mut woken = 0u64;
        let mut pending = 0u64;
        // 500-byte events up to just under half the ring: one wakeup per 64 KiB passed.
        while pending + 500 <= RING / 2 {
            woken += u64::from(ring_wakeup(pending, pending + 500, || RING));
            pending += 500;
        }
        assert_eq!(woken, pending / STEP);
        assert!(woken > 0);
    }

    #[test]
    fn small_backlogs_wait_for_the_timer() {
        assert!(!ring_wakeup(0, 400, || unreachable!("the size is asked only past a boundary")));
        assert!(!ring_wakeup(STEP - 1000, STEP - 500, || RING));
        assert!(ring_wakeup(STEP - 100, STEP + 400, || RING));
    }

    #[test]
    fn past_half_the_ring_every_submit_wakes() {
        assert!(!ring_wakeup(RING / 2 - 1000, RING / 2 - 500, || RING));
        assert!(ring_wakeup(RING / 2 + 100, RING / 2 + 600, || RING));
        // A ring smaller than two steps: past half of it as well.
        assert!(ring_wakeup(STEP + 100, STEP + 200, || STEP + 150));
    }
}

#[cfg(test)]
mod index_tests {
    use super::EventKind;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{}", k.name());
        }
    }
}
