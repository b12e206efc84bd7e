//! Fork and exit events.

use sensor_common::{
    EventHeader,
    process::{ExitEvent, FLAG_THREAD, ForkEvent},
};

use super::{DecodeError, fixed, task::TaskRaw};

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

pub fn decode_fork(header: EventHeader, buf: &[u8]) -> Result<ForkRaw, DecodeError> {
    let (e, _) = fixed::<ForkEvent>(buf)?;
    Ok(ForkRaw {
        task: (&e.task).into(),
        parent_tgid: e.parent_tgid,
        thread: header.flags & FLAG_THREAD != 0,
        header,
    })
}

pub fn decode_exit(header: EventHeader, buf: &[u8]) -> Result<ExitRaw, DecodeError> {
    let (e, _) = fixed::<ExitEvent>(buf)?;
    Ok(ExitRaw { task: (&e.task).into(), exit_code: e.exit_code, header })
}
