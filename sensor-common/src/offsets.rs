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
    let regs =
        [o.regs_arg0, o.regs_arg1, o.regs_arg2, o.regs_arg3, o.regs_arg4, o.regs_arg5, o.regs_syscall_nr];
    window_fits(o.regs_arg3, &regs, REGS_WINDOW_ARG.into_iter().chain([REGS_WINDOW_NR]))
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
    let regs = [o.regs_bx, o.regs_cx, o.regs_arg2, o.regs_arg1, o.regs_arg0, o.regs_bp, o.regs_syscall_nr];
    window_fits(o.regs_bp, &regs, IA32_WINDOW_ARG.into_iter().chain([IA32_WINDOW_NR]))
}

/// Whether each of `regs` is at `base` + 8 × its word.
fn window_fits(base: u32, regs: &[u32], words: impl Iterator<Item = usize>) -> bool {
    base != OFFSET_ABSENT
        && regs
            .iter()
            .zip(words)
            .all(|(&off, word)| u32::try_from(word * 8).ok().and_then(|w| base.checked_add(w)) == Some(off))
}
