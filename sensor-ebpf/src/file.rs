//! File events: one program on `sys_enter_*` and one on `sys_exit_*` of every watched file
//! syscall (open family, unlink, rmdir, rename, link, symlink, chmod, chown, truncate, mknod,
//! setxattr). Which argument is what comes from `FILE_SYSCALLS` (written by the loader).
//!
//! Filtering happens before anything is reserved: read-only opens are dropped unless the file
//! (or a directory above it, up to `INODE_FILTER_DEPTH` levels) is marked sensitive in
//! `INODE_FILTER`; anything at or below an excluded directory is dropped; failed read-only opens
//! are kept only when access was denied (EACCES/EPERM).
//!
//! Paths are resolved in the kernel: an opened file or fd argument is walked from its own
//! dentry; a path argument is sent as passed together with the walked path of its dirfd (or the
//! cwd) unless it is absolute, and userspace joins and normalises the two.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{
            bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_user, bpf_probe_read_user_str,
        },
    },
    macros::map,
    maps::{Array, HashMap, LruHashMap, RingBuf},
    programs::TracePointContext,
};
use sensor_common::{
    EventKind,
    file::{
        ARG_NONE, FILE_DATA_SIZE, FILE_DIR1_IS_TARGET, FILE_FIXED_SIZE, FILE_NAME_MAX, FILE_NAME_TRUNCATED,
        FILE_NAME_UNREADABLE, FILE_PROTECTED, FILE_SENSITIVE, FILE_WALK_LIMIT, FileEvent, FileFixed,
        FileSyscallSpec, INODE_BLOOM_WORDS, INODE_EXCLUDED, INODE_FILTER_DEPTH, INODE_INCLUDED,
        INODE_PROTECTED, INODE_SENSITIVE, InodeKey, PendingFile, inode_bloom_slot, op,
    },
    syscalls::SYSCALL_SLOTS,
};

use crate::{
    dispatch::Syscall,
    emit::{Loss, count_loss, output_flags},
    kernel::{arg_at, opaque, read, read_ptr},
    maps::{capture, control, ignored, sensor_tgid},
    off,
    path::{parent_and_inode, walk},
    task::fill_task,
};

/// File events; high volume, so kept apart from process lineage events.
#[map(name = "FILE_EVENTS")]
static FILE_EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// syscall number → argument layout (written by the loader for this architecture; `op` 0: not
/// watched). An array, not a hash: looked up on every watched call, and an array lookup is a
/// bounds check the verifier inlines, a hash lookup a helper call that hashes the key.
#[map(name = "FILE_SYSCALLS")]
static FILE_SYSCALLS: Array<FileSyscallSpec> = Array::with_max_entries(SYSCALL_SLOTS, 0);

/// (dev, ino) → `INODE_*` bits, kept current by userspace from the configured paths.
#[map(name = "INODE_FILTER")]
static INODE_FILTER: HashMap<InodeKey, u32> = HashMap::with_max_entries(4096, 0);

/// Bloom bitmap of the inode numbers in `INODE_FILTER` (see `INODE_BLOOM_WORDS`), kept by
/// userspace with the filter.
#[map(name = "INODE_BLOOM")]
static INODE_BLOOM: Array<u64> = Array::with_max_entries(INODE_BLOOM_WORDS, 0);

/// Arguments saved at enter, by thread id.
#[map(name = "PENDING_FILE")]
static PENDING_FILE: LruHashMap<u32, PendingFile> = LruHashMap::with_max_entries(16384, 0);

/// One slot per CPU where a file event is assembled (larger than a per-CPU value may be).
#[map(name = "FILE_SCRATCH")]
static FILE_SCRATCH: Array<FileEvent> = Array::with_max_entries(256, 0);

const AT_FDCWD: i32 = -100;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const EPERM: i64 = 1;
const EACCES: i64 = 13;
const NAME_MASK: u32 = FILE_NAME_MAX as u32 - 1;
const WALK_MASK: u32 = 8191;
const DATA_MASK: u32 = FILE_DATA_SIZE as u32 - 1;

