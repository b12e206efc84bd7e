//! Tamper evidence: the sensor's control block (who the sensor is, written by userspace at start
//! and by every sensor that adopts pinned programs), and the events about acts aimed at the
//! sensor: signals sent to it, and BPF commands that touch its programs, maps, links or pins.
//!
//! The sensor's identity is a map, not a load-time constant, so programs pinned in bpffs keep
//! working for the next sensor process: it writes its own tgid here when it adopts them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// The one entry of the `CONTROL` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Control {
    /// tgid whose own activity the programs do not report (0: report everything; tests that
    /// observe their own process in-process).
    pub ignore_tgid: u32,
    /// tgid of the sensor that reads the rings (0: none yet). Signals and ptrace aimed at it are
    /// reported, and its own writes to its protected paths are not.
    pub sensor_tgid: u32,
    /// `start_boottime` of the sensor's group leader, so a recycled pid is not taken for it.
    pub sensor_start_ns: u64,
    /// Non-zero: the programs emit nothing (a newer version of them has taken over).
    pub muted: u32,
    pub _reserved: u32,
}

const _: () = assert!(size_of::<Control>() == 24);

/// `EventHeader::flags` of signal and ptrace events: the target is the sensor.
pub const FLAG_TARGET_SENSOR: u32 = 1 << 0;
/// `EventHeader::flags` of signal events: the sender is the target's parent (its service manager).
pub const FLAG_SENDER_IS_PARENT: u32 = 1 << 1;
/// `EventHeader::flags` of BPF command events: the object is one the sensor loaded.
pub const FLAG_OWN_OBJECT: u32 = 1 << 2;

/// `si_code` values (include/uapi/asm-generic/siginfo.h).
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;

/// A signal generated for the sensor (`signal/signal_generate`, before delivery: even a SIGKILL
/// leaves this event in the ring). `header.tgid/tid` and `task` are the sending context.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SignalEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// tgid and tid of the task the signal is for.
    pub target_tgid: u32,
    pub target_tid: u32,
    /// `start_boottime` of the target's group leader.
    pub target_start_ns: u64,
    pub signal: u32,
    /// `si_code`: who generated it (user `kill`, `tgkill`, `sigqueue`, the kernel).
    pub code: i32,
    /// Non-zero: sent to the whole thread group.
    pub group: u32,
    /// `TRACE_SIGNAL_*`: 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 info lost.
    pub result: u32,
}

/// Object kinds in the `OWN_IDS` map key: `(kind << 32) | id`.
pub const OBJ_PROG: u64 = 1;
pub const OBJ_MAP: u64 = 2;
pub const OBJ_LINK: u64 = 3;

/// Key of `OWN_IDS` for an object of `kind` with kernel id `id`.
pub const fn own_id_key(kind: u64, id: u32) -> u64 {
    (kind << 32) | id as u64
}

/// A `bpf()` command by another process that touches one of the sensor's objects (get-fd-by-id,
/// map update/delete/freeze, link update/detach).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BpfCmdEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// `enum bpf_cmd`.
    pub cmd: u32,
    /// [`OBJ_PROG`], [`OBJ_MAP`], [`OBJ_LINK`], or 0 (a path).
    pub obj_type: u32,
    pub obj_id: u32,
    /// Return value: an fd, 0, or -errno.
    pub result: i32,
    /// `BPF_OBJ_GET`: the path of the pin (NUL-terminated; empty for other commands). Which
    /// pins are the sensor's is decided in userspace, which knows its pin directory.
    pub path: [u8; BPF_PATH_LEN],
}

/// Bytes of a `BPF_OBJ_GET` path kept (longer ones are cut).
pub const BPF_PATH_LEN: usize = 256;

impl Default for BpfCmdEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            task: TaskInfo::default(),
            cmd: 0,
            obj_type: 0,
            obj_id: 0,
            result: 0,
            path: [0; BPF_PATH_LEN],
        }
    }
}

/// `bpf()` commands (include/uapi/linux/bpf.h, `enum bpf_cmd`).
pub mod bpf_cmd {
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const PROG_LOAD: u32 = 5;
    pub const OBJ_GET: u32 = 7;
    pub const PROG_GET_FD_BY_ID: u32 = 13;
    pub const MAP_GET_FD_BY_ID: u32 = 14;
    pub const MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
    pub const MAP_FREEZE: u32 = 22;
    pub const MAP_UPDATE_BATCH: u32 = 26;
    pub const MAP_DELETE_BATCH: u32 = 27;
    pub const LINK_UPDATE: u32 = 29;
    pub const LINK_GET_FD_BY_ID: u32 = 30;
    pub const LINK_DETACH: u32 = 34;

    /// The command's name as in the kernel's enum, lower case without `BPF_`.
    pub const fn name(cmd: u32) -> &'static str {
        match cmd {
            MAP_UPDATE_ELEM => "map_update_elem",
            MAP_DELETE_ELEM => "map_delete_elem",
            PROG_LOAD => "prog_load",
            OBJ_GET => "obj_get",
            PROG_GET_FD_BY_ID => "prog_get_fd_by_id",
            MAP_GET_FD_BY_ID => "map_get_fd_by_id",
            MAP_LOOKUP_AND_DELETE_ELEM => "map_lookup_and_delete_elem",
            MAP_FREEZE => "map_freeze",
            MAP_UPDATE_BATCH => "map_update_batch",
            MAP_DELETE_BATCH => "map_delete_batch",
            LINK_UPDATE => "link_update",
            LINK_GET_FD_BY_ID => "link_get_fd_by_id",
            LINK_DETACH => "link_detach",
            _ => "other",
        }
    }
}

/// `PtraceEvent::request` values for the process-access system calls other than `ptrace` (above
/// every real ptrace request number).
pub const REQ_PROCESS_VM_WRITEV: u64 = 1 << 32;
pub const REQ_PROCESS_VM_READV: u64 = (1 << 32) | 1;
pub const REQ_PIDFD_GETFD: u64 = (1 << 32) | 2;

const _: () = assert!(size_of::<SignalEvent>() == 200);
const _: () = assert!(size_of::<BpfCmdEvent>() == 440);
const _: () = assert!(size_of::<SignalEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<BpfCmdEvent>().is_multiple_of(8));

impl KindPrograms for kind::Signal {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SIGNAL_GENERATE];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}

impl KindPrograms for kind::BpfAccess {
    // Reported by `bpf_load`'s programs (counted there).
    const PROGRAMS: &'static [&'static str] = &[];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}
