//! Exec events (see `sensor_common::exec` for the layout).

use std::mem::offset_of;

use sensor_common::{
    EventHeader, ExecFixed,
    exec::{EXEC_FIXED_SIZE, FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, FLAG_FILENAME_TRUNCATED},
};

use super::{DecodeError, Reader, path::KernelPath, task::TaskRaw};

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
    pub cwd: KernelPath,
    /// Arguments, split at NUL bytes.
    pub argv: Vec<Vec<u8>>,
    pub args_total_len: u32,
    pub args_truncated: bool,
    pub args_unreadable: bool,
    pub filename_truncated: bool,
}

pub(super) fn decode(header: EventHeader, buf: &[u8]) -> Result<ExecRaw, DecodeError> {
    let r = Reader::new(buf, EXEC_FIXED_SIZE)?;
    let at = |field: usize| r.u32(field);
    let mut cursor = EXEC_FIXED_SIZE;
    let filename = r.take(&mut cursor, at(offset_of!(ExecFixed, filename_len)), "filename")?.to_vec();
    let interp = r.take(&mut cursor, at(offset_of!(ExecFixed, interp_len)), "interpreter")?;
    let exe = r.take(&mut cursor, at(offset_of!(ExecFixed, exe_len)), "exe")?;
    let cwd = r.take(&mut cursor, at(offset_of!(ExecFixed, cwd_len)), "cwd")?;
    let args = r.take(&mut cursor, at(offset_of!(ExecFixed, args_len)), "args")?;
    Ok(ExecRaw {
        task: super::task::decode(&r, offset_of!(ExecFixed, task)),
        old_pid: at(offset_of!(ExecFixed, old_pid)),
        argc: at(offset_of!(ExecFixed, argc)),
        filename,
        interpreter: (!interp.is_empty()).then(|| interp.to_vec()),
        exe: super::path::from_kernel(exe, at(offset_of!(ExecFixed, exe_flags))),
        exe_fs_magic: r.u64(offset_of!(ExecFixed, exe_fs_magic)),
        cwd: super::path::from_kernel(cwd, at(offset_of!(ExecFixed, cwd_flags))),
        argv: split_args(args),
        args_total_len: at(offset_of!(ExecFixed, args_total_len)),
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
