//! Kernel struct field offsets, resolved by userspace from the running kernel's BTF at load
//! time and passed to the eBPF programs as a read-only global. Nothing here is taken from the
//! build host's kernel headers. Composite entries (e.g. `dentry_name_ptr` =
//! `dentry.d_name` + `qstr.name`) are summed by userspace.

/// Marker for an offset the running kernel does not have (e.g. `loginuid` without CONFIG_AUDIT).
pub const OFFSET_ABSENT: u32 = u32::MAX;

macro_rules! offsets {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Byte offsets of the fields the programs read.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
        pub struct KernelOffsets {
            /// Non-zero once userspace filled the struct; programs emit nothing before that.
            pub ready: u32,
            $($(#[$doc])* pub $name: u32,)*
        }

        impl KernelOffsets {
            /// All offsets unknown, programs disabled.
            pub const UNSET: Self = Self { ready: 0, $($name: OFFSET_ABSENT,)* };
        }

        // `ready` and one u32 per offset, nothing else.
        const _: () = assert!(size_of::<KernelOffsets>() == 4 * (1 + [$(stringify!($name)),*].len()));
    };
}

offsets! {
    /// `task_struct.pid`
    task_pid,
    /// `task_struct.tgid`
    task_tgid,
    /// `task_struct.real_parent` (pointer)
    task_real_parent,
    /// `task_struct.group_leader` (pointer)
    task_group_leader,
    /// `task_struct.mm` (pointer)
    task_mm,
    /// `task_struct.cred` (pointer)
    task_cred,
    /// `task_struct.start_boottime` (`real_start_time` before 5.5)
    task_start_boottime,
    /// `task_struct.loginuid`, or absent without CONFIG_AUDIT
    task_loginuid,
    /// `task_struct.sessionid`, or absent without CONFIG_AUDIT
    task_sessionid,
    /// `task_struct.exit_code`
    task_exit_code,
    /// `task_struct.fs` (pointer)
    task_fs,
    /// `task_struct.nsproxy` (pointer)
    task_nsproxy,
    /// `task_struct.signal` (pointer)
    task_signal,
    /// `task_struct.files` (pointer)
    task_files,
    /// `files_struct.fdt` (pointer)
    files_fdt,
    /// `fdtable.fd` (pointer to the array of file pointers), `fdtable.max_fds`
    fdt_fd,
    fdt_max_fds,
    /// `inode.i_ino`, `inode.i_sb` (pointer)
    inode_ino,
    inode_sb,
    /// `super_block.s_dev`
    sb_dev,
    /// `inode.i_mode`
    inode_mode,
    /// `inode.i_size`; the inode's mtime seconds (64 bits) and nanoseconds (the low 32 bits
    /// read): `i_mtime_sec`/`i_mtime_nsec` since 6.11, else `__i_mtime` (6.6) or `i_mtime`
    inode_size,
    inode_mtime_sec,
    inode_mtime_nsec,
    /// `file.private_data` (the `struct socket *` of a socket file)
    file_private_data,
    /// `socket.sk` (pointer)
    socket_sk,
    /// `sock.__sk_common.skc_*` and `sock.sk_protocol`, `sock.sk_type`
    sk_daddr,
    sk_rcv_saddr,
    sk_dport,
    sk_num,
    sk_family,
    sk_v6_daddr,
    sk_v6_rcv_saddr,
    sk_protocol,
    sk_type,
    /// `mm_struct.arg_start`
    mm_arg_start,
    /// `mm_struct.arg_end`
    mm_arg_end,
    /// `mm_struct.exe_file` (pointer)
    mm_exe_file,
    /// `cred.uid` .. `cred.fsgid`
    cred_uid,
    cred_gid,
    cred_suid,
    cred_sgid,
    cred_euid,
    cred_egid,
    cred_fsuid,
    cred_fsgid,
    /// `cred.cap_permitted`, `cred.cap_effective` (64 bits read)
    cred_cap_permitted,
    cred_cap_effective,
    /// `cred.user_ns` (pointer)
    cred_user_ns,
    /// `linux_binprm.filename`, `.interp` (char pointers), `.file` (pointer), `.argc`
    binprm_filename,
    binprm_interp,
    binprm_file,
    binprm_argc,
    /// `file.f_path.dentry`, `file.f_path.mnt` (pointers)
    file_dentry,
    file_vfsmount,
    /// `file.f_inode` (pointer)
    file_inode,
    /// `fs_struct.pwd.dentry`, `fs_struct.pwd.mnt` (pointers)
    fs_pwd_dentry,
    fs_pwd_vfsmount,
    /// `dentry.d_parent` (pointer)
    dentry_parent,
    /// `dentry.d_name.name` (char pointer)
    dentry_name_ptr,
    /// `dentry.d_inode` (pointer)
    dentry_inode,
    /// `dentry.d_sb` (pointer)
    dentry_sb,
    /// `mount.mnt` (the embedded vfsmount: a vfsmount pointer minus this is its mount)
    mount_mnt,
    /// `mount.mnt_parent` (pointer)
    mount_parent,
    /// `mount.mnt_mountpoint` (pointer)
    mount_mountpoint,
    /// `vfsmount.mnt_root` (pointer)
    vfsmount_root,
    /// `vfsmount.mnt_flags`
    vfsmount_flags,
    /// `inode.i_nlink`
    inode_nlink,
    /// `super_block.s_magic`, `super_block.s_flags`
    sb_magic,
    sb_flags,
    /// `signal_struct.live` (atomic counter of live threads)
    signal_live,
    /// `signal_struct.tty` (pointer)
    signal_tty,
    /// `tty_struct.name`
    tty_name,
    /// `nsproxy.*_ns` pointers
    nsproxy_uts,
    nsproxy_ipc,
    nsproxy_mnt,
    nsproxy_pid,
    nsproxy_net,
    nsproxy_cgroup,
    /// `inode.i_private` (a pidfd's `struct pid *` since 6.9)
    inode_private,
    /// `pid.numbers` (array of `struct upid`), `upid.nr`
    pid_numbers,
    upid_nr,
    /// `bpf_map.id`, `bpf_link.id`
    bpf_map_id,
    bpf_link_id,
    /// `<ns struct>.ns.inum` for each namespace type
    uts_inum,
    ipc_inum,
    mnt_inum,
    pid_inum,
    net_inum,
    cgroup_inum,
    user_inum,
    /// `pt_regs` registers holding system call arguments 0–5 and the call's number, for the raw
    /// `sys_enter`/`sys_exit` dispatcher (x86-64: `di`, `si`, `dx`, `r10`, `r8`, `r9`,
    /// `orig_ax`); absent where the dispatcher is not used
    regs_arg0,
    regs_arg1,
    regs_arg2,
    regs_arg3,
    regs_arg4,
    regs_arg5,
    regs_syscall_nr,
    /// `pt_regs` registers that hold a 32-bit system call's arguments besides `dx`, `si` and
    /// `di` (i386 ABI: `bx cx dx si di bp`); absent where the dispatcher is not used
    regs_bx,
    regs_cx,
    regs_bp,
    /// `task_struct.thread_info.status` (x86-64: `TS_COMPAT` marks a 32-bit system call, whose
    /// numbers are another table's)
    task_ti_status,
}

const _: () = assert!(size_of::<KernelOffsets>().is_multiple_of(4));

/// The raw dispatcher's twins read a call's number and six argument registers in one probe
/// read: the `REGS_WINDOW_WORDS` eight-byte words of `pt_regs` from argument 3's register,
/// argument `i` at word `REGS_WINDOW_ARG[i]`, the number at word `REGS_WINDOW_NR` (x86-64:
/// `r10 r9 r8 ax cx dx si di orig_ax`). [`regs_window_fits`] checks the running kernel's offsets
/// against that layout; where they differ the loader keeps the syscall tracepoints.
pub const REGS_WINDOW_WORDS: usize = 9;
pub const REGS_WINDOW_ARG: [usize; 6] = [7, 6, 5, 0, 2, 1];
pub const REGS_WINDOW_NR: usize = 8;

/// Whether the argument registers and the call's number sit in `pt_regs` as
/// [`REGS_WINDOW_ARG`] and [`REGS_WINDOW_NR`] say.
pub fn regs_window_fits(o: &KernelOffsets) -> bool {
    let [a0, a1, a2, a3, a4, a5] = REGS_WINDOW_ARG;
    words_at(
        o.regs_arg3,
        8,
        [
            (o.regs_arg0, a0),
            (o.regs_arg1, a1),
            (o.regs_arg2, a2),
            (o.regs_arg3, a3),
            (o.regs_arg4, a4),
            (o.regs_arg5, a5),
            (o.regs_syscall_nr, REGS_WINDOW_NR),
        ],
    )
}

/// A 32-bit system call's number and six arguments in one probe read: the `IA32_WINDOW_WORDS`
/// words of `pt_regs` from `bp`, argument `i` at word `IA32_WINDOW_ARG[i]`, the number at word
/// `IA32_WINDOW_NR` (x86-64: `bp bx r11 r10 r9 r8 ax cx dx si di orig_ax`; the i386 ABI passes
/// arguments in `bx cx dx si di bp`). [`ia32_window_fits`] checks the running kernel's offsets.
pub const IA32_WINDOW_WORDS: usize = 12;
pub const IA32_WINDOW_ARG: [usize; 6] = [1, 7, 8, 9, 10, 0];
pub const IA32_WINDOW_NR: usize = 11;

/// Whether the i386 argument registers and the call's number sit in `pt_regs` as
/// [`IA32_WINDOW_ARG`] and [`IA32_WINDOW_NR`] say.
pub fn ia32_window_fits(o: &KernelOffsets) -> bool {
    let [a0, a1, a2, a3, a4, a5] = IA32_WINDOW_ARG;
    words_at(
        o.regs_bp,
        8,
        [
            (o.regs_bx, a0),
            (o.regs_cx, a1),
            (o.regs_arg2, a2),
            (o.regs_arg1, a3),
            (o.regs_arg0, a4),
            (o.regs_bp, a5),
            (o.regs_syscall_nr, IA32_WINDOW_NR),
        ],
    )
}

/// `struct cred`'s ids in one probe read: the `CRED_IDS_WORDS` four-byte words from `uid`, in
/// the order of every kernel since 2.6.29 (`uid gid suid sgid euid egid fsuid fsgid`, the
/// `CRED_*` word indexes). The programs check the running kernel's offsets with
/// [`cred_ids_fit`] and read the fields one by one where they differ (a randomised layout).
pub const CRED_IDS_WORDS: usize = 8;
pub const CRED_UID: usize = 0;
pub const CRED_GID: usize = 1;
pub const CRED_SUID: usize = 2;
pub const CRED_SGID: usize = 3;
pub const CRED_EUID: usize = 4;
pub const CRED_EGID: usize = 5;
pub const CRED_FSUID: usize = 6;
pub const CRED_FSGID: usize = 7;

/// Whether the ids sit in `struct cred` as [`CRED_IDS_WORDS`] says (offsets in that order).
#[inline(always)]
pub fn cred_ids_fit(ids: [u32; CRED_IDS_WORDS]) -> bool {
    let [uid, gid, suid, sgid, euid, egid, fsuid, fsgid] = ids;
    words_at(
        uid,
        4,
        [
            (gid, CRED_GID),
            (suid, CRED_SUID),
            (sgid, CRED_SGID),
            (euid, CRED_EUID),
            (egid, CRED_EGID),
            (fsuid, CRED_FSUID),
            (fsgid, CRED_FSGID),
        ],
    )
}

/// `task_struct.loginuid` and `sessionid` in one eight-byte read (adjacent under CONFIG_AUDIT).
#[inline(always)]
pub fn audit_ids_fit(loginuid: u32, sessionid: u32) -> bool {
    words_at(loginuid, 4, [(sessionid, 1)])
}

/// `task_struct.real_parent` and `group_leader` in one read: `TASK_FAMILY_WORDS` pointers from
/// `real_parent` (`real_parent parent children(2) sibling(2) group_leader`).
pub const TASK_FAMILY_WORDS: usize = 7;
pub const TASK_FAMILY_LEADER: usize = 6;

/// Whether `group_leader` is word [`TASK_FAMILY_LEADER`] from `real_parent`.
#[inline(always)]
pub fn task_family_fits(real_parent: u32, group_leader: u32) -> bool {
    words_at(real_parent, 8, [(group_leader, TASK_FAMILY_LEADER)])
}

/// The namespace pointers of `struct nsproxy` in one read: `NSPROXY_WORDS` pointers from
/// `uts_ns` (`uts ipc mnt pid_for_children net time time_for_children cgroup`, since 5.6).
pub const NSPROXY_WORDS: usize = 8;
pub const NSPROXY_UTS: usize = 0;
pub const NSPROXY_IPC: usize = 1;
pub const NSPROXY_MNT: usize = 2;
pub const NSPROXY_PID: usize = 3;
pub const NSPROXY_NET: usize = 4;
pub const NSPROXY_CGROUP: usize = 7;

/// Whether the namespaces sit in `struct nsproxy` as the `NSPROXY_*` words say (offsets of
/// `uts ipc mnt pid net cgroup`).
#[inline(always)]
pub fn nsproxy_fits(ns: [u32; 6]) -> bool {
    let [uts, ipc, mnt, pid, net, cgroup] = ns;
    words_at(
        uts,
        8,
        [
            (ipc, NSPROXY_IPC),
            (mnt, NSPROXY_MNT),
            (pid, NSPROXY_PID),
            (net, NSPROXY_NET),
            (cgroup, NSPROXY_CGROUP),
        ],
    )
}

/// Whether each `(offset, word)` of `fields` is at `base` + `width` × word (never for an absent
/// `base`). In the programs the offsets are load-time constants, so the verifier folds the
/// result and keeps one side of the `if` that tests it; the loader uses it for the registers.
#[inline(always)]
fn words_at<const N: usize>(base: u32, width: u32, fields: [(u32, usize); N]) -> bool {
    let mut fits = base != OFFSET_ABSENT;
    let mut i = 0;
    while i < N {
        let (off, word) = fields[i];
        // Checked: an offset cannot be reached by wrapping past `u32::MAX`.
        let at =
            u32::try_from(word).ok().and_then(|w| width.checked_mul(w)).and_then(|d| base.checked_add(d));
        fits &= at == Some(off);
        i += 1;
    }
    fits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_check_every_field() {
        // struct cred of 6.x: usage (8 bytes), then the ids.
        let ids = [8, 12, 16, 20, 24, 28, 32, 36];
        assert!(cred_ids_fit(ids));
        for i in 1..CRED_IDS_WORDS {
            let mut moved = ids;
            moved[i] += 4;
            assert!(!cred_ids_fit(moved), "field {i} moved");
        }
        assert!(!cred_ids_fit([OFFSET_ABSENT, 12, 16, 20, 24, 28, 32, 36]));
        assert!(audit_ids_fit(100, 104) && !audit_ids_fit(100, 108) && !audit_ids_fit(OFFSET_ABSENT, 3));
        assert!(!audit_ids_fit(100, OFFSET_ABSENT));
        assert!(task_family_fits(1000, 1048) && !task_family_fits(1000, 1056));
        let ns = [8, 16, 24, 32, 40, 64];
        assert!(nsproxy_fits(ns));
        for i in 1..ns.len() {
            let mut moved = ns;
            moved[i] = OFFSET_ABSENT;
            assert!(!nsproxy_fits(moved), "namespace {i} absent");
        }
    }
}
