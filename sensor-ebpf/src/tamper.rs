//! Acts aimed at the sensor itself: signals generated for it (raw tracepoint `signal_generate`,
//! before delivery, so a SIGKILL still leaves its event in the ring for the next sensor),
//! `process_vm_writev`/`process_vm_readv`/`pidfd_getfd` (their exits go to `sys_exit_ptrace`),
//! and `bpf()` commands on the sensor's programs, maps and links (the ids it loaded are in
//! `OWN_IDS`), or opening pinned objects.
//!
//! Kernel prototypes:
//! `signal_generate: TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct *task,
//!  int group, int result)` (include/trace/events/signal.h)
//! `process_vm_writev(pid_t pid, const struct iovec *lvec, unsigned long liovcnt, …)`
//! `pidfd_getfd(int pidfd, int fd, unsigned int flags)`

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_task,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    EventKind,
    offsets::OFFSET_ABSENT,
    syscalls::PendingSyscall,
    tamper::{
        BPF_PATH_LEN, BpfCmdEvent, FLAG_OWN_OBJECT, FLAG_SENDER_IS_PARENT, FLAG_TARGET_SENSOR, OBJ_LINK,
        OBJ_MAP, OBJ_PROG, REQ_PIDFD_GETFD, REQ_PROCESS_VM_READV, REQ_PROCESS_VM_WRITEV, SI_KERNEL, SI_USER,
        SignalEvent, bpf_cmd, own_id_key,
    },
};

use crate::{
    dispatch::Syscall,
    emit::{emit, fill_header},
    file::fd_file,
    kernel::{copy_kernel, read_z},
    maps::{OWN_IDS, control, sensor_tgid},
    off,
    syscalls::{current, save, target_flags},
    task::fill_task,
};

const SIGCHLD: u32 = 17;
const SIGWINCH: u32 = 28;

#[raw_tracepoint(tracepoint = "signal_generate")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn signal_generate(ctx: RawTracePointContext) -> i32 {
    let Some(c) = control() else { return 0 };
    let sensor = sensor_tgid(c);
    if sensor == 0 {
        return 0;
    }
    let target: *const u8 = ctx.arg(2);
    // SAFETY: probe reads of the target task (zero when a read faults).
    let (tgid, start, tid, parent_tgid) = unsafe {
        let tgid: u32 = read_z(target, off!(task_tgid));
        let leader: *const u8 = read_z(target, off!(task_group_leader));
        let start: u64 = read_z(leader, off!(task_start_boottime));
        let parent: *const u8 = read_z(target, off!(task_real_parent));
        (tgid, start, read_z::<u32>(target, off!(task_pid)), read_z::<u32>(parent, off!(task_tgid)))
    };
    // SAFETY: a map value of plain integers, read volatile (userspace writes it).
    let sensor_start = unsafe { core::ptr::read_volatile(&raw const c.sensor_start_ns) };
    if tgid != sensor || (sensor_start != 0 && start != sensor_start) {
        return 0;
    }
    let sig = ctx.arg::<u64>(0) as u32;
    // Its own children's exits and terminal resizes are not acts against the sensor.
    if sig == SIGCHLD || sig == SIGWINCH {
        return 0;
    }
    let info: u64 = ctx.arg(1);
    // SEND_SIG_NOINFO (0) is a user signal without details, SEND_SIG_PRIV (1) the kernel's.
    let code: i32 = match info {
        0 => SI_USER,
        1 => SI_KERNEL,
        // SAFETY: `kernel_siginfo.si_code` follows si_signo and si_errno (ABI-fixed).
        p => unsafe { read_z(p as *const u8, 8) },
    };
    let group = ctx.arg::<u64>(3) as u32;
    let result = ctx.arg::<u64>(4) as u32;
    let sender = ctx.tgid();
    let mut flags = FLAG_TARGET_SENSOR;
    if parent_tgid == sender {
        flags |= FLAG_SENDER_IS_PARENT;
    }
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    emit::<SignalEvent>(EventKind::Signal, |ev| {
        // SAFETY: `ev` is a reserved ring-buffer entry of the right size.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).target_tgid = tgid;
            (*ev).target_tid = tid;
            (*ev).target_start_ns = start;
            (*ev).signal = sig;
            (*ev).code = code;
            (*ev).group = group;
            (*ev).result = result;
            let size = size_of::<SignalEvent>();
            fill_header(&raw mut (*ev).header, EventKind::Signal, size, sender, ctx.pid(), flags);
        }
        Ok(())
    });
    0
}

