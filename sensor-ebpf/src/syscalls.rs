//! System-call tracepoints for privilege-relevant acts: credential changes, ptrace attach,
//! BPF program loads by others, memfd_create, io_uring_setup; plus `module/module_load`.
//!
//! Each program is reached through a syscall tracepoint or the raw dispatcher (see
//! `crate::dispatch`); its body reads the call through [`Syscall`]. An enter program saves what the exit needs in `PENDING` (by thread id); the exit program
//! emits only when the call succeeded (or, for ptrace/bpf/memfd, with its result).

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use sensor_common::{
    EventKind,
    syscalls::{
        BpfLoadEvent, CredEvent, Creds, IoUringSetupEvent, MEMFD_NAME_LEN, MODULE_NAME_LEN, MemfdEvent,
        ModuleEvent, PendingSyscall, PtraceEvent,
    },
};

use crate::{
    dispatch::Syscall,
    emit::{emit, fill_header},
    kernel::copy_kernel,
    maps::{PENDING, PENDING_SCRATCH, control, ignored, module_name_loc, sensor_tgid},
    task::{fill_task, read_creds},
};

const PTRACE_ATTACH: u64 = 16;
const PTRACE_SEIZE: u64 = 0x4206;
const BPF_PROG_LOAD: u64 = 5;
/// Offset of `prog_name` in `union bpf_attr` for BPF_PROG_LOAD.
const BPF_ATTR_PROG_NAME: u64 = 48;

/// Current task, thread id and tgid, unless the sensor itself or not ready.
#[inline(always)]
pub(crate) fn current() -> Option<(*const u8, u32, u32)> {
    let control = control()?;
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if ignored(control, tgid) {
        return None;
    }
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    Some((task, id as u32, tgid))
}

/// Saves `kind` and what `fill` puts into the scratch entry for this thread.
#[inline(always)]
pub(crate) fn save(tid: u32, kind: EventKind, fill: impl FnOnce(*mut PendingSyscall)) {
    let Some(p) = PENDING_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's scratch slot.
    unsafe {
        (*p).kind = kind as u32;
        // Volatile: LLVM would merge these stores into a `memset` call (a subprogram the 5.10
        // verifier refuses to mix with these helpers).
        core::ptr::write_volatile(&raw mut (*p).arg0, 0);
        core::ptr::write_volatile(&raw mut (*p).arg1, 0);
        core::ptr::write_volatile(&raw mut (*p).arg2, 0);
        (*p).name[0] = 0;
        fill(p);
        #[expect(
            clippy::needless_borrows_for_generic_args,
            reason = "passing the value would copy 320 bytes onto the 512-byte BPF stack"
        )]
        let _ = PENDING.insert(tid, &*p, 0);
    }
}

/// Takes this thread's saved state if it is of `kind` (copied to the scratch slot).
#[inline(always)]
fn take(tid: u32, kind: EventKind) -> Option<*mut PendingSyscall> {
    let p = take_any(tid)?;
    // SAFETY: scratch slot just written.
    (unsafe { (*p).kind } == kind as u32).then_some(p)
}

/// Takes this thread's saved state, whatever its kind (copied to the scratch slot).
#[inline(always)]
fn take_any(tid: u32) -> Option<*mut PendingSyscall> {
    let saved = PENDING.get_ptr(tid)?;
    let p = PENDING_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: both pointers are map values; the copy is a fixed-size struct.
    unsafe {
        copy_kernel(p, saved);
    }
    let _ = PENDING.remove(tid);
    Some(p)
}

// --- credentials: setuid family, setgid family, capset ---

crate::syscall_program!(enter sys_enter_cred, raw_enter_cred, ia32_enter_cred, [fentry_cred_0 = 0 fentry_cred_1 = 1], cred_enter);

#[inline(always)]
fn cred_enter(_: &impl Syscall) -> u32 {
    let Some((task, tid, _)) = current() else { return 0 };
    save(tid, EventKind::Cred, |p| {
        // SAFETY: `p` is the scratch slot; probe reads of the current task.
        let _ = unsafe { read_creds(task, &raw mut (*p).creds) };
    });
    0
}