crate::syscall_program!(exit sys_exit_file, raw_exit_file, ia32_exit_file, [fexit_file_0 = 0 fexit_file_1 = 1], exit, compat checked by body);

/// Saves the arguments for the exit. Only on the syscall tracepoints, whose exit record has no
/// arguments: through the dispatcher the exit reads them from the registers (see
/// `sensor_common::names::TRACEPOINT_ONLY`).
#[aya_ebpf::macros::tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sys_enter_file(ctx: TracePointContext) -> u32 {
    enter(&ctx)
}

#[inline(always)]
fn enter(ctx: &TracePointContext) -> u32 {
    let Some(control) = control() else { return 0 };
    let id = bpf_get_current_pid_tgid();
    if ignored(control, (id >> 32) as u32) {
        return 0;
    }
    let nr = ctx.nr();
    if spec_of(nr).is_none() {
        return 0;
    }
    let p = PendingFile { nr, _pad: 0, args: ctx.args() };
    let _ = PENDING_FILE.insert(id as u32, p, 0);
    0
}

#[inline(always)]
fn exit(ctx: &impl Syscall) -> u32 {
    match try_exit(ctx) {
        Ok(()) => 0,
        Err(why) => {
            count_loss(EventKind::File, why);
            0
        }
    }
}

/// The argument layout of a watched call; `None` for the others.
#[inline(always)]
fn spec_of(nr: u32) -> Option<FileSyscallSpec> {
    FILE_SYSCALLS.get(nr).copied().filter(|s| s.op != 0)
}

/// Argument `i` of the pending call.
#[inline(always)]
fn arg(p: &PendingFile, i: u8) -> u64 {
    arg_at(&p.args, i)
}