// --- process_vm_writev / process_vm_readv / pidfd_getfd (exit: sys_exit_ptrace) ---

crate::syscall_program!(enter sys_enter_process_vm_writev, raw_enter_vm_writev, ia32_enter_vm_writev, [fentry_vm_writev_0 = 0 fentry_vm_writev_1 = 1], vm_writev_enter);
crate::syscall_program!(enter sys_enter_process_vm_readv, raw_enter_vm_readv, ia32_enter_vm_readv, [fentry_vm_readv_0 = 0 fentry_vm_readv_1 = 1], vm_readv_enter);
crate::syscall_program!(enter sys_enter_pidfd_getfd, raw_enter_pidfd_getfd, ia32_enter_pidfd_getfd, [fentry_pidfd_getfd_0 = 0 fentry_pidfd_getfd_1 = 1], pidfd_getfd_enter);

#[inline(always)]
fn vm_writev_enter(ctx: &impl Syscall) -> u32 {
    vm_enter(ctx, REQ_PROCESS_VM_WRITEV, false)
}

#[inline(always)]
fn vm_readv_enter(ctx: &impl Syscall) -> u32 {
    // Debuggers and profilers read other processes all the time: only the sensor's memory (its
    // keys, its state) is of interest here.
    vm_enter(ctx, REQ_PROCESS_VM_READV, true)
}

#[inline(always)]
fn vm_enter(ctx: &impl Syscall, request: u64, only_sensor: bool) -> u32 {
    let Some((_, tid, _)) = current() else { return 0 };
    let target = ctx.arg(0) as u32;
    if only_sensor && target_flags(target) == 0 {
        return 0;
    }
    // SAFETY: `p` is the scratch slot.
    save(tid, EventKind::Ptrace, |p| unsafe {
        (*p).arg0 = target;
        (*p).arg1 = request;
    });
    0
}

#[inline(always)]
fn pidfd_getfd_enter(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, _)) = current() else { return 0 };
    let target = pidfd_pid(task, ctx.arg(0) as u32);
    let fd = ctx.arg(1);
    // SAFETY: `p` is the scratch slot.
    save(tid, EventKind::Ptrace, |p| unsafe {
        (*p).arg0 = target;
        (*p).arg1 = REQ_PIDFD_GETFD;
        (*p).arg2 = fd;
    });
    0
}

/// The global pid number a pidfd of `task` refers to (0 when unknown): `struct pid` is the
/// inode's `i_private` (pidfs, 6.9+) or the file's `private_data` (anon inode, before).
#[inline(always)]
fn pidfd_pid(task: *const u8, pidfd: u32) -> u32 {
    let Ok(file) = fd_file(task, pidfd) else { return 0 };
    let numbers = off!(pid_numbers);
    if numbers == OFFSET_ABSENT {
        return 0;
    }
    // SAFETY: probe reads (zero when a pointer on the way is NULL or absent).
    unsafe {
        let inode: *const u8 = read_z(file, off!(file_inode));
        let mut pid: *const u8 = read_z(inode, off!(inode_private));
        if pid.is_null() {
            pid = read_z(file, off!(file_private_data));
        }
        read_z(pid, numbers + off!(upid_nr))
    }
}

// --- bpf() commands on the sensor's objects (exit: `sys_exit_bpf`) ---

