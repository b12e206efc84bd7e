//! The acting task's context, carried by every process event.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `TaskInfo::flags` bit: the task's executable file has no links left (deleted while running).
pub const TASK_EXE_DELETED: u32 = 1 << 0;
/// `TaskInfo::flags` bit: the task has no mm (kernel thread, or exit after exit_mm).
pub const TASK_NO_MM: u32 = 1 << 1;
/// `TaskInfo::flags` bit: the task is in a 32-bit system call (x86-64 `TS_COMPAT`).
pub const TASK_IA32_SYSCALL: u32 = 1 << 2;

/// Value of `auid`/`sessionid` when the kernel has no audit login information.
pub const AUDIT_UNSET: u32 = u32::MAX;

/// Who the task is: identity, credentials, login session, terminal, container context.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TaskInfo {
    /// `task_struct.start_boottime` of the thread-group leader, ns since boot.
    pub start_boottime_ns: u64,
    /// `start_boottime` of `real_parent`'s group leader (for the parent's GUID).
    pub parent_start_boottime_ns: u64,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// `real_parent->tgid`.
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Login uid (`/proc/PID/loginuid`), [`AUDIT_UNSET`] if none.
    pub auid: u32,
    /// Audit session id (`/proc/PID/sessionid`), [`AUDIT_UNSET`] if none.
    pub sessionid: u32,
    /// Namespace inode numbers (0 when unreadable).
    pub mnt_ns: u32,
    pub pid_ns: u32,
    pub net_ns: u32,
    pub uts_ns: u32,
    pub ipc_ns: u32,
    pub cgroup_ns: u32,
    pub user_ns: u32,
    /// `TASK_*` bits.
    pub flags: u32,
    pub _reserved: u32,
    /// Controlling terminal name (`signal->tty->name`, e.g. "pts3"), NUL-padded.
    pub tty: [u8; 32],
    /// `comm`, NUL-padded.
    pub comm: [u8; 16],
}

/// Size of [`TaskInfo`].
pub const TASK_INFO_SIZE: usize = size_of::<TaskInfo>();
const _: () = assert!(TASK_INFO_SIZE == 24 + 16 * 4 + 32 + 16);
const _: () = assert!(TASK_INFO_SIZE == 136 && align_of::<TaskInfo>() == 8);
const _: () = assert!(TASK_INFO_SIZE.is_multiple_of(8));