/// The exit of a watched call: the event is decided on (see the module documentation),
/// assembled in this CPU's scratch slot and sent. The open flags are computed here rather than
/// in a function of their own: so extracted, LLVM's code made the 6.18 verifier give up on the
/// program (E2BIG), though every other step below is extracted without that.
#[inline(always)]
fn try_exit(ctx: &impl Syscall) -> Result<(), Loss> {
    let Some(control) = control() else { return Ok(()) };
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    if ignored(control, (id >> 32) as u32) {
        return Ok(()); // the enter program saved nothing for the sensor's own calls
    }
    let Some(pending) = pending_call(ctx, tid) else { return Ok(()) };
    let Some(spec) = spec_of(pending.nr) else { return Ok(()) };
    let ret = ctx.ret();
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() } as *const u8;

    let mut flags_arg = if spec.flags != ARG_NONE { arg(&pending, spec.flags) } else { 0 };
    if spec.is_openat2 != 0 {
        // openat2(dfd, name, struct open_how *how, size): how->flags is the first u64.
        let mut f = 0u64;
        // SAFETY: user memory read with the probe helper into a stack value.
        unsafe { bpf_probe_read_user((&raw mut f).cast(), 8, arg(&pending, spec.aux) as *const _) };
        flags_arg = f;
    }
    if spec.is_open != 0 && spec.flags == ARG_NONE && spec.is_openat2 == 0 {
        flags_arg = O_CREAT | O_WRONLY | O_TRUNC; // creat(2)
    }
    let target = target_file(task, &pending, &spec, ret);
    let mut hdr_flags = 0u32;
    let wanted = wanted_call(target, &spec, flags_arg, ret, &mut hdr_flags);
    // A 32-bit call's number is another table's: everything above read harmless garbage, and
    // the call goes to the 32-bit twins. Only where a 32-bit call of this number is watched
    // must a call the filter drops pay the read of the task that tells.
    if (wanted || spec.ia32_slot != 0) && ctx.compat() {
        ctx.to_ia32();
        return Ok(());
    }
    if !wanted {
        return Ok(());
    }
    // `hdr_flags` is a different constant on each path through the decision above (sensitive,
    // protected, target or not, ...): made opaque, the paths verify the rest of the program
    // once between them (with the same after the paths: 277 k instructions verified → 71 k on
    // 6.18, half a second of start-up → a tenth). Only calls that make an event pay the copy.
    let mut hdr_flags = opaque(hdr_flags);

    // SAFETY: plain helper call.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let ev = FILE_SCRATCH.get_ptr_mut(cpu).ok_or(Loss::ReadFailed)?;
    // SAFETY: `ev` is this CPU's slot; every write into `data` is at a masked offset with a
    // bounded size, inside `data` + `slack`; kernel/user memory is read with probe helpers.
    unsafe {
        let f = &raw mut (*ev).fixed;
        let data = (&raw mut (*ev).data).cast::<u8>();
        fill_task(task, &raw mut (*f).task).map_err(|_| Loss::ReadFailed)?;
        fill_fixed(f, &pending, &spec, flags_arg, ret);

        if !fill_paths(task, &pending, &spec, target, data, f, &mut hdr_flags) {
            return Ok(());
        }
        let hdr_flags = opaque(hdr_flags);

        // Extended attribute name: only security.* attributes are reported.
        let cur = ((core::ptr::read_volatile(&raw const (*f).dir1_len) & WALK_MASK)
            + (core::ptr::read_volatile(&raw const (*f).name1_len) & NAME_MASK)
            + (core::ptr::read_volatile(&raw const (*f).dir2_len) & WALK_MASK)
            + (core::ptr::read_volatile(&raw const (*f).name2_len) & NAME_MASK))
            & DATA_MASK;
        if spec.op == op::SETXATTR && !xattr_name(&pending, &spec, data.wrapping_add(cur as usize), f) {
            return Ok(());
        }

        // The sensor's own changes to its protected files are its business (rotation, spools).
        if hdr_flags & FILE_PROTECTED != 0
            && (bpf_get_current_pid_tgid() >> 32) as u32 == sensor_tgid(control)
        {
            return Ok(());
        }
        let size = FILE_FIXED_SIZE as u32 + cur + ((*f).xattr_len & 255);
        let h = &raw mut (*f).header;
        (*h).kind = EventKind::File as u32;
        (*h).size = size;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        (*h).tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        (*h).tid = tid;
        (*h).cpu = cpu;
        (*h).flags = hdr_flags;
        let bytes = core::slice::from_raw_parts(ev.cast::<u8>(), size as usize);
        FILE_EVENTS.output::<[u8]>(bytes, output_flags(&FILE_EVENTS, bytes.len())).map_err(|_| Loss::RingFull)
    }
}

/// The call's number and arguments: from the registers through the dispatcher, else as the
/// enter program saved them (taken out of `PENDING_FILE`).
#[inline(always)]
fn pending_call(ctx: &impl Syscall, tid: u32) -> Option<PendingFile> {
    match ctx.call_at_exit() {
        Some((nr, args)) => Some(PendingFile { nr, _pad: 0, args }),
        None => {
            // SAFETY: map lookups; the pending value is copied out before removal.
            let p = (unsafe { PENDING_FILE.get(tid) }).copied()?;
            let _ = PENDING_FILE.remove(tid);
            Some(p)
        }
    }
}

/// The target as a `struct file *`, when there is one (the opened fd, or an fd argument);
/// NULL otherwise.
#[inline(always)]
fn target_file(task: *const u8, pending: &PendingFile, spec: &FileSyscallSpec, ret: i64) -> *const u8 {
    let target_fd = if spec.is_open != 0 && ret >= 0 {
        Some(ret as u32)
    } else if spec.fd != ARG_NONE {
        Some(arg(pending, spec.fd) as u32)
    } else {
        None
    };
    // A nullable pointer rather than an `Option`: LLVM hoists the load of an `Option`'s payload
    // above the check of its tag, and the 5.10 verifier refuses that read of stack the `None`
    // path never wrote (it refused `sys_exit_file` so).
    match target_fd {
        Some(fd) => fd_file(task, fd).unwrap_or(core::ptr::null()),
        None => core::ptr::null(),
    }
}

