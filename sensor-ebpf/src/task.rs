//! Filling [`TaskInfo`] from a `task_struct`.

use aya_ebpf::helpers::{bpf_get_current_comm, generated::bpf_get_current_cgroup_id};
use sensor_common::{
    TaskInfo,
    syscalls::Creds,
    task::{AUDIT_UNSET, TASK_EXE_DELETED, TASK_NO_MM},
};

use crate::{
    kernel::{read, read_or, read_ptr},
    off,
};

/// Fills `out` for `task`. `cgroup_id` and `comm` are those of the current task, which is `task`
/// itself or (at fork) its parent, whose values the child has inherited.
///
/// # Safety
/// `task` must be a `task_struct` pointer; `out` must be writable.
#[inline(always)]
pub unsafe fn fill_task(task: *const u8, out: *mut TaskInfo) -> Result<(), i32> {
    // SAFETY: every read goes through probe-read helpers; `out` is valid per the contract.
    unsafe {
        let leader = read_ptr(task, off!(task_group_leader))?;
        (*out).start_boottime_ns = read(leader, off!(task_start_boottime))?;
        let parent = read_ptr(task, off!(task_real_parent))?;
        (*out).ppid = read(parent, off!(task_tgid))?;
        (*out).parent_start_boottime_ns = match read_ptr(parent, off!(task_group_leader)) {
            Ok(pl) => read_or(pl, off!(task_start_boottime), 0),
            Err(_) => 0,
        };
        let cred = read_ptr(task, off!(task_cred))?;
        (*out).uid = read(cred, off!(cred_uid))?;
        (*out).euid = read(cred, off!(cred_euid))?;
        (*out).gid = read(cred, off!(cred_gid))?;
        (*out).egid = read(cred, off!(cred_egid))?;
        (*out).auid = read_or(task, off!(task_loginuid), AUDIT_UNSET);
        (*out).sessionid = read_or(task, off!(task_sessionid), AUDIT_UNSET);
        (*out).cgroup_id = bpf_get_current_cgroup_id();
        (*out).user_ns = match read_ptr(cred, off!(cred_user_ns)) {
            Ok(ns) => read_or(ns, off!(user_inum), 0),
            Err(_) => 0,
        };
        fill_namespaces(task, out);
        (*out).tty = [0; 32];
        if let Ok(signal) = read_ptr(task, off!(task_signal)) {
            if let Ok(tty) = read_ptr(signal, off!(signal_tty)) {
                (*out).tty = read_or(tty, off!(tty_name), [0u8; 32]);
            }
        }
        (*out).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*out).flags = exe_flags(task);
        (*out)._reserved = 0;
    }
    Ok(())
}

/// # Safety
/// As for [`fill_task`].
#[inline(always)]
unsafe fn fill_namespaces(task: *const u8, out: *mut TaskInfo) {
    // SAFETY: probe reads only; `out` valid per the caller's contract.
    unsafe {
        let Ok(nsp) = read_ptr(task, off!(task_nsproxy)) else {
            (*out).mnt_ns = 0;
            (*out).pid_ns = 0;
            (*out).net_ns = 0;
            (*out).uts_ns = 0;
            (*out).ipc_ns = 0;
            (*out).cgroup_ns = 0;
            return;
        };
        let inum = |ns_off: u32, inum_off: u32| match read_ptr(nsp, ns_off) {
            Ok(ns) => read_or(ns, inum_off, 0u32),
            Err(_) => 0,
        };
        (*out).mnt_ns = inum(off!(nsproxy_mnt), off!(mnt_inum));
        (*out).pid_ns = inum(off!(nsproxy_pid), off!(pid_inum));
        (*out).net_ns = inum(off!(nsproxy_net), off!(net_inum));
        (*out).uts_ns = inum(off!(nsproxy_uts), off!(uts_inum));
        (*out).ipc_ns = inum(off!(nsproxy_ipc), off!(ipc_inum));
        (*out).cgroup_ns = inum(off!(nsproxy_cgroup), off!(cgroup_inum));
    }
}

/// `TASK_*` flags about the task's executable.
///
/// # Safety
/// `task` must be a `task_struct` pointer.
#[inline(always)]
unsafe fn exe_flags(task: *const u8) -> u32 {
    // SAFETY: probe reads only.
    unsafe {
        let Ok(mm) = read_ptr(task, off!(task_mm)) else { return TASK_NO_MM };
        let Ok(file) = read_ptr(mm, off!(mm_exe_file)) else { return 0 };
        let Ok(inode) = read_ptr(file, off!(file_inode)) else { return 0 };
        match read::<u32>(inode, off!(inode_nlink)) {
            Ok(0) => TASK_EXE_DELETED,
            _ => 0,
        }
    }
}

/// Reads the credentials of `task`.
///
/// # Safety
/// `task` must be a `task_struct` pointer; `out` writable.
#[inline(always)]
pub unsafe fn read_creds(task: *const u8, out: *mut Creds) -> Result<(), i32> {
    // SAFETY: probe reads only; `out` valid per the contract.
    unsafe {
        let cred = read_ptr(task, off!(task_cred))?;
        (*out).uid = read(cred, off!(cred_uid))?;
        (*out).euid = read(cred, off!(cred_euid))?;
        (*out).suid = read(cred, off!(cred_suid))?;
        (*out).fsuid = read(cred, off!(cred_fsuid))?;
        (*out).gid = read(cred, off!(cred_gid))?;
        (*out).egid = read(cred, off!(cred_egid))?;
        (*out).sgid = read(cred, off!(cred_sgid))?;
        (*out).fsgid = read(cred, off!(cred_fsgid))?;
        (*out).cap_effective = read(cred, off!(cred_cap_effective))?;
        (*out).cap_permitted = read(cred, off!(cred_cap_permitted))?;
    }
    Ok(())
}