crate::syscall_program!(exit sys_exit_cred, raw_exit_cred, ia32_exit_cred, [fexit_cred_0 = 0 fexit_cred_1 = 1], cred_exit);

#[inline(always)]
fn cred_exit(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let Some(saved) = take(tid, EventKind::Cred) else { return 0 };
    if ctx.ret() != 0 {
        return 0;
    }
    let mut new = core::mem::MaybeUninit::<Creds>::uninit();
    // SAFETY: probe reads of the current task into a stack value, which `read_creds` fills
    // when it succeeds (no `Creds::default()`: LLVM zeroes it with a byte-wise memset loop).
    if unsafe { read_creds(task, new.as_mut_ptr()) }.is_err() {
        return 0;
    }
    // SAFETY: filled above.
    let new = unsafe { new.assume_init() };
    // SAFETY: `saved` is this CPU's scratch slot.
    if unsafe { (*saved).creds } == new {
        return 0; // a successful call that changed nothing is not a privilege change
    }
    let nr = ctx.nr();
    emit::<CredEvent>(EventKind::Cred, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` the scratch slot.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            copy_kernel(&raw mut (*ev).old, &raw const (*saved).creds);
            copy_kernel(&raw mut (*ev).new, &raw const new);
            (*ev).syscall_nr = nr;
            (*ev)._reserved = 0;
            fill_header(&raw mut (*ev).header, EventKind::Cred, size_of::<CredEvent>(), tgid, tid, 0);
        }
        Ok(())
    });
    0
}

// --- ptrace attach/seize ---

crate::syscall_program!(enter sys_enter_ptrace, raw_enter_ptrace, ia32_enter_ptrace, [fentry_ptrace_0 = 0 fentry_ptrace_1 = 1], ptrace_enter);

#[inline(always)]
fn ptrace_enter(ctx: &impl Syscall) -> u32 {
    let Some((_, tid, _)) = current() else { return 0 };
    let request = ctx.arg(0);
    if request != PTRACE_ATTACH && request != PTRACE_SEIZE {
        return 0;
    }
    let target = ctx.arg(1) as u32;
    // SAFETY: `p` is the scratch slot.
    save(tid, EventKind::Ptrace, |p| unsafe {
        (*p).arg0 = target;
        (*p).arg1 = request;
    });
    0
}

/// Header flags of a process-access event: whether `target` is the sensor.
#[inline(always)]
pub(crate) fn target_flags(target: u32) -> u32 {
    match control() {
        Some(c) if target != 0 && target == sensor_tgid(c) => sensor_common::tamper::FLAG_TARGET_SENSOR,
        _ => 0,
    }
}

crate::syscall_program!(exit sys_exit_ptrace, raw_exit_ptrace, ia32_exit_ptrace, [fexit_ptrace_0 = 0 fexit_ptrace_1 = 1], ptrace_exit);

#[inline(always)]
fn ptrace_exit(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let Some(saved) = take(tid, EventKind::Ptrace) else { return 0 };
    let result = ctx.ret() as i32;
    // SAFETY: the scratch slot.
    let flags = target_flags(unsafe { (*saved).arg0 });
    emit::<PtraceEvent>(EventKind::Ptrace, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` the scratch slot.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).request = (*saved).arg1;
            (*ev).target_pid = (*saved).arg0;
            (*ev).result = result;
            (*ev).target_fd = (*saved).arg2 as u32;
            (*ev)._reserved = 0;
            let size = size_of::<PtraceEvent>();
            fill_header(&raw mut (*ev).header, EventKind::Ptrace, size, tgid, tid, flags);
        }
        Ok(())
    });
    0
}

// --- bpf(BPF_PROG_LOAD) ---

crate::syscall_program!(enter sys_enter_bpf, raw_enter_bpf, ia32_enter_bpf, [fentry_bpf_0 = 0 fentry_bpf_1 = 1], bpf_cmd_enter);

#[inline(always)]
fn bpf_cmd_enter(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, _)) = current() else { return 0 };
    let cmd = ctx.arg(0);
    let attr = ctx.arg(1);
    if cmd != BPF_PROG_LOAD {
        crate::tamper::bpf_enter(task, tid, cmd as u32, attr);
        return 0;
    }
    // SAFETY: `p` is the scratch slot; user memory is read with the probe helper.
    save(tid, EventKind::BpfLoad, |p| unsafe {
        (*p).arg1 = attr;
        read_prog_load_attr(p, attr);
    });
    0
}

