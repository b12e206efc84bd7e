//! The fixed header that starts every event, and the stable event kinds.

/// Stable numeric event kinds. Numbers are part of the ABI and are never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A successful `execve`/`execveat` (`sched_process_exec`).
    Exec = 1,
    /// A new process (or thread, when configured) (`sched_process_fork`).
    Fork = 2,
    /// The last thread of a process exited (`sched_process_exit`).
    Exit = 3,
    /// A successful credential change (setuid family, capset).
    Cred = 4,
    /// `ptrace` attach/seize.
    Ptrace = 5,
    /// A kernel module was loaded (`module_load`).
    ModuleLoad = 6,
    /// `bpf(BPF_PROG_LOAD)` by another process.
    BpfLoad = 7,
    /// `memfd_create`.
    MemfdCreate = 8,
    /// A signal generated for the sensor (`signal/signal_generate`).
    Signal = 9,
    /// A `bpf()` command touching the sensor's objects, or opening a pinned object.
    BpfAccess = 10,
    /// A security-relevant file operation (see `crate::file`).
    File = 16,
    /// A network operation (see `crate::net`).
    Net = 32,
}

/// A kind number that this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownKind;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Ok(match value {
            1 => Self::Exec,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::Cred,
            5 => Self::Ptrace,
            6 => Self::ModuleLoad,
            7 => Self::BpfLoad,
            8 => Self::MemfdCreate,
            9 => Self::Signal,
            10 => Self::BpfAccess,
            16 => Self::File,
            32 => Self::Net,
            other => return Err(UnknownKind(other)),
        })
    }
}

impl EventKind {
    /// All kinds, in number order (used to size and label per-kind counters).
    pub const ALL: [EventKind; 12] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Cred,
        EventKind::Ptrace,
        EventKind::ModuleLoad,
        EventKind::BpfLoad,
        EventKind::MemfdCreate,
        EventKind::Signal,
        EventKind::BpfAccess,
        EventKind::File,
        EventKind::Net,
    ];

    /// Position in [`EventKind::ALL`].
    pub const fn index(self) -> usize {
        match self {
            EventKind::Exec => 0,
            EventKind::Fork => 1,
            EventKind::Exit => 2,
            EventKind::Cred => 3,
            EventKind::Ptrace => 4,
            EventKind::ModuleLoad => 5,
            EventKind::BpfLoad => 6,
            EventKind::MemfdCreate => 7,
            EventKind::Signal => 8,
            EventKind::BpfAccess => 9,
            EventKind::File => 10,
            EventKind::Net => 11,
        }
    }

    /// Index of this kind's slot in the per-CPU loss counter array.
    pub const fn counter_index(self) -> u32 {
        self as u32
    }

    /// Snake-case name, as written in loss records.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Cred => "privilege",
            EventKind::Ptrace => "ptrace",
            EventKind::ModuleLoad => "module_load",
            EventKind::BpfLoad => "bpf_load",
            EventKind::MemfdCreate => "memfd_create",
            EventKind::Signal => "signal",
            EventKind::BpfAccess => "bpf_access",
            EventKind::File => "file",
            EventKind::Net => "network",
        }
    }
}

/// Entries of the `HANDOVER` array: four per event kind (two loss counts already reported,
/// events read, events written), and the time of the last loss report in the last slot.
pub const HANDOVER_SLOTS: u32 = 64;
const _: () = assert!(4 * EventKind::ALL.len() < HANDOVER_SLOTS as usize);

/// `BPF_F_MMAPABLE`: userspace maps the `HANDOVER` array and updates it with plain stores.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Number of slots in the per-CPU loss counter array (`kind` is the index; slot 0 is unused).
pub const LOSS_COUNTER_SLOTS: u32 = 64;

/// Per-kind loss counts kept by the programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossCounter {
    /// `bpf_ringbuf_output`/`reserve` failed: the ring buffer was full.
    pub ringbuf_full: u64,
    /// A kernel read failed so the event could not be built.
    pub read_failed: u64,
}

const _: () = assert!(size_of::<LossCounter>() == 16);

/// The header first in every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
