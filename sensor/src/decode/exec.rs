//! Exec events (see `sensor_common::exec` for the layout).

use sensor_common::{
    EventHeader, ExecFixed,
    exec::{FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, FLAG_FILENAME_TRUNCATED},
};

use super::{DecodeError, fixed, path::KernelPath, task::TaskRaw};

/// An exec event with its variable parts split out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub old_pid: u32,
    /// `bprm->argc`.
    pub argc: u32,
    /// File name as passed to execve.
    pub filename: Vec<u8>,
    /// `#!` interpreter, when the file was a script.
    pub interpreter: Option<Vec<u8>>,
    pub exe: KernelPath,
    pub exe_fs_magic: u64,
    /// Identity of the executable's inode, when the kernel read it.
    pub exe_id: Option<ExeIdentity>,
    pub cwd: KernelPath,
    /// Arguments, split at NUL bytes.
    pub argv: Vec<Vec<u8>>,
    pub args_total_len: u32,
    pub args_truncated: bool,
    pub args_unreadable: bool,
    pub filename_truncated: bool,
}

/// The executable's inode as the kernel saw it at exec: the key of its digest in userspace
/// (`dev` in the encoding `stat` gives, not the kernel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExeIdentity {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub size: u64,
}

impl ExeIdentity {
    /// From the event's fields; `None` when unread (inode 0, or size 0: this kernel has no
    /// mtime field the programs know, or the read faulted).
    fn of(e: &ExecFixed) -> Option<Self> {
        if e.exe_ino == 0 || e.exe_size == 0 {
            return None;
        }
        // Kernel dev_t: major << 20 | minor (include/linux/kdev_t.h).
        let dev = libc::makedev(e.exe_dev >> 20, e.exe_dev & 0xf_ffff);
        let nsec = i64::from(e.exe_mtime_nsec.min(999_999_999));
        Some(Self {
            dev,
            ino: e.exe_ino,
            mtime_ns: e.exe_mtime_sec.saturating_mul(1_000_000_000).saturating_add(nsec),
            size: e.exe_size,
        })
    }
}

pub fn decode(header: EventHeader, buf: &[u8]) -> Result<ExecRaw, DecodeError> {
    let (e, mut tail) = fixed::<ExecFixed>(buf)?;
    let filename = tail.take(e.filename_len, "filename")?.to_vec();
    let interp = tail.take(e.interp_len, "interpreter")?;
    let exe = tail.take(e.exe_len, "exe")?;
    let cwd = tail.take(e.cwd_len, "cwd")?;
    let args = tail.take(e.args_len, "args")?;
    Ok(ExecRaw {
        task: (&e.task).into(),
        old_pid: e.old_pid,
        argc: e.argc,
        filename,
        interpreter: (!interp.is_empty()).then(|| interp.to_vec()),
        exe: super::path::from_kernel(exe, e.exe_flags),
        exe_fs_magic: e.exe_fs_magic,
        exe_id: ExeIdentity::of(&e),
        cwd: super::path::from_kernel(cwd, e.cwd_flags),
        argv: split_args(args),
        args_total_len: e.args_total_len,
        args_truncated: header.flags & FLAG_ARGS_TRUNCATED != 0,
        args_unreadable: header.flags & FLAG_ARGS_UNREADABLE != 0,
        filename_truncated: header.flags & FLAG_FILENAME_TRUNCATED != 0,
        header,
    })
}

/// Splits the NUL-separated argument block. The last argument may lack its NUL when the block
/// was cut; empty arguments (`""`) are kept.
pub(crate) fn split_args(block: &[u8]) -> Vec<Vec<u8>> {
    if block.is_empty() {
        return Vec::new();
    }
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    block.split(|&c| c == 0).map(<[u8]>::to_vec).collect()
}