/// The fixed part's call fields, and every length zeroed.
///
/// # Safety
/// `f` must point at a writable `FileFixed`.
#[inline(always)]
unsafe fn fill_fixed(
    f: *mut FileFixed,
    pending: &PendingFile,
    spec: &FileSyscallSpec,
    flags_arg: u64,
    ret: i64,
) {
    // SAFETY: per the contract.
    unsafe {
        (*f).result = ret;
        (*f).op = spec.op;
        (*f).flags = flags_arg as u32;
        (*f).mode = if spec.mode != ARG_NONE { arg(pending, spec.mode) as u32 } else { 0 };
        (*f).uid = u32::MAX;
        (*f).gid = u32::MAX;
        (*f).length = 0;
        match spec.op {
            op::CHOWN => {
                (*f).uid = arg(pending, spec.aux) as u32;
                (*f).gid = arg(pending, spec.aux2) as u32;
            }
            op::TRUNCATE => (*f).length = arg(pending, spec.aux),
            _ => {}
        }
        // Volatile: LLVM would merge these stores into a byte-wise `memset` loop.
        core::ptr::write_volatile(&raw mut (*f).ino, 0);
        core::ptr::write_volatile(&raw mut (*f).dev, 0);
        core::ptr::write_volatile(&raw mut (*f).dir1_len, 0);
        core::ptr::write_volatile(&raw mut (*f).dir1_flags, 0);
        core::ptr::write_volatile(&raw mut (*f).name1_len, 0);
        core::ptr::write_volatile(&raw mut (*f).dir2_len, 0);
        core::ptr::write_volatile(&raw mut (*f).dir2_flags, 0);
        core::ptr::write_volatile(&raw mut (*f).name2_len, 0);
        core::ptr::write_volatile(&raw mut (*f).xattr_len, 0);
        (*f).syscall_nr = pending.nr;
    }
}

/// The extended attribute's name at `dst`; false unless it is a `security.*` attribute (only
/// those are reported).
///
/// # Safety
/// `dst` must have 256 writable bytes; `f` valid.
#[inline(always)]
unsafe fn xattr_name(pending: &PendingFile, spec: &FileSyscallSpec, dst: *mut u8, f: *mut FileFixed) -> bool {
    // SAFETY: per the contract; user memory is read with the probe helper.
    unsafe {
        let n = bpf_probe_read_user_str(dst.cast(), 256, arg(pending, spec.aux) as *const _);
        let is_security = n > 9 && {
            let mut p = [0u8; 9];
            core::ptr::copy_nonoverlapping(dst, p.as_mut_ptr(), 9);
            &p == b"security."
        };
        if is_security {
            (*f).xattr_len = (n as u32 - 1) & 255;
        }
        is_security
    }
}

/// Path 1 (the target file itself, or dirfd/cwd + the name as passed) and path 2 (rename,
/// link, symlink target side) into `data`. False when a directory is excluded.
///
/// # Safety
/// As for [`path_arg`]: `data` is the event's data area, `f` its fixed part.
#[inline(always)]
unsafe fn fill_paths(
    task: *const u8,
    pending: &PendingFile,
    spec: &FileSyscallSpec,
    target: *const u8,
    data: *mut u8,
    f: *mut FileFixed,
    hdr_flags: &mut u32,
) -> bool {
    // SAFETY: per the contract; kernel memory is read with probe helpers.
    unsafe {
        if !target.is_null() {
            let file = target;
            *hdr_flags |= FILE_DIR1_IS_TARGET;
            if let (Ok(d), Ok(m)) = (read_ptr(file, off!(file_dentry)), read_ptr(file, off!(file_vfsmount))) {
                let w = walk::<WALK_MASK, FILE_WALK_LIMIT>(d, m, data);
                (*f).dir1_len = w.len;
                (*f).dir1_flags = w.flags;
            }
            if let Ok(inode) = read_ptr(file, off!(file_inode)) {
                (*f).ino = read(inode, off!(inode_ino)).unwrap_or(0);
                if let Ok(sb) = read_ptr(inode, off!(inode_sb)) {
                    (*f).dev = read(sb, off!(sb_dev)).unwrap_or(0);
                }
            }
        } else if spec.path1 != ARG_NONE {
            let name = arg(pending, spec.path1);
            if !path_arg(task, pending, spec.dfd1, name, data, f, true, hdr_flags) {
                return false;
            }
        }
        if spec.path2 != ARG_NONE {
            let cur = (core::ptr::read_volatile(&raw const (*f).dir1_len) & WALK_MASK)
                + (core::ptr::read_volatile(&raw const (*f).name1_len) & NAME_MASK);
            let out = data.wrapping_add((cur & 16383) as usize);
            let name = arg(pending, spec.path2);
            if !path_arg(task, pending, spec.dfd2, name, out, f, false, hdr_flags) {
                return false;
            }
        }
        true
    }
}