/// Saves what the exit reports when `cmd` touches one of the sensor's objects or opens a pin.
/// When the attribute block cannot be read yet (a page the caller has not touched: a probe read
/// cannot fault it in), the command is saved unresolved and the exit, after the kernel copied
/// the block in, decides (see [`bpf_exit`]): otherwise an intruder could reach the sensor's maps
/// by id or fd without a record.
#[inline(always)]
pub fn bpf_enter(task: *const u8, tid: u32, cmd: u32, attr: u64) {
    if cmd == bpf_cmd::OBJ_GET {
        obj_get_enter(tid, attr);
        return;
    }
    let Some(target) = target_of(task, cmd, attr) else { return };
    match target {
        Ok((kind, id)) => {
            if !is_own(kind, id) {
                return;
            }
            // SAFETY: `p` is the scratch slot.
            save(tid, EventKind::BpfAccess, |p| unsafe {
                (*p).arg0 = cmd;
                (*p).arg1 = kind;
                (*p).arg2 = u64::from(id);
                *(&raw mut (*p).name).cast::<u8>() = 0;
            });
        }
        // SAFETY: `p` is the scratch slot. `arg1` 0: not resolved; `arg2`: the block's address.
        Err(()) => save(tid, EventKind::BpfAccess, |p| unsafe {
            (*p).arg0 = cmd;
            (*p).arg1 = 0;
            (*p).arg2 = attr;
            *(&raw mut (*p).name).cast::<u8>() = 0;
        }),
    }
}

/// The kind and id of the object `cmd` acts on, from its attribute block at `attr` (an id, or a
/// descriptor of `task`'s; id 0 when the descriptor holds no such object). `None` for commands
/// the sensor does not watch; `Err` when the block could not be read.
#[inline(always)]
fn target_of(task: *const u8, cmd: u32, attr: u64) -> Option<Result<(u64, u32), ()>> {
    let (kind, at, by_fd, id_off) = match cmd {
        bpf_cmd::PROG_GET_FD_BY_ID => (OBJ_PROG, attr, false, 0),
        bpf_cmd::MAP_GET_FD_BY_ID => (OBJ_MAP, attr, false, 0),
        bpf_cmd::LINK_GET_FD_BY_ID => (OBJ_LINK, attr, false, 0),
        bpf_cmd::MAP_UPDATE_ELEM
        | bpf_cmd::MAP_DELETE_ELEM
        | bpf_cmd::MAP_LOOKUP_AND_DELETE_ELEM
        | bpf_cmd::MAP_FREEZE => (OBJ_MAP, attr, true, off!(bpf_map_id)),
        // `batch`: in_batch, out_batch, keys, values (u64 each), count, then map_fd.
        bpf_cmd::MAP_UPDATE_BATCH | bpf_cmd::MAP_DELETE_BATCH => (OBJ_MAP, attr + 36, true, off!(bpf_map_id)),
        bpf_cmd::LINK_UPDATE | bpf_cmd::LINK_DETACH => (OBJ_LINK, attr, true, off!(bpf_link_id)),
        _ => return None,
    };
    let Ok(v) = user_u32(at) else { return Some(Err(())) };
    Some(Ok((kind, if by_fd { object_id(task, v, id_off) } else { v })))
}

/// Whether object `id` of `kind` is one of the sensor's own.
#[inline(always)]
fn is_own(kind: u64, id: u32) -> bool {
    // SAFETY: map lookup of a plain value.
    id != 0 && unsafe { OWN_IDS.get(own_id_key(kind, id)) }.is_some()
}

/// `BPF_OBJ_GET` (`union bpf_attr`: `__aligned_u64 pathname` first): saves the path, which
/// userspace compares with its pin directory.
#[inline(always)]
fn obj_get_enter(tid: u32, attr: u64) {
    // SAFETY: `p` is the scratch slot.
    save(tid, EventKind::BpfAccess, |p| unsafe {
        // `arg1` (object kind) stays 0: a path, not an id; `arg2` keeps the attribute block's
        // address for the exit (see `obj_get_path`).
        (*p).arg0 = bpf_cmd::OBJ_GET;
        (*p).arg2 = attr;
        obj_get_path(p);
    });
}

