//! Kernel struct offsets from the running kernel's BTF: its own (`/sys/kernel/btf/vmlinux`), or a
//! BTF file given by the operator for kernels built without `CONFIG_DEBUG_INFO_BTF` (raw BTF, the
//! format BTFHub distributes once extracted, or `bpftool btf dump file … format raw` produces).
//!
//! The eBPF programs are plain Rust without CO-RE relocations, so every field they read is
//! located here, at load time, and passed in as the `OFFSETS` global. The same binary therefore
//! loads on any kernel whose BTF it is given. Nothing else needs kernel BTF: the lifecycle
//! programs are raw tracepoints, which attach without it.

use std::{
    cell::RefCell,
    collections::HashMap,
    path::{Path, PathBuf},
};

use btf_rs::{Backend, Btf, Type};
use sensor_common::{KernelOffsets, offsets::OFFSET_ABSENT};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Magic numbers of compressed files an operator may pass by mistake (BTFHub ships
/// `<release>.btf.tar.xz`).
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "this kernel publishes no BTF ({VMLINUX_BTF} is missing: it was built without \
         CONFIG_DEBUG_INFO_BTF) and no BTF file was given. Give the BTF of this kernel ({release}) \
         with `--btf FILE` or `btf = \"FILE\"` in the [sensor] section of the configuration file \
         (BTFHub publishes BTF files for many distribution kernels)"
    )]
    Missing { release: String },
    #[error("reading kernel BTF from {path}: {source}")]
    Read { path: String, source: btf_rs::Error },
    #[error(
        "{path} is a compressed archive, not a BTF file: extract it first (BTFHub's \
         `<release>.btf.tar.xz`: `tar -xJf FILE` gives `<release>.btf`)"
    )]
    Compressed { path: String },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(&'static str),
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    NoField { strukt: &'static str, field: &'static str },
    #[error("kernel BTF: {0}")]
    Parse(#[from] btf_rs::Error),
}

/// Where the kernel BTF in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfSource {
    /// The running kernel's own, from sysfs.
    Kernel,
    /// A file given by the operator.
    File(PathBuf),
}

impl std::fmt::Display for BtfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kernel => write!(f, "{VMLINUX_BTF}"),
            Self::File(p) => write!(f, "{} (BTF file given)", p.display()),
        }
    }
}

/// Parsed kernel BTF with field-offset lookups.
pub struct KernelBtf {
    btf: Btf,
    /// Structs found by name so far: a lookup by name walks every type of the memory-mapped
    /// BTF (about 1 ms on 6.18), and the offsets ask for the same struct many times.
    structs: RefCell<HashMap<&'static str, Option<btf_rs::Struct>>>,
}

impl std::fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBtf").finish_non_exhaustive()
    }
}