/// The program type and name of a `BPF_PROG_LOAD` attribute block at `attr` into `p`; a name
/// that cannot be read is left empty.
///
/// # Safety
/// `p` is the scratch slot.
#[inline(always)]
unsafe fn read_prog_load_attr(p: *mut PendingSyscall, attr: u64) {
    // SAFETY: the caller's slot; user memory is read with the probe helper.
    unsafe {
        let mut prog_type = 0u32;
        let _ = bpf_probe_read_user((&raw mut prog_type).cast(), 4, attr as *const _);
        (*p).arg0 = prog_type;
        let name = (&raw mut (*p).name).cast::<u8>();
        if bpf_probe_read_user(name.cast(), 16, (attr + BPF_ATTR_PROG_NAME) as *const _) != 0 {
            *name = 0;
        }
    }
}

crate::syscall_program!(exit sys_exit_bpf, raw_exit_bpf, ia32_exit_bpf, [fexit_bpf_0 = 0 fexit_bpf_1 = 1], bpf_cmd_exit);

#[inline(always)]
fn bpf_cmd_exit(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let Some(saved) = take_any(tid) else { return 0 };
    let result = ctx.ret() as i32;
    // SAFETY: the scratch slot, just written.
    let kind = unsafe { (*saved).kind };
    if kind == EventKind::BpfAccess as u32 {
        // SAFETY: `saved` is this thread's saved state in the scratch slot.
        unsafe { crate::tamper::bpf_exit(ctx, task, tid, tgid, saved) };
        return 0;
    }
    if kind != EventKind::BpfLoad as u32 {
        return 0;
    }
    // SAFETY: the scratch slot. An attribute block the enter side could not read (a page not
    // touched yet) has been copied by the kernel since: read it again. A name the program left
    // empty reads empty again.
    unsafe {
        if (*saved).name[0] == 0 {
            read_prog_load_attr(saved, (*saved).arg1);
        }
    }
    emit::<BpfLoadEvent>(EventKind::BpfLoad, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` the scratch slot.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).prog_type = (*saved).arg0;
            (*ev).result = result;
            let src = (&raw const (*saved).name).cast::<[u8; 16]>();
            copy_kernel(&raw mut (*ev).prog_name, src);
            fill_header(&raw mut (*ev).header, EventKind::BpfLoad, size_of::<BpfLoadEvent>(), tgid, tid, 0);
        }
        Ok(())
    });
    0
}

// --- memfd_create ---

crate::syscall_program!(enter sys_enter_memfd_create, raw_enter_memfd, ia32_enter_memfd, [fentry_memfd_0 = 0 fentry_memfd_1 = 1], memfd_enter);

#[inline(always)]
fn memfd_enter(ctx: &impl Syscall) -> u32 {
    let Some((_, tid, _)) = current() else { return 0 };
    let uname = ctx.arg(0);
    let flags = ctx.arg(1) as u32;
    // SAFETY: `p` is the scratch slot.
    save(tid, EventKind::MemfdCreate, |p| unsafe {
        (*p).arg0 = flags;
        (*p).arg1 = uname;
        memfd_name(p);
    });
    0
}

/// The name at `(*p).arg1` (the user's `memfd_create` name) into `(*p).name` (empty when
/// unreadable). Read at the enter and, when that found no page, again at the exit: a probe read
/// cannot fault a page in, so a name in a page the process has not touched yet (a string
/// constant of a program that just started) reads as nothing at the enter; the call itself has
/// read it by its exit, so the page is there then.
///
/// # Safety
/// `p` is the scratch slot.
#[inline(always)]
unsafe fn memfd_name(p: *mut PendingSyscall) {
    // SAFETY: the caller's slot; user memory is read with the probe helper.
    unsafe {
        let name = (&raw mut (*p).name).cast::<u8>();
        let from = (*p).arg1;
        if from == 0 || bpf_probe_read_user_str(name.cast(), MEMFD_NAME_LEN as u32, from as *const _) <= 0 {
            *name = 0;
        }
    }
}

crate::syscall_program!(exit sys_exit_memfd_create, raw_exit_memfd, ia32_exit_memfd, [fexit_memfd_0 = 0 fexit_memfd_1 = 1], memfd_exit);

#[inline(always)]
fn memfd_exit(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let Some(saved) = take(tid, EventKind::MemfdCreate) else { return 0 };
    let result = ctx.ret() as i32;
    // SAFETY: the scratch slot, just written.
    unsafe {
        if (*saved).name[0] == 0 {
            memfd_name(saved);
        }
    }
    emit::<MemfdEvent>(EventKind::MemfdCreate, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` the scratch slot.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).flags = (*saved).arg0;
            (*ev).result = result;
            copy_kernel(&raw mut (*ev).name, &raw const (*saved).name);
            fill_header(&raw mut (*ev).header, EventKind::MemfdCreate, size_of::<MemfdEvent>(), tgid, tid, 0);
        }
        Ok(())
    });
    0
}

