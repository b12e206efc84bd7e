//! [`TaskInfo`] at a known offset of an event.

use std::mem::offset_of;

use sensor_common::TaskInfo;

use super::Reader;

/// The acting task, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskRaw {
    pub start_boottime_ns: u64,
    pub parent_start_boottime_ns: u64,
    pub cgroup_id: u64,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub auid: u32,
    pub sessionid: u32,
    pub mnt_ns: u32,
    pub pid_ns: u32,
    pub net_ns: u32,
    pub uts_ns: u32,
    pub ipc_ns: u32,
    pub cgroup_ns: u32,
    pub user_ns: u32,
    pub flags: u32,
    pub tty: Vec<u8>,
    pub comm: Vec<u8>,
}

pub(super) fn decode(r: &Reader<'_>, base: usize) -> TaskRaw {
    let u32_at = |f: usize| r.u32(base + f);
    let tty: [u8; 32] = r.bytes(base + offset_of!(TaskInfo, tty));
    let comm: [u8; 16] = r.bytes(base + offset_of!(TaskInfo, comm));
    TaskRaw {
        start_boottime_ns: r.u64(base + offset_of!(TaskInfo, start_boottime_ns)),
        parent_start_boottime_ns: r.u64(base + offset_of!(TaskInfo, parent_start_boottime_ns)),
        cgroup_id: r.u64(base + offset_of!(TaskInfo, cgroup_id)),
        ppid: u32_at(offset_of!(TaskInfo, ppid)),
        uid: u32_at(offset_of!(TaskInfo, uid)),
        euid: u32_at(offset_of!(TaskInfo, euid)),
        gid: u32_at(offset_of!(TaskInfo, gid)),
        egid: u32_at(offset_of!(TaskInfo, egid)),
        auid: u32_at(offset_of!(TaskInfo, auid)),
        sessionid: u32_at(offset_of!(TaskInfo, sessionid)),
        mnt_ns: u32_at(offset_of!(TaskInfo, mnt_ns)),
        pid_ns: u32_at(offset_of!(TaskInfo, pid_ns)),
        net_ns: u32_at(offset_of!(TaskInfo, net_ns)),
        uts_ns: u32_at(offset_of!(TaskInfo, uts_ns)),
        ipc_ns: u32_at(offset_of!(TaskInfo, ipc_ns)),
        cgroup_ns: u32_at(offset_of!(TaskInfo, cgroup_ns)),
        user_ns: u32_at(offset_of!(TaskInfo, user_ns)),
        flags: u32_at(offset_of!(TaskInfo, flags)),
        tty: until_nul(&tty).to_vec(),
        comm: until_nul(&comm).to_vec(),
    }
}

/// The bytes before the first NUL.
pub(crate) fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}
