//! [`TaskInfo`], embedded in most events.

use sensor_common::TaskInfo;

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

impl From<&TaskInfo> for TaskRaw {
    fn from(t: &TaskInfo) -> Self {
        Self {
            start_boottime_ns: t.start_boottime_ns,
            parent_start_boottime_ns: t.parent_start_boottime_ns,
            cgroup_id: t.cgroup_id,
            ppid: t.ppid,
            uid: t.uid,
            euid: t.euid,
            gid: t.gid,
            egid: t.egid,
            auid: t.auid,
            sessionid: t.sessionid,
            mnt_ns: t.mnt_ns,
            pid_ns: t.pid_ns,
            net_ns: t.net_ns,
            uts_ns: t.uts_ns,
            ipc_ns: t.ipc_ns,
            cgroup_ns: t.cgroup_ns,
            user_ns: t.user_ns,
            flags: t.flags,
            tty: until_nul(&t.tty).to_vec(),
            comm: until_nul(&t.comm).to_vec(),
        }
    }
}

/// The bytes before the first NUL.
pub(crate) fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}
