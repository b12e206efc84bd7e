//! Filling [`TaskInfo`] from a `task_struct`.

use aya_ebpf::helpers::{generated, generated::bpf_get_current_cgroup_id};
use sensor_common::{
    TaskInfo,
    offsets::{
        CRED_EGID, CRED_EUID, CRED_FSGID, CRED_FSUID, CRED_GID, CRED_IDS_WORDS, CRED_SGID, CRED_SUID,
        CRED_UID, NSPROXY_CGROUP, NSPROXY_IPC, NSPROXY_MNT, NSPROXY_NET, NSPROXY_PID, NSPROXY_UTS,
        NSPROXY_WORDS, TASK_FAMILY_LEADER, TASK_FAMILY_WORDS, audit_ids_fit, cred_ids_fit, nsproxy_fits,
        task_family_fits,
    },
    syscalls::Creds,
    task::{AUDIT_UNSET, TASK_EXE_DELETED, TASK_IA32_SYSCALL, TASK_NO_MM},
};

use crate::{
    kernel::{E_NULL, read, read_into, read_or, read_ptr, read_z},
    off,
};

/// Fills `out` for `task`. `cgroup_id` and `comm` are those of the current task, which is `task`
/// itself or (at fork) its parent, whose values the child has inherited.
///
/// Straight-line code: every field is read in place with [`read_into`], which leaves zeros when
/// a read fails, so the verifier walks this once per call site instead of once per combination
/// of failed reads (the old verifiers of 5.10 and 6.1 ran out of budget on that). Only a task
/// whose group leader, parent or credentials cannot be read is an error (a counted loss).
///
/// # Safety
/// `task` must be a `task_struct` pointer; `out` must be writable.
#[inline(always)]
pub unsafe fn fill_task(task: *const u8, out: *mut TaskInfo) -> Result<(), i32> {
    // SAFETY: every read goes through the probe-read helper; `out` is valid per the contract.
    unsafe {
        let (parent, leader) = family(task);
        let cred: *const u8 = read_z(task, off!(task_cred));
        read_into(&raw mut (*out).start_boottime_ns, leader, off!(task_start_boottime));
        read_into(&raw mut (*out).ppid, parent, off!(task_tgid));
        let parent_leader: *const u8 = read_z(parent, off!(task_group_leader));
        read_into(&raw mut (*out).parent_start_boottime_ns, parent_leader, off!(task_start_boottime));
        if cred_ids_fit(cred_offsets()) {
            let ids: [u32; CRED_IDS_WORDS] = read_z(cred, off!(cred_uid));
            (*out).uid = ids[CRED_UID];
            (*out).euid = ids[CRED_EUID];
            (*out).gid = ids[CRED_GID];
            (*out).egid = ids[CRED_EGID];
        } else {
            read_into(&raw mut (*out).uid, cred, off!(cred_uid));
            read_into(&raw mut (*out).euid, cred, off!(cred_euid));
            read_into(&raw mut (*out).gid, cred, off!(cred_gid));
            read_into(&raw mut (*out).egid, cred, off!(cred_egid));
        }
        if audit_ids_fit(off!(task_loginuid), off!(task_sessionid)) {
            let [auid, sessionid] = read_or(task, off!(task_loginuid), [AUDIT_UNSET; 2]);
            (*out).auid = auid;
            (*out).sessionid = sessionid;
        } else {
            (*out).auid = read_or(task, off!(task_loginuid), AUDIT_UNSET);
            (*out).sessionid = read_or(task, off!(task_sessionid), AUDIT_UNSET);
        }
        (*out).cgroup_id = bpf_get_current_cgroup_id();
        let user_ns: *const u8 = read_z(cred, off!(cred_user_ns));
        read_into(&raw mut (*out).user_ns, user_ns, off!(user_inum));
        namespaces(task, out);
        let signal: *const u8 = read_z(task, off!(task_signal));
        let tty: *const u8 = read_z(signal, off!(signal_tty));
        read_into(&raw mut (*out).tty, tty, off!(tty_name));
        generated::bpf_get_current_comm((&raw mut (*out).comm).cast(), 16);
        (*out).flags = exe_flags(task) | if crate::dispatch::compat_of(task) { TASK_IA32_SYSCALL } else { 0 };
        (*out)._reserved = 0;
        if leader.is_null() || parent.is_null() || cred.is_null() {
            return Err(E_NULL);
        }
    }
    Ok(())
}

/// `task`'s `real_parent` and `group_leader` (NULL where unreadable), in one probe read where
/// the kernel's layout allows.
///
/// # Safety
/// `task` must be a `task_struct` pointer.
#[inline(always)]
unsafe fn family(task: *const u8) -> (*const u8, *const u8) {
    // SAFETY: probe reads only. The `if` compares load-time constants: the verifier keeps one side.
    unsafe {
        if task_family_fits(off!(task_real_parent), off!(task_group_leader)) {
            let w: [u64; TASK_FAMILY_WORDS] = read_z(task, off!(task_real_parent));
            (w[0] as *const u8, w[TASK_FAMILY_LEADER] as *const u8)
        } else {
            (read_z(task, off!(task_real_parent)), read_z(task, off!(task_group_leader)))
        }
    }
}