/// The path of the `BPF_OBJ_GET` attribute block at `(*p).arg2` into `(*p).name` (empty when
/// unreadable). Read at the enter and, when that found no page (a path in memory the caller
/// has not touched yet: a probe read cannot fault it in), again at the exit, after the kernel
/// copied it: an opener of the sensor's pins cannot hide the path that way.
///
/// # Safety
/// `p` is the scratch slot.
#[inline(always)]
unsafe fn obj_get_path(p: *mut PendingSyscall) {
    // SAFETY: the caller's slot; user memory is read with the probe helpers.
    unsafe {
        let mut path = 0u64;
        let name = (&raw mut (*p).name).cast::<u8>();
        if bpf_probe_read_user((&raw mut path).cast(), 8, (*p).arg2 as *const _) != 0
            || path == 0
            || bpf_probe_read_user_str(name.cast(), BPF_PATH_LEN as u32, path as *const _) <= 0
        {
            *name = 0;
        }
    }
}

/// Emits the BPF command event saved by [`bpf_enter`] or [`obj_get_enter`].
///
/// # Safety
/// `saved` must be the scratch slot holding this thread's saved state.
#[inline(always)]
pub unsafe fn bpf_exit(ctx: &impl Syscall, task: *const u8, tid: u32, tgid: u32, saved: *mut PendingSyscall) {
    // SAFETY: the scratch slot, per the contract.
    let obj_get = unsafe { (*saved).arg0 } == bpf_cmd::OBJ_GET;
    // SAFETY: as above.
    if obj_get && unsafe { (*saved).name[0] } == 0 {
        // SAFETY: as above.
        unsafe { obj_get_path(saved) };
    }
    // SAFETY: as above.
    if !obj_get && unsafe { (*saved).arg1 } == 0 {
        // Saved unresolved by `bpf_enter`: the attribute block is readable now.
        // SAFETY: as above.
        let (cmd, attr) = unsafe { ((*saved).arg0, (*saved).arg2) };
        let Some(Ok((kind, id))) = target_of(task, cmd, attr) else { return };
        if !is_own(kind, id) {
            return;
        }
        // SAFETY: as above.
        unsafe {
            (*saved).arg1 = kind;
            (*saved).arg2 = u64::from(id);
        }
    }
    // Generic over the way in, so each program has its own copy of the fill below (shared by
    // two programs, LLVM would make it a subprogram: see the loader's no-subprogram test).
    let result = ctx.ret() as i32;
    emit::<BpfCmdEvent>(EventKind::BpfAccess, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` valid per the contract.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).cmd = (*saved).arg0;
            (*ev).obj_type = (*saved).arg1 as u32;
            (*ev).obj_id = if obj_get { 0 } else { (*saved).arg2 as u32 };
            (*ev).result = result;
            let src = (&raw const (*saved).name).cast::<[u8; BPF_PATH_LEN]>();
            copy_kernel(&raw mut (*ev).path, src);
            let flags = if (*saved).arg1 != 0 { FLAG_OWN_OBJECT } else { 0 };
            fill_header(
                &raw mut (*ev).header,
                EventKind::BpfAccess,
                size_of::<BpfCmdEvent>(),
                tgid,
                tid,
                flags,
            );
        }
        Ok(())
    });
}

/// The kernel id of the BPF object behind `fd` of `task`: its `private_data` (a `bpf_map` or
/// `bpf_link`), then the id at `id_off`. 0 when unknown.
#[inline(always)]
fn object_id(task: *const u8, fd: u32, id_off: u32) -> u32 {
    let Ok(file) = fd_file(task, fd) else { return 0 };
    // SAFETY: probe reads (zero when a pointer on the way is NULL or the offset absent).
    unsafe {
        let obj: *const u8 = read_z(file, off!(file_private_data));
        read_z(obj, id_off)
    }
}

/// A `u32` of the caller's memory; `Err` when no page is there.
#[inline(always)]
fn user_u32(addr: u64) -> Result<u32, ()> {
    let mut v = 0u32;
    // SAFETY: user memory read with the probe helper into a stack value.
    if unsafe { bpf_probe_read_user((&raw mut v).cast(), 4, addr as *const _) } != 0 {
        return Err(());
    }
    Ok(v)
}

const _: () = assert!(FLAG_TARGET_SENSOR != FLAG_SENDER_IS_PARENT);
