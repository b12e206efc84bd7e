//! The exec event: a process image was replaced by `execve`/`execveat`.
//!
//! Layout on the wire: [`ExecFixed`] (which starts with the [`crate::EventHeader`]), then
//! `filename_len` bytes of the file name as passed to execve (no NUL), then `args_len` bytes of
//! the NUL-separated argument strings as found in the new process's memory.

use crate::EventHeader;

/// Most bytes of the exec file name captured.
pub const EXEC_FILENAME_MAX: usize = 4096;
/// Most bytes of argv captured (the configurable limit is clamped to this).
pub const EXEC_ARGS_MAX: usize = 16 * 1024;

/// `flags` bit: argv was longer than the capture limit and was cut.
pub const FLAG_ARGS_TRUNCATED: u32 = 1 << 0;
/// `flags` bit: the file name was longer than [`EXEC_FILENAME_MAX`] and was cut.
pub const FLAG_FILENAME_TRUNCATED: u32 = 1 << 1;
/// `flags` bit: reading argv from user memory failed (args may be empty).
pub const FLAG_ARGS_UNREADABLE: u32 = 1 << 2;

/// Value of `auid`/`sessionid` when the kernel has no audit login information.
pub const AUDIT_UNSET: u32 = u32::MAX;

/// Fixed-size part of an exec event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecFixed {
    pub header: EventHeader,
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
    /// Pid before exec (differs from tgid when a non-leader thread called execve).
    pub old_pid: u32,
    /// `task_struct.start_boottime`, ns.
    pub start_boottime_ns: u64,
    /// `comm` after exec.
    pub comm: [u8; 16],
    /// Bytes of file name that follow.
    pub filename_len: u32,
    /// Bytes of argv that follow the file name.
    pub args_len: u32,
    /// Total argv size in the process (`arg_end - arg_start`), even when cut.
    pub args_total_len: u32,
    pub _reserved: u32,
}

/// Size of [`ExecFixed`] in bytes.
pub const EXEC_FIXED_SIZE: usize = size_of::<ExecFixed>();
const _: () = assert!(EXEC_FIXED_SIZE == 32 + 8 * 4 + 8 + 16 + 16);
const _: () = assert!(EXEC_FIXED_SIZE.is_multiple_of(8));

/// An exec event as built in the kernel's per-CPU scratch space.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub fixed: ExecFixed,
    /// File name followed by argv; only `filename_len + args_len` bytes are sent.
    pub data: [u8; EXEC_FILENAME_MAX + EXEC_ARGS_MAX],
}

impl core::fmt::Debug for ExecEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExecEvent")
            .field("fixed", &self.fixed)
            .finish_non_exhaustive()
    }
}

/// Largest exec event on the wire.
pub const EXEC_EVENT_MAX: usize = size_of::<ExecEvent>();

/// Exec capture settings, a global set by userspace before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecConfig {
    /// argv bytes to capture, at most [`EXEC_ARGS_MAX`].
    pub args_max: u32,
    /// The sensor's own tgid: its own execs are not reported (0 = report everything).
    pub self_tgid: u32,
}

const _: () = assert!(size_of::<ExecConfig>() == 8);

impl ExecConfig {
    pub const DEFAULT: Self = Self {
        args_max: EXEC_ARGS_MAX as u32,
        self_tgid: 0,
    };
}
