//! Events from system-call tracepoints: credential changes, ptrace, module loads, BPF program
//! loads by others, memfd_create. Each has a fixed layout: header, task, then its own fields.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// Slots of the tables indexed by system call number (the dispatchers' program tables, the
/// file and network argument layouts): above every number of the supported architectures.
pub const SYSCALL_SLOTS: u32 = 512;

/// Credentials as in `struct cred`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
}

const _: () = assert!(size_of::<Creds>() == 48);

/// A successful credential change.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CredEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    pub old: Creds,
    pub new: Creds,
    /// System call number (`__syscall_nr` of the tracepoint record; userspace names it).
    pub syscall_nr: u32,
    pub _reserved: u32,
}

/// Access to another process's memory or files: `ptrace` attach or seize, `process_vm_writev`
/// (any target), `process_vm_readv` (of the sensor), `pidfd_getfd`. `header.flags` has
/// [`crate::tamper::FLAG_TARGET_SENSOR`] when the target is the sensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PtraceEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// The ptrace request, or one of the `crate::tamper::REQ_*` values.
    pub request: u64,
    pub target_pid: u32,
    /// Return value: 0, a count or an fd, or -errno.
    pub result: i32,
    /// `pidfd_getfd`: the target's fd that was asked for.
    pub target_fd: u32,
    pub _reserved: u32,
}

/// Length of a kernel module name (`MODULE_NAME_LEN`).
pub const MODULE_NAME_LEN: usize = 56;

/// A kernel module was loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ModuleEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    pub name: [u8; MODULE_NAME_LEN],
}

impl Default for ModuleEvent {
    fn default() -> Self {
        Self { header: EventHeader::default(), task: TaskInfo::default(), name: [0; MODULE_NAME_LEN] }
    }
}

/// `BPF_OBJ_NAME_LEN`.
pub const BPF_NAME_LEN: usize = 16;

/// `bpf(BPF_PROG_LOAD)` by a process other than the sensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BpfLoadEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    pub prog_type: u32,
    /// New fd or -errno.
    pub result: i32,
    pub prog_name: [u8; BPF_NAME_LEN],
}

/// Longest memfd name (`MFD_NAME_MAX_LEN` is 249).
pub const MEMFD_NAME_LEN: usize = 256;

/// The `memfd_create` programs (on `syscalls/sys_enter_memfd_create` and its exit).
pub const PROG_SYS_ENTER_MEMFD: &str = "sys_enter_memfd_create";
pub const PROG_SYS_EXIT_MEMFD: &str = "sys_exit_memfd_create";

/// `memfd_create`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MemfdEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    pub flags: u32,
    /// New fd or -errno.
    pub result: i32,
    pub name: [u8; MEMFD_NAME_LEN],
}

impl Default for MemfdEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            task: TaskInfo::default(),
            flags: 0,
            result: 0,
            name: [0; MEMFD_NAME_LEN],
        }
    }
}

/// The `io_uring_setup` programs (on `syscalls/sys_enter_io_uring_setup` and its exit).
pub const PROG_SYS_ENTER_IO_URING_SETUP: &str = "sys_enter_io_uring_setup";
pub const PROG_SYS_EXIT_IO_URING_SETUP: &str = "sys_exit_io_uring_setup";

/// `io_uring_setup`: operations submitted through the ring (opens, connects, reads, writes)
/// bypass the system call tracepoints, so the sensor records who sets one up.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IoUringSetupEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// Submission queue entries asked for.
    pub entries: u32,
    /// `IORING_SETUP_*` flags of `struct io_uring_params` (0 when it could not be read).
    pub flags: u32,
    /// The ring's fd or -errno.
    pub result: i32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<IoUringSetupEvent>() == 184);

/// What a `sys_enter_*` program remembers for the matching `sys_exit_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PendingSyscall {
    /// The event kind the exit will produce.
    pub kind: u32,
    pub arg0: u32,
    pub arg1: u64,
    pub arg2: u64,
    pub creds: Creds,
    pub name: [u8; MEMFD_NAME_LEN],
}

