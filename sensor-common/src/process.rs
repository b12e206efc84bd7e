//! Process lifecycle events other than exec: fork and exit.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// `ForkEvent` header flag: the new task is a thread, not a process.
pub const FLAG_THREAD: u32 = 1 << 0;

/// A new task. `header.tgid/tid` and `task` describe the child; `parent_*` the creator.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// tgid of the creating process.
    pub parent_tgid: u32,
    pub _reserved: u32,
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ExitEvent {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// `task_struct.exit_code` in wait-status encoding (status << 8 | core << 7 | signal).
    pub exit_code: u32,
    pub _reserved: u32,
}

const _: () = assert!(size_of::<ForkEvent>() == 176);
const _: () = assert!(size_of::<ExitEvent>() == 176);
const _: () = assert!(size_of::<ForkEvent>().is_multiple_of(8));
const _: () = assert!(size_of::<ExitEvent>().is_multiple_of(8));

impl KindPrograms for kind::Fork {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SCHED_PROCESS_FORK];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}

impl KindPrograms for kind::Exit {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SCHED_PROCESS_EXIT];
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] = &[];
}
