//! Kernel struct field offsets, resolved by userspace from the running kernel's BTF at load
//! time and passed to the eBPF programs as a read-only global. Nothing here is taken from the
//! build host's kernel headers.

/// Marker for an offset the running kernel does not have (e.g. `loginuid` without CONFIG_AUDIT).
pub const OFFSET_ABSENT: u32 = u32::MAX;

/// Byte offsets of the fields the programs read. A nested path such as `task_struct.cred->uid`
/// is two entries: the pointer's offset in `task_struct` and the field's offset in `cred`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Non-zero once userspace filled the struct; programs emit nothing before that.
    pub ready: u32,
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.real_parent` (pointer)
    pub task_real_parent: u32,
    /// `task_struct.mm` (pointer)
    pub task_mm: u32,
    /// `task_struct.cred` (pointer to the effective/objective credentials)
    pub task_cred: u32,
    /// `task_struct.start_boottime` (ns since boot, includes suspend)
    pub task_start_boottime: u32,
    /// `task_struct.loginuid` (`kuid_t`), or [`OFFSET_ABSENT`]
    pub task_loginuid: u32,
    /// `task_struct.sessionid`, or [`OFFSET_ABSENT`]
    pub task_sessionid: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `cred.uid`
    pub cred_uid: u32,
    /// `cred.gid`
    pub cred_gid: u32,
    /// `cred.euid`
    pub cred_euid: u32,
    /// `cred.egid`
    pub cred_egid: u32,
    /// `linux_binprm.filename` (pointer to the name as passed to execve)
    pub binprm_filename: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 16 * 4);

impl KernelOffsets {
    /// All offsets unknown, programs disabled.
    pub const UNSET: Self = Self {
        ready: 0,
        task_pid: OFFSET_ABSENT,
        task_tgid: OFFSET_ABSENT,
        task_real_parent: OFFSET_ABSENT,
        task_mm: OFFSET_ABSENT,
        task_cred: OFFSET_ABSENT,
        task_start_boottime: OFFSET_ABSENT,
        task_loginuid: OFFSET_ABSENT,
        task_sessionid: OFFSET_ABSENT,
        mm_arg_start: OFFSET_ABSENT,
        mm_arg_end: OFFSET_ABSENT,
        cred_uid: OFFSET_ABSENT,
        cred_gid: OFFSET_ABSENT,
        cred_euid: OFFSET_ABSENT,
        cred_egid: OFFSET_ABSENT,
        binprm_filename: OFFSET_ABSENT,
    };
}