/// Whether the call makes an event: not below an excluded directory, and for opens, a write
/// intent, a sensitive file or a denied access. Sets the target's `FILE_*` header bits.
#[inline(always)]
fn wanted_call(
    target: *const u8,
    spec: &FileSyscallSpec,
    flags_arg: u64,
    ret: i64,
    hdr_flags: &mut u32,
) -> bool {
    if !target.is_null() {
        // SAFETY: probe reads.
        let bits = unsafe { read_ptr(target, off!(file_dentry)).map(filter_bits).unwrap_or(0) };
        if !wanted(bits) {
            return false;
        }
        *hdr_flags |= flag_bits(bits);
    }
    if spec.is_open != 0 {
        let write_intent = flags_arg & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC) != 0;
        let sensitive = *hdr_flags & FILE_SENSITIVE != 0;
        let denied = ret == -EACCES || ret == -EPERM;
        if !write_intent && !sensitive && !(ret < 0 && denied) {
            return false; // ordinary read-only open: the noise filtered in the kernel
        }
    }
    true
}

/// Writes `[walked dir][name]` for a path argument at `out`, filling the slot's lengths.
/// A relative name is resolved against its dirfd (or the cwd); an absolute one needs no walk.
/// False when the directory is excluded (the event is dropped).
///
/// # Safety
/// `out` must have `WALK_MASK + 1 + PATH_NAME_MAX + FILE_NAME_MAX` writable bytes; `f` valid.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "one slot of the event, kept inline for the verifier")]
unsafe fn path_arg(
    task: *const u8,
    pending: &PendingFile,
    dfd_arg: u8,
    name: u64,
    out: *mut u8,
    f: *mut FileFixed,
    first: bool,
    hdr_flags: &mut u32,
) -> bool {
    // SAFETY: per the contract; reads through probe helpers.
    unsafe {
        // Peek at the first byte: absolute names need no directory.
        let mut first_byte = 0u8;
        let _ = bpf_probe_read_user((&raw mut first_byte).cast(), 1, name as *const _);
        let mut dir_len = 0u32;
        let mut dir_flags = 0u32;
        if first_byte != b'/' {
            let dfd = if dfd_arg != ARG_NONE { arg(pending, dfd_arg) as i32 } else { AT_FDCWD };
            let dir = if dfd == AT_FDCWD {
                read_ptr(task, off!(task_fs)).and_then(|fs| {
                    Ok((read_ptr(fs, off!(fs_pwd_dentry))?, read_ptr(fs, off!(fs_pwd_vfsmount))?))
                })
            } else {
                fd_file(task, dfd as u32).and_then(|file| {
                    Ok((read_ptr(file, off!(file_dentry))?, read_ptr(file, off!(file_vfsmount))?))
                })
            };
            if let Ok((d, m)) = dir {
                let bits = filter_bits(d);
                if !wanted(bits) {
                    return false;
                }
                *hdr_flags |= flag_bits(bits);
                let w = walk::<WALK_MASK, FILE_WALK_LIMIT>(d, m, out);
                dir_len = w.len;
                dir_flags = w.flags;
            }
        }
        let name_out = out.wrapping_add((dir_len & WALK_MASK) as usize);
        let n = bpf_probe_read_user_str(name_out.cast(), FILE_NAME_MAX as u32, name as *const _);
        let name_len = if n > 0 {
            if n as usize >= FILE_NAME_MAX {
                *hdr_flags |= FILE_NAME_TRUNCATED;
            }
            (n as u32 - 1) & NAME_MASK
        } else {
            *hdr_flags |= FILE_NAME_UNREADABLE;
            0
        };
        if first {
            (*f).dir1_len = dir_len;
            (*f).dir1_flags = dir_flags;
            (*f).name1_len = name_len;
        } else {
            (*f).dir2_len = dir_len;
            (*f).dir2_flags = dir_flags;
            (*f).name2_len = name_len;
        }
    }
    true
}