const _: () = assert!(size_of::<CredEvent>() == 272);
const _: () = assert!(size_of::<PtraceEvent>() == 192);
const _: () = assert!(size_of::<ModuleEvent>() == 224);
const _: () = assert!(size_of::<BpfLoadEvent>() == 192);
const _: () = assert!(size_of::<MemfdEvent>() == 432);
const _: () = assert!(size_of::<PendingSyscall>() == 328);
const _: () = assert!(size_of::<CredEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<PtraceEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<ModuleEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<BpfLoadEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<MemfdEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<PendingSyscall>().is_multiple_of(8));

// `BPF_OBJ_GET` paths wait in the pending `name` between the enter and the exit.
const _: () = assert!(crate::tamper::BPF_PATH_LEN <= MEMFD_NAME_LEN);

impl KindPrograms for kind::Cred {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SYS_ENTER_CRED, names::PROG_SYS_EXIT_CRED];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (names::PROG_SYS_ENTER_CRED, "raw_enter_cred", "fentry_cred"),
        (names::PROG_SYS_EXIT_CRED, "raw_exit_cred", "fexit_cred"),
    ];
}

impl KindPrograms for kind::Ptrace {
    const PROGRAMS: &'static [&'static str] = &[
        names::PROG_SYS_ENTER_PTRACE,
        names::PROG_SYS_EXIT_PTRACE,
        names::PROG_SYS_ENTER_PROCESS_VM_WRITEV,
        names::PROG_SYS_ENTER_PROCESS_VM_READV,
        names::PROG_SYS_ENTER_PIDFD_GETFD,
    ];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (names::PROG_SYS_ENTER_PTRACE, "raw_enter_ptrace", "fentry_ptrace"),
        (names::PROG_SYS_EXIT_PTRACE, "raw_exit_ptrace", "fexit_ptrace"),
        (names::PROG_SYS_ENTER_PROCESS_VM_WRITEV, "raw_enter_vm_writev", "fentry_vm_writev"),
        (names::PROG_SYS_ENTER_PROCESS_VM_READV, "raw_enter_vm_readv", "fentry_vm_readv"),
        (names::PROG_SYS_ENTER_PIDFD_GETFD, "raw_enter_pidfd_getfd", "fentry_pidfd_getfd"),
    ];
}

impl KindPrograms for kind::ModuleLoad {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_MODULE_LOAD];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}

impl KindPrograms for kind::BpfLoad {
    // The `bpf()` programs report both loads and accesses; their misses count as loads.
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SYS_ENTER_BPF, names::PROG_SYS_EXIT_BPF];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (names::PROG_SYS_ENTER_BPF, "raw_enter_bpf", "fentry_bpf"),
        (names::PROG_SYS_EXIT_BPF, "raw_exit_bpf", "fexit_bpf"),
    ];
}

impl KindPrograms for kind::MemfdCreate {
    const PROGRAMS: &'static [&'static str] = &[PROG_SYS_ENTER_MEMFD, PROG_SYS_EXIT_MEMFD];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (PROG_SYS_ENTER_MEMFD, "raw_enter_memfd", "fentry_memfd"),
        (PROG_SYS_EXIT_MEMFD, "raw_exit_memfd", "fexit_memfd"),
    ];
}

impl KindPrograms for kind::IoUringSetup {
    const PROGRAMS: &'static [&'static str] = &[PROG_SYS_ENTER_IO_URING_SETUP, PROG_SYS_EXIT_IO_URING_SETUP];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[
        (PROG_SYS_ENTER_IO_URING_SETUP, "raw_enter_io_uring_setup", "fentry_io_uring_setup"),
        (PROG_SYS_EXIT_IO_URING_SETUP, "raw_exit_io_uring_setup", "fexit_io_uring_setup"),
    ];
}
