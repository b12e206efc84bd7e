//! The exec event: a process image was replaced by `execve`/`execveat`.
//!
//! Layout on the wire: [`ExecFixed`] (header and task first), then, back to back and without
//! NULs between them, `filename_len` bytes of the name as passed to execve, `interp_len` bytes of
//! `bprm->interp` (only when it differs from the file name: a `#!` script), `exe_len` bytes of
//! the executable's path and `cwd_len` bytes of the working directory (both in the
//! [`crate::path`] encoding), then `args_len` bytes of NUL-separated argv.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// Most bytes of a name (file name or interpreter) captured.
pub const EXEC_NAME_MAX: usize = 4096;
/// Most bytes of argv captured (the configurable limit is clamped to this).
pub const EXEC_ARGS_MAX: usize = 32 * 1024;
/// Size of the assembly area for the variable part (names and paths first, argv last).
pub const EXEC_DATA_SIZE: usize = 4 * EXEC_NAME_MAX + EXEC_ARGS_MAX;

/// `flags` bit: argv was longer than the capture limit and was cut.
pub const FLAG_ARGS_TRUNCATED: u32 = 1 << 0;
/// `flags` bit: the file name was longer than [`EXEC_NAME_MAX`] and was cut.
pub const FLAG_FILENAME_TRUNCATED: u32 = 1 << 1;
/// `flags` bit: reading argv from user memory failed (args may be empty).
pub const FLAG_ARGS_UNREADABLE: u32 = 1 << 2;

/// Fixed-size part of an exec event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ExecFixed {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// Magic of the executable's filesystem (`super_block.s_magic`).
    pub exe_fs_magic: u64,
    /// Pid before exec (differs from tgid when a non-leader thread called execve).
    pub old_pid: u32,
    /// `bprm->argc`: the true number of arguments.
    pub argc: u32,
    /// `PATH_*` bits of the exe path.
    pub exe_flags: u32,
    /// `PATH_*` bits of the cwd path.
    pub cwd_flags: u32,
    pub filename_len: u32,
    pub interp_len: u32,
    pub exe_len: u32,
    pub cwd_len: u32,
    pub args_len: u32,
    /// Total argv size in the process (`arg_end - arg_start`), even when cut.
    pub args_total_len: u32,
    /// Identity of the executable's inode (`bprm->file->f_inode`), so that userspace can find
    /// its digest without looking at `/proc/PID/exe`; `exe_ino` 0 when unread. `exe_dev` is
    /// the kernel's `dev_t` encoding (major << 20 | minor).
    pub exe_ino: u64,
    pub exe_size: u64,
    pub exe_mtime_sec: i64,
    pub exe_mtime_nsec: u32,
    pub exe_dev: u32,
}

/// Size of [`ExecFixed`] in bytes.
pub const EXEC_FIXED_SIZE: usize = size_of::<ExecFixed>();
const _: () = assert!(EXEC_FIXED_SIZE == 248);
const _: () = assert!(EXEC_FIXED_SIZE.is_multiple_of(8));

/// An exec event as assembled in the kernel's per-CPU scratch space.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ExecEvent {
    pub fixed: ExecFixed,
    /// Names, paths and argv; only the used prefix is sent.
    pub data: [u8; EXEC_DATA_SIZE],
    /// Slack so that bounded (masked) writes near the end stay inside the value.
    pub slack: [u8; EXEC_NAME_MAX],
}

const _: () = assert!(size_of::<ExecEvent>() == EXEC_FIXED_SIZE + EXEC_DATA_SIZE + EXEC_NAME_MAX);

impl core::fmt::Debug for ExecEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExecEvent").field("fixed", &self.fixed).finish_non_exhaustive()
    }
}

/// Capture settings, a global set by userspace before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CaptureConfig {
    /// argv bytes to capture, at most `EXEC_ARGS_MAX - 1`.
    pub args_max: u32,
    /// Unused (the sensor's own tgid lives in the `CONTROL` map, so pinned programs can be
    /// adopted by the next sensor process).
    pub _reserved: u32,
    /// Non-zero: report new threads as fork events too.
    pub report_threads: u32,
    /// Non-zero: include paths are configured; file events outside them are dropped.
    pub include_mode: u32,
}

const _: () = assert!(size_of::<CaptureConfig>() == 16);

impl CaptureConfig {
    pub const DEFAULT: Self =
        Self { args_max: EXEC_ARGS_MAX as u32 - 1, _reserved: 0, report_threads: 0, include_mode: 0 };
}

impl KindPrograms for kind::Exec {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SCHED_PROCESS_EXEC];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}