/// Whether filter bits let an event through: always on the sensor's protected paths (its
/// outputs are excluded, but others' changes there are tampering); never when excluded; with
/// include paths configured, only when included or sensitive.
#[inline(always)]
fn wanted(bits: u32) -> bool {
    if bits & INODE_PROTECTED != 0 {
        return true;
    }
    if bits & INODE_EXCLUDED != 0 {
        return false;
    }
    capture().include_mode == 0 || bits & (INODE_INCLUDED | INODE_SENSITIVE) != 0
}

/// Header flags for filter bits.
#[inline(always)]
fn flag_bits(bits: u32) -> u32 {
    let mut f = 0;
    if bits & INODE_SENSITIVE != 0 {
        f |= FILE_SENSITIVE;
    }
    if bits & INODE_PROTECTED != 0 {
        f |= FILE_PROTECTED;
    }
    f
}

/// The head of `struct fdtable`: `unsigned int max_fds; struct file __rcu **fd;`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FdtHead {
    max_fds: u32,
    _hole: u32,
    fd: *const u8,
}

/// `task->files->fdt->fd[fd]`.
#[inline(always)]
pub fn fd_file(task: *const u8, fd: u32) -> Result<*const u8, i32> {
    // SAFETY: probe reads; the index is checked against max_fds.
    unsafe {
        let files = read_ptr(task, off!(task_files))?;
        let fdt = read_ptr(files, off!(files_fdt))?;
        let (max, arr) = if off!(fdt_fd) == off!(fdt_max_fds) + 8 {
            // `max_fds` then `fd` (every kernel so far): one read. A load-time constant
            // condition: the verifier keeps one side.
            let w: FdtHead = read(fdt, off!(fdt_max_fds))?;
            (w.max_fds, w.fd)
        } else {
            (read(fdt, off!(fdt_max_fds))?, read(fdt, off!(fdt_fd))?)
        };
        if fd >= max || arr.is_null() {
            return Err(-9);
        }
        read_ptr(arr.wrapping_add(fd as usize * 8), 0)
    }
}

/// `INODE_*` bits of `dentry` and up to `INODE_FILTER_DEPTH` directories above it. Only an
/// inode whose number has its bit in `INODE_BLOOM` is looked up. `d_parent` never leaves the
/// file system, so the device is read once, from the first inode looked up.
#[inline(always)]
fn filter_bits(dentry: *const u8) -> u32 {
    let mut bits = 0u32;
    let mut d = dentry;
    let mut dev: Option<u32> = None;
    for _ in 0..INODE_FILTER_DEPTH {
        // SAFETY: probe reads and map lookups.
        unsafe {
            let (parent, inode) = parent_and_inode(d);
            if inode.is_null() {
                break;
            }
            let ino: u64 = read(inode, off!(inode_ino)).unwrap_or(0);
            let (word, bit) = inode_bloom_slot(ino);
            let maybe = INODE_BLOOM.get(word).is_some_and(|w| core::ptr::read_volatile(w) & bit != 0);
            if maybe {
                let dev = *dev.get_or_insert_with(|| match read_ptr(inode, off!(inode_sb)) {
                    Ok(sb) => read(sb, off!(sb_dev)).unwrap_or(0),
                    Err(_) => 0,
                });
                if let Some(b) = INODE_FILTER.get(InodeKey { dev, _pad: 0, ino }) {
                    bits |= *b;
                }
            }
            if parent.is_null() || parent == d {
                break;
            }
            d = parent;
        }
    }
    bits
}
