//! Fork and exit events.

use std::mem::offset_of;

use sensor_common::{
    EventHeader,
    process::{ExitEvent, FLAG_THREAD, ForkEvent},
};

use super::{DecodeError, Reader, task::TaskRaw};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkRaw {
    /// tgid/tid of the new task.
    pub header: EventHeader,
    pub task: TaskRaw,
    pub parent_tgid: u32,
    pub thread: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    /// Wait-status encoding.
    pub exit_code: u32,
}

pub(super) fn decode_fork(header: EventHeader, buf: &[u8]) -> Result<ForkRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<ForkEvent>())?;
    Ok(ForkRaw {
        task: super::task::decode(&r, offset_of!(ForkEvent, task)),
        parent_tgid: r.u32(offset_of!(ForkEvent, parent_tgid)),
        thread: header.flags & FLAG_THREAD != 0,
        header,
    })
}

pub(super) fn decode_exit(header: EventHeader, buf: &[u8]) -> Result<ExitRaw, DecodeError> {
    let r = Reader::new(buf, size_of::<ExitEvent>())?;
    Ok(ExitRaw {
        task: super::task::decode(&r, offset_of!(ExitEvent, task)),
        exit_code: r.u32(offset_of!(ExitEvent, exit_code)),
        header,
    })
}
