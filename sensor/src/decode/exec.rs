//! Exec events (see `sensor_common::exec` for the layout).

use std::mem::offset_of;

use sensor_common::{
    EventHeader, ExecFixed,
    exec::{EXEC_FIXED_SIZE, FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE, FLAG_FILENAME_TRUNCATED},
};

use super::{DecodeError, Reader};

/// An exec event with its variable parts split out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRaw {
    pub header: EventHeader,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub auid: u32,
    pub sessionid: u32,
    pub old_pid: u32,
    pub start_boottime_ns: u64,
    pub comm: Vec<u8>,
    /// File name as passed to execve.
    pub filename: Vec<u8>,
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
    let filename_len = at(offset_of!(ExecFixed, filename_len));
    let args_len = at(offset_of!(ExecFixed, args_len));
    let mut cursor = EXEC_FIXED_SIZE;
    let filename = r.take(&mut cursor, filename_len, "filename")?.to_vec();
    let args = r.take(&mut cursor, args_len, "args")?;
    let comm: [u8; 16] = r.bytes(offset_of!(ExecFixed, comm));
    Ok(ExecRaw {
        ppid: at(offset_of!(ExecFixed, ppid)),
        uid: at(offset_of!(ExecFixed, uid)),
        euid: at(offset_of!(ExecFixed, euid)),
        gid: at(offset_of!(ExecFixed, gid)),
        egid: at(offset_of!(ExecFixed, egid)),
        auid: at(offset_of!(ExecFixed, auid)),
        sessionid: at(offset_of!(ExecFixed, sessionid)),
        old_pid: at(offset_of!(ExecFixed, old_pid)),
        start_boottime_ns: r.u64(offset_of!(ExecFixed, start_boottime_ns)),
        comm: until_nul(&comm).to_vec(),
        filename,
        argv: split_args(args),
        args_total_len: at(offset_of!(ExecFixed, args_total_len)),
        args_truncated: header.flags & FLAG_ARGS_TRUNCATED != 0,
        args_unreadable: header.flags & FLAG_ARGS_UNREADABLE != 0,
        filename_truncated: header.flags & FLAG_FILENAME_TRUNCATED != 0,
        header,
    })
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
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