// --- io_uring_setup ---

/// Offset of `flags` in `struct io_uring_params` (after `sq_entries` and `cq_entries`).
const IO_URING_PARAMS_FLAGS: u64 = 8;

crate::syscall_program!(enter sys_enter_io_uring_setup, raw_enter_io_uring_setup, ia32_enter_io_uring_setup, [fentry_io_uring_setup_0 = 0 fentry_io_uring_setup_1 = 1], io_uring_setup_enter);

#[inline(always)]
fn io_uring_setup_enter(ctx: &impl Syscall) -> u32 {
    let Some((_, tid, _)) = current() else { return 0 };
    let entries = ctx.arg(0) as u32;
    let params = ctx.arg(1);
    // SAFETY: `p` is the scratch slot; user memory is read with the probe helper.
    save(tid, EventKind::IoUringSetup, |p| unsafe {
        (*p).arg0 = entries;
        let mut flags = 0u32;
        let _ = bpf_probe_read_user((&raw mut flags).cast(), 4, (params + IO_URING_PARAMS_FLAGS) as *const _);
        (*p).arg1 = u64::from(flags);
    });
    0
}

crate::syscall_program!(exit sys_exit_io_uring_setup, raw_exit_io_uring_setup, ia32_exit_io_uring_setup, [fexit_io_uring_setup_0 = 0 fexit_io_uring_setup_1 = 1], io_uring_setup_exit);

#[inline(always)]
fn io_uring_setup_exit(ctx: &impl Syscall) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let Some(saved) = take(tid, EventKind::IoUringSetup) else { return 0 };
    let result = ctx.ret() as i32;
    emit::<IoUringSetupEvent>(EventKind::IoUringSetup, |ev| {
        // SAFETY: `ev` is a reserved entry; `saved` the scratch slot.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).entries = (*saved).arg0;
            (*ev).flags = (*saved).arg1 as u32;
            (*ev).result = result;
            (*ev)._pad = 0;
            let size = size_of::<IoUringSetupEvent>();
            fill_header(&raw mut (*ev).header, EventKind::IoUringSetup, size, tgid, tid, 0);
        }
        Ok(())
    });
    0
}

// --- module/module_load ---

#[tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn module_load(ctx: TracePointContext) -> u32 {
    let Some((task, tid, tgid)) = current() else { return 0 };
    let loc_off = module_name_loc();
    if loc_off == u32::MAX {
        return 0;
    }
    // `__data_loc char[] name`: low 16 bits offset in the record, high 16 bits length.
    // SAFETY: reads the tracepoint record.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(loc_off as usize) }) else { return 0 };
    let name_ptr = ctx.as_ptr().cast::<u8>().wrapping_add((loc & 0xffff) as usize);
    emit::<ModuleEvent>(EventKind::ModuleLoad, |ev| {
        // SAFETY: `ev` is a reserved entry; the name is read with the probe helper.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            let dst = (&raw mut (*ev).name).cast::<u8>();
            if bpf_probe_read_kernel_str(dst.cast(), MODULE_NAME_LEN as u32, name_ptr.cast()) <= 0 {
                *dst = 0;
            }
            fill_header(&raw mut (*ev).header, EventKind::ModuleLoad, size_of::<ModuleEvent>(), tgid, tid, 0);
        }
        Ok(())
    });
    0
}