impl KernelBtf {
    /// Parses the running kernel's BTF.
    pub fn from_sys() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// The BTF to use: the file given (it wins, the operator asked for it), else the kernel's
    /// own; a clear error naming both ways when there is neither.
    pub fn locate(given: Option<&Path>) -> Result<(Self, BtfSource), BtfError> {
        if let Some(path) = given {
            return Ok((Self::from_file(path)?, BtfSource::File(path.to_owned())));
        }
        if !Path::new(VMLINUX_BTF).exists() {
            let release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "uname -r".to_owned());
            return Err(BtfError::Missing { release });
        }
        Ok((Self::from_sys()?, BtfSource::Kernel))
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let shown = || path.display().to_string();
        let mut head = [0u8; 6];
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = std::io::Read::read(&mut f, &mut head);
            if head.starts_with(XZ_MAGIC) || head.starts_with(GZIP_MAGIC) {
                return Err(BtfError::Compressed { path: shown() });
            }
        }
        // Memory-mapped, the BTF is indexed in ~10 ms instead of ~85 ms spent caching every
        // string and type (measured on 6.18), which start-up waits for. sysfs lets the kernel's
        // BTF be mapped only from 6.16 on: elsewhere it is read and cached.
        match Self::with_backend(path, Backend::Mmap) {
            Ok(btf) => Ok(btf),
            Err(_) => Self::with_backend(path, Backend::Cache)
                .map_err(|source| BtfError::Read { path: shown(), source }),
        }
    }

    fn with_backend(path: &Path, backend: Backend) -> Result<Self, btf_rs::Error> {
        Ok(Self { btf: Btf::from_file_with_backend(path, backend)?, structs: RefCell::default() })
    }

    /// Every function whose name starts with `prefix`, with its prototype's type id.
    pub fn functions_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u32)>, BtfError> {
        use btf_rs::BtfType as _;
        use fallible_iterator::FallibleIterator as _;
        let mut out = Vec::new();
        let mut types = self.btf.type_iter();
        while let Some(t) = types.next()? {
            let Type::Func(f) = &t else { continue };
            let name = self.btf.resolve_name(f)?;
            if name.starts_with(prefix)
                && let Some(proto) = f.get_type_id()
            {
                out.push((name, proto));
            }
        }
        Ok(out)
    }

    /// Whether the kernel has a function named `name` (a `FUNC` in its BTF).
    pub fn has_function(&self, name: &str) -> bool {
        self.btf.resolve_types_by_name(name).unwrap_or_default().iter().any(|t| matches!(t, Type::Func(_)))
    }

    fn find_struct(&self, name: &'static str) -> Result<btf_rs::Struct, BtfError> {
        let found = self
            .structs
            .borrow_mut()
            .entry(name)
            .or_insert_with(|| {
                self.btf.resolve_types_by_name(name).unwrap_or_default().into_iter().find_map(|ty| match ty {
                    Type::Struct(s) if !s.members.is_empty() => Some(s),
                    _ => None,
                })
            })
            .clone();
        found.ok_or(BtfError::NoStruct(name))
    }

    /// Byte offset of `field` in `struct strukt`, looking through anonymous unions/structs.
    pub fn offset(&self, strukt: &'static str, field: &'static str) -> Result<u32, BtfError> {
        let s = self.find_struct(strukt)?;
        self.member_bits(&s, field)?.map(|bits| bits / 8).ok_or(BtfError::NoField { strukt, field })
    }

    /// Like [`Self::offset`], but a missing field (a kernel config option) is [`OFFSET_ABSENT`].
    pub fn offset_or_absent(&self, strukt: &'static str, field: &'static str) -> Result<u32, BtfError> {
        match self.offset(strukt, field) {
            Err(BtfError::NoField { .. }) => Ok(OFFSET_ABSENT),
            other => other,
        }
    }

    fn member_bits(&self, s: &btf_rs::Struct, field: &str) -> Result<Option<u32>, BtfError> {
        for m in &s.members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == field {
                return Ok(Some(m.bit_offset()));
            }
            if name.is_empty() {
                // Anonymous struct/union: its members live at the parent's offset plus its own.
                if let Some(inner) = self.aggregate(&self.btf.resolve_chained_type(m)?)?
                    && let Some(bits) = self.member_bits(&inner, field)?
                {
                    return Ok(Some(m.bit_offset() + bits));
                }
            }
        }
        Ok(None)
    }

    /// The struct/union behind a type, looking through typedefs and qualifiers.
    fn aggregate(&self, ty: &Type) -> Result<Option<btf_rs::Struct>, BtfError> {
        let mut ty = ty.clone();
        for _ in 0..16 {
            ty = match ty {
                Type::Struct(s) | Type::Union(s) => return Ok(Some(s)),
                Type::Typedef(t) => self.btf.resolve_chained_type(&t)?,
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.btf.resolve_chained_type(&t)?
                }
                _ => return Ok(None),
            };
        }
        Ok(None)
    }

    /// Sum of the offsets along a path of (struct, field) steps through embedded structs.
    fn nested(&self, steps: &[(&'static str, &'static str)]) -> Result<u32, BtfError> {
        steps.iter().try_fold(0, |acc, (s, f)| Ok(acc + self.offset(s, f)?))
    }

    /// A field only the tamper checks read: absent (those checks off) rather than an error.
    fn optional(&self, strukt: &'static str, field: &'static str) -> Result<u32, BtfError> {
        match self.offset(strukt, field) {
            Err(BtfError::NoStruct(_) | BtfError::NoField { .. }) => Ok(OFFSET_ABSENT),
            other => other,
        }
    }

    /// `<ns struct>.ns.inum`, or absent when the namespace type does not exist.
    fn ns_inum(&self, strukt: &'static str) -> Result<u32, BtfError> {
        match self.nested(&[(strukt, "ns"), ("ns_common", "inum")]) {
            Err(BtfError::NoStruct(_) | BtfError::NoField { .. }) => Ok(OFFSET_ABSENT),
            other => other,
        }
    }

    /// Offsets of every field the programs read.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let o = |s, f| self.offset(s, f);
        let mtime = self.inode_mtime()?;
        Ok(KernelOffsets {
            ready: 1,
            task_pid: o("task_struct", "pid")?,
            task_tgid: o("task_struct", "tgid")?,
            task_real_parent: o("task_struct", "real_parent")?,
            task_group_leader: o("task_struct", "group_leader")?,
            task_mm: o("task_struct", "mm")?,
            task_cred: o("task_struct", "cred")?,
            task_start_boottime: self.start_boottime_offset()?,
            task_loginuid: self.offset_or_absent("task_struct", "loginuid")?,
            task_sessionid: self.offset_or_absent("task_struct", "sessionid")?,
            task_exit_code: o("task_struct", "exit_code")?,
            task_fs: o("task_struct", "fs")?,
            task_nsproxy: o("task_struct", "nsproxy")?,
            task_signal: o("task_struct", "signal")?,
            task_files: o("task_struct", "files")?,
            files_fdt: o("files_struct", "fdt")?,
            fdt_fd: o("fdtable", "fd")?,
            fdt_max_fds: o("fdtable", "max_fds")?,
            inode_ino: o("inode", "i_ino")?,
            inode_sb: o("inode", "i_sb")?,
            sb_dev: o("super_block", "s_dev")?,
            inode_mode: o("inode", "i_mode")?,
            inode_size: if mtime.is_some() { o("inode", "i_size")? } else { OFFSET_ABSENT },
            inode_mtime_sec: mtime.map_or(OFFSET_ABSENT, |m| m.0),
            inode_mtime_nsec: mtime.map_or(OFFSET_ABSENT, |m| m.1),
            file_private_data: o("file", "private_data")?,
            socket_sk: o("socket", "sk")?,
            sk_daddr: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_daddr")])?,
            sk_rcv_saddr: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_rcv_saddr")])?,
            sk_dport: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_dport")])?,
            sk_num: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_num")])?,
            sk_family: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_family")])?,
            sk_v6_daddr: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_v6_daddr")])?,
            sk_v6_rcv_saddr: self.nested(&[("sock", "__sk_common"), ("sock_common", "skc_v6_rcv_saddr")])?,
            sk_protocol: o("sock", "sk_protocol")?,
            sk_type: o("sock", "sk_type")?,
            mm_arg_start: o("mm_struct", "arg_start")?,
            mm_arg_end: o("mm_struct", "arg_end")?,
            mm_exe_file: o("mm_struct", "exe_file")?,
            cred_uid: o("cred", "uid")?,
            cred_gid: o("cred", "gid")?,
            cred_suid: o("cred", "suid")?,
            cred_sgid: o("cred", "sgid")?,
            cred_euid: o("cred", "euid")?,
            cred_egid: o("cred", "egid")?,
            cred_fsuid: o("cred", "fsuid")?,
            cred_fsgid: o("cred", "fsgid")?,
            cred_cap_permitted: o("cred", "cap_permitted")?,
            cred_cap_effective: o("cred", "cap_effective")?,
            cred_user_ns: o("cred", "user_ns")?,
            binprm_filename: o("linux_binprm", "filename")?,
            binprm_interp: o("linux_binprm", "interp")?,
            binprm_file: o("linux_binprm", "file")?,
            binprm_argc: o("linux_binprm", "argc")?,
            file_dentry: self.nested(&[("file", "f_path"), ("path", "dentry")])?,
            file_vfsmount: self.nested(&[("file", "f_path"), ("path", "mnt")])?,
            file_inode: o("file", "f_inode")?,
            fs_pwd_dentry: self.nested(&[("fs_struct", "pwd"), ("path", "dentry")])?,
            fs_pwd_vfsmount: self.nested(&[("fs_struct", "pwd"), ("path", "mnt")])?,
            dentry_parent: o("dentry", "d_parent")?,
            dentry_name_ptr: self.nested(&[("dentry", "d_name"), ("qstr", "name")])?,
            dentry_inode: o("dentry", "d_inode")?,
            dentry_sb: o("dentry", "d_sb")?,
            mount_mnt: o("mount", "mnt")?,
            mount_parent: o("mount", "mnt_parent")?,
            mount_mountpoint: o("mount", "mnt_mountpoint")?,
            vfsmount_root: o("vfsmount", "mnt_root")?,
            vfsmount_flags: o("vfsmount", "mnt_flags")?,
            inode_nlink: o("inode", "i_nlink")?,
            sb_magic: o("super_block", "s_magic")?,
            sb_flags: o("super_block", "s_flags")?,
            signal_live: o("signal_struct", "live")?,
            signal_tty: o("signal_struct", "tty")?,
            tty_name: o("tty_struct", "name")?,
            nsproxy_uts: o("nsproxy", "uts_ns")?,
            nsproxy_ipc: o("nsproxy", "ipc_ns")?,
            nsproxy_mnt: o("nsproxy", "mnt_ns")?,
            nsproxy_pid: o("nsproxy", "pid_ns_for_children")?,
            nsproxy_net: o("nsproxy", "net_ns")?,
            nsproxy_cgroup: self.offset_or_absent("nsproxy", "cgroup_ns")?,
            inode_private: self.optional("inode", "i_private")?,
            pid_numbers: self.optional("pid", "numbers")?,
            upid_nr: self.optional("upid", "nr")?,
            bpf_map_id: self.optional("bpf_map", "id")?,
            bpf_link_id: self.optional("bpf_link", "id")?,
            uts_inum: self.ns_inum("uts_namespace")?,
            ipc_inum: self.ns_inum("ipc_namespace")?,
            mnt_inum: self.ns_inum("mnt_namespace")?,
            pid_inum: self.ns_inum("pid_namespace")?,
            net_inum: self.ns_inum("net")?,
            cgroup_inum: self.ns_inum("cgroup_namespace")?,
            user_inum: self.ns_inum("user_namespace")?,
            regs_arg0: self.syscall_reg(0)?,
            regs_arg1: self.syscall_reg(1)?,
            regs_arg2: self.syscall_reg(2)?,
            regs_arg3: self.syscall_reg(3)?,
            regs_arg4: self.syscall_reg(4)?,
            regs_arg5: self.syscall_reg(5)?,
            regs_syscall_nr: self.syscall_reg(6)?,
            regs_bx: self.ia32_reg(0)?,
            regs_cx: self.ia32_reg(1)?,
            regs_bp: self.ia32_reg(2)?,
            task_ti_status: match self.nested(&[("task_struct", "thread_info"), ("thread_info", "status")]) {
                Err(BtfError::NoStruct(_) | BtfError::NoField { .. }) => OFFSET_ABSENT,
                other => other?,
            },
        })
    }

    /// The `pt_regs` member holding system call argument `i` (0–5), or the call's number (6).
    /// Only x86-64 is named: elsewhere these stay absent and the loader keeps the syscall
    /// tracepoints instead of the raw dispatcher.
    fn syscall_reg(&self, i: usize) -> Result<u32, BtfError> {
        match SYSCALL_REGS.get(i) {
            Some(reg) => self.optional("pt_regs", reg),
            None => Ok(OFFSET_ABSENT),
        }
    }

    /// The `pt_regs` members that hold a 32-bit call's arguments besides those of
    /// [`Self::syscall_reg`]: `bx` (0), `cx` (1), `bp` (2); x86-64 only, as there.
    fn ia32_reg(&self, i: usize) -> Result<u32, BtfError> {
        match IA32_REGS.get(i) {
            Some(reg) => self.optional("pt_regs", reg),
            None => Ok(OFFSET_ABSENT),
        }
    }

    /// `start_boottime` (5.5+), `real_start_time` before that.
    /// Offsets of an inode's mtime seconds and nanoseconds: `i_mtime_sec`/`i_mtime_nsec` since
    /// 6.11, a `timespec64` named `__i_mtime` in 6.6–6.10 and `i_mtime` before. `None` (the
    /// exec event then carries no executable identity, and `i_size` is not read either) when
    /// the kernel has none of them.
    fn inode_mtime(&self) -> Result<Option<(u32, u32)>, BtfError> {
        match (self.offset("inode", "i_mtime_sec"), self.offset("inode", "i_mtime_nsec")) {
            (Ok(sec), Ok(nsec)) => return Ok(Some((sec, nsec))),
            (Err(BtfError::NoField { .. }), _) | (_, Err(BtfError::NoField { .. })) => {}
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
        for name in ["__i_mtime", "i_mtime"] {
            match self.offset("inode", name) {
                Ok(base) => {
                    let sec = self.offset("timespec64", "tv_sec")?;
                    let nsec = self.offset("timespec64", "tv_nsec")?;
                    return Ok(Some((base + sec, base + nsec)));
                }
                Err(BtfError::NoField { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn start_boottime_offset(&self) -> Result<u32, BtfError> {
        match self.offset("task_struct", "start_boottime") {
            Err(BtfError::NoField { .. }) => self.offset("task_struct", "real_start_time"),
            other => other,
        }
    }
}

/// `pt_regs` members of the system call ABI: arguments 0–5, then the call's number.
#[cfg(target_arch = "x86_64")]
const SYSCALL_REGS: &[&str] = &["di", "si", "dx", "r10", "r8", "r9", "orig_ax"];
#[cfg(not(target_arch = "x86_64"))]
const SYSCALL_REGS: &[&str] = &[];
#[cfg(target_arch = "x86_64")]
const IA32_REGS: &[&str] = &["bx", "cx", "bp"];
#[cfg(not(target_arch = "x86_64"))]
const IA32_REGS: &[&str] = &[];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_offsets_resolve() {
        let Ok(btf) = KernelBtf::from_sys() else {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        };
        let off = btf.kernel_offsets().expect("offsets");
        assert_eq!(off.ready, 1);
        // mm_struct.arg_end follows arg_start (both unsigned long).
        assert_eq!(off.mm_arg_end, off.mm_arg_start + 8);
        // kuid_t uid precedes gid in struct cred.
        assert_eq!(off.cred_gid, off.cred_uid + 4);
        // The task's parent, credentials, audit ids and namespaces each in one probe read.
        {
            use sensor_common::offsets::{audit_ids_fit, cred_ids_fit, nsproxy_fits, task_family_fits};
            let o = &off;
            let ids = [
                o.cred_uid,
                o.cred_gid,
                o.cred_suid,
                o.cred_sgid,
                o.cred_euid,
                o.cred_egid,
                o.cred_fsuid,
                o.cred_fsgid,
            ];
            assert!(cred_ids_fit(ids), "cred ids {ids:?}");
            assert!(task_family_fits(o.task_real_parent, o.task_group_leader));
            assert!(audit_ids_fit(o.task_loginuid, o.task_sessionid));
            let ns =
                [o.nsproxy_uts, o.nsproxy_ipc, o.nsproxy_mnt, o.nsproxy_pid, o.nsproxy_net, o.nsproxy_cgroup];
            assert!(nsproxy_fits(ns), "nsproxy {ns:?}");
        }
        assert_ne!(off.task_cred, OFFSET_ABSENT);
        // The exec event's executable identity: every kernel since 5.10 has some mtime.
        for o in [off.inode_size, off.inode_mtime_sec, off.inode_mtime_nsec] {
            assert_ne!(o, OFFSET_ABSENT);
        }
        for o in [off.inode_private, off.pid_numbers, off.bpf_map_id, off.bpf_link_id] {
            assert_ne!(o, OFFSET_ABSENT);
        }
        #[cfg(target_arch = "x86_64")]
        {
            // struct pt_regs (arch/x86/include/asm/ptrace.h): r15 r14 r13 r12 bp bx r11 r10 r9
            // r8 ax cx dx si di orig_ax, eight bytes each.
            let regs =
                [off.regs_arg0, off.regs_arg1, off.regs_arg2, off.regs_arg3, off.regs_arg4, off.regs_arg5];
            assert_eq!(regs, [112, 104, 96, 56, 72, 64]);
            assert_eq!(off.regs_syscall_nr, 120);
            assert!(
                sensor_common::offsets::regs_window_fits(&off),
                "one probe read of the argument registers"
            );
            assert_eq!([off.regs_bx, off.regs_cx, off.regs_bp], [40, 88, 32]);
            assert!(
                sensor_common::offsets::ia32_window_fits(&off),
                "one probe read of a 32-bit call's registers"
            );
            assert_ne!(off.task_ti_status, OFFSET_ABSENT);
        }
    }

    /// The kernel's BTF is memory-mapped where sysfs allows it (6.16+) and read and cached
    /// elsewhere: both give the same offsets.
    #[test]
    fn mapped_and_cached_btf_give_the_same_offsets() {
        let path = Path::new(VMLINUX_BTF);
        let Ok(cached) = KernelBtf::with_backend(path, Backend::Cache) else {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        };
        let Ok(mapped) = KernelBtf::with_backend(path, Backend::Mmap) else {
            eprintln!("skipped: this kernel does not let {VMLINUX_BTF} be mapped");
            return;
        };
        let (c, m) = (cached.kernel_offsets().expect("cached"), mapped.kernel_offsets().expect("mapped"));
        assert_eq!(c, m);
        assert_eq!(cached.has_function(PREEMPT_PROBE), mapped.has_function(PREEMPT_PROBE));
        // A struct asked for again comes from the memo, the same as the first time.
        assert_eq!(mapped.offset("task_struct", "pid").ok(), Some(c.task_pid));
    }

    const PREEMPT_PROBE: &str = "trace_call_bpf";

    #[test]
    fn a_compressed_or_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xz = dir.path().join("5.10.0-46-cloud-amd64.btf.tar.xz");
        std::fs::write(&xz, b"\xfd7zXZ\0rest").expect("write");
        let err = KernelBtf::from_file(&xz).unwrap_err().to_string();
        assert!(err.contains(&xz.display().to_string()) && err.contains("tar -xJf"), "{err}");
        let missing = dir.path().join("none.btf");
        let err = KernelBtf::locate(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let junk = dir.path().join("junk.btf");
        std::fs::write(&junk, b"not btf at all").expect("write");
        assert!(KernelBtf::from_file(&junk).is_err());
    }

    #[test]
    fn a_copy_of_the_kernel_btf_gives_the_same_offsets() {
        let Ok(sys) = KernelBtf::from_sys() else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = dir.path().join("vmlinux.btf");
        std::fs::copy(VMLINUX_BTF, &copy).expect("copy");
        let (file, source) = KernelBtf::locate(Some(&copy)).expect("locate");
        assert_eq!(source, BtfSource::File(copy.clone()));
        assert_eq!(file.kernel_offsets().expect("file"), sys.kernel_offsets().expect("sys"));
        let msg = BtfError::Missing { release: "5.10.0-46-cloud-amd64".into() }.to_string();
        assert!(msg.contains("--btf FILE") && msg.contains("5.10.0-46-cloud-amd64"), "{msg}");
    }

    #[test]
    fn missing_field_is_named() {
        let Ok(btf) = KernelBtf::from_sys() else {
            return;
        };
        let err = btf.offset("task_struct", "no_such_field").unwrap_err();
        assert!(err.to_string().contains("no_such_field"), "{err}");
    }
}
