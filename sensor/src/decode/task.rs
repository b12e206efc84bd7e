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
    pub tty: Padded<32>,
    pub comm: Padded<16>,
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
            tty: Padded::new(&t.tty),
            comm: Padded::new(&t.comm),
        }
    }
}

/// A NUL-padded kernel string of at most `N` bytes (`comm`, the terminal name), kept inline.
/// Every event carries both: as heap copies they were an allocation on the ring reader's thread
/// freed on the record stage's, glibc's slow path (3 % of the sensor's CPU in an exec storm).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Padded<const N: usize> {
    /// The bytes, zero past `len`.
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Padded<N> {
    const FITS: () = assert!(N <= u8::MAX as usize);

    /// The bytes of `b` before its first NUL (at most `N`).
    pub fn new(b: &[u8]) -> Self {
        let () = Self::FITS;
        let b = until_nul(b);
        let b = &b[..b.len().min(N)];
        let mut bytes = [0; N];
        bytes[..b.len()].copy_from_slice(b);
        Self { bytes, len: b.len() as u8 }
    }
}

impl<const N: usize> Default for Padded<N> {
    fn default() -> Self {
        Self { bytes: [0; N], len: 0 }
    }
}

impl<const N: usize> std::ops::Deref for Padded<N> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl<const N: usize> std::fmt::Debug for Padded<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&String::from_utf8_lossy(self), f)
    }
}

/// The bytes before the first NUL.
pub(crate) fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

#[cfg(test)]
mod tests {
    use super::Padded;

    #[test]
    fn padded_keeps_the_bytes_before_the_first_nul() {
        assert_eq!(&*Padded::<16>::new(b"true\0\0junk"), b"true");
        assert_eq!(&*Padded::<4>::new(b"pts3"), b"pts3");
        assert_eq!(&*Padded::<4>::new(b"pts/12"), b"pts/", "cut at N");
        assert!(Padded::<16>::new(b"\0x").is_empty());
        assert_eq!(Padded::<16>::new(b"a\0b"), Padded::<16>::new(b"a"));
        assert_eq!(format!("{:?}", Padded::<8>::new(b"a\xffb")), "\"a\u{fffd}b\"");
    }
}