/// The offsets of `struct cred`'s ids in [`sensor_common::offsets::cred_ids_fit`]'s order.
#[inline(always)]
fn cred_offsets() -> [u32; CRED_IDS_WORDS] {
    [
        off!(cred_uid),
        off!(cred_gid),
        off!(cred_suid),
        off!(cred_sgid),
        off!(cred_euid),
        off!(cred_egid),
        off!(cred_fsuid),
        off!(cred_fsgid),
    ]
}

/// The namespace inode numbers of `task` (zero where unreadable); the `nsproxy` pointers in one
/// probe read where the kernel's layout allows.
///
/// # Safety
/// `task` must be a `task_struct` pointer; `out` writable.
#[inline(always)]
unsafe fn namespaces(task: *const u8, out: *mut TaskInfo) {
    // SAFETY: probe reads only; `out` valid per the contract.
    unsafe {
        let nsp: *const u8 = read_z(task, off!(task_nsproxy));
        let inum = |dst: *mut u32, ns: u64, inum_off: u32| read_into(dst, ns as *const u8, inum_off);
        let layout = [
            off!(nsproxy_uts),
            off!(nsproxy_ipc),
            off!(nsproxy_mnt),
            off!(nsproxy_pid),
            off!(nsproxy_net),
            off!(nsproxy_cgroup),
        ];
        // No zeroed array: LLVM would zero it with a byte-wise `memset` loop, a subprogram
        // the old verifiers walk byte by byte (`loader::tests::no_program_calls_a_subprogram`).
        let (uts, ipc, mnt, pid, net, cgroup): (u64, u64, u64, u64, u64, u64) = if nsproxy_fits(layout) {
            let w: [u64; NSPROXY_WORDS] = read_z(nsp, off!(nsproxy_uts));
            (
                w[NSPROXY_UTS],
                w[NSPROXY_IPC],
                w[NSPROXY_MNT],
                w[NSPROXY_PID],
                w[NSPROXY_NET],
                w[NSPROXY_CGROUP],
            )
        } else {
            // One by one, as the code before the window (constant offsets, no loop).
            (
                read_z(nsp, layout[0]),
                read_z(nsp, layout[1]),
                read_z(nsp, layout[2]),
                read_z(nsp, layout[3]),
                read_z(nsp, layout[4]),
                read_z(nsp, layout[5]),
            )
        };
        inum(&raw mut (*out).mnt_ns, mnt, off!(mnt_inum));
        inum(&raw mut (*out).pid_ns, pid, off!(pid_inum));
        inum(&raw mut (*out).net_ns, net, off!(net_inum));
        inum(&raw mut (*out).uts_ns, uts, off!(uts_inum));
        inum(&raw mut (*out).ipc_ns, ipc, off!(ipc_inum));
        inum(&raw mut (*out).cgroup_ns, cgroup, off!(cgroup_inum));
    }
}

/// `TASK_*` flags about the task's executable.
///
/// # Safety
/// `task` must be a `task_struct` pointer.
#[inline(always)]
unsafe fn exe_flags(task: *const u8) -> u32 {
    // SAFETY: probe reads only (zero when a pointer on the way is NULL).
    unsafe {
        let mm: *const u8 = read_z(task, off!(task_mm));
        if mm.is_null() {
            return TASK_NO_MM;
        }
        let file: *const u8 = read_z(mm, off!(mm_exe_file));
        let inode: *const u8 = read_z(file, off!(file_inode));
        let nlink: u32 = read_z(inode, off!(inode_nlink));
        if !inode.is_null() && nlink == 0 { TASK_EXE_DELETED } else { 0 }
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
        if cred_ids_fit(cred_offsets()) {
            let ids: [u32; CRED_IDS_WORDS] = read(cred, off!(cred_uid))?;
            (*out).uid = ids[CRED_UID];
            (*out).euid = ids[CRED_EUID];
            (*out).suid = ids[CRED_SUID];
            (*out).fsuid = ids[CRED_FSUID];
            (*out).gid = ids[CRED_GID];
            (*out).egid = ids[CRED_EGID];
            (*out).sgid = ids[CRED_SGID];
            (*out).fsgid = ids[CRED_FSGID];
        } else {
            (*out).uid = read(cred, off!(cred_uid))?;
            (*out).euid = read(cred, off!(cred_euid))?;
            (*out).suid = read(cred, off!(cred_suid))?;
            (*out).fsuid = read(cred, off!(cred_fsuid))?;
            (*out).gid = read(cred, off!(cred_gid))?;
            (*out).egid = read(cred, off!(cred_egid))?;
            (*out).sgid = read(cred, off!(cred_sgid))?;
            (*out).fsgid = read(cred, off!(cred_fsgid))?;
        }
        (*out).cap_effective = read(cred, off!(cred_cap_effective))?;
        (*out).cap_permitted = read(cred, off!(cred_cap_permitted))?;
    }
    Ok(())
}
