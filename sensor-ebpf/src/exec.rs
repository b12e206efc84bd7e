//! Exec: raw tracepoint `sched_process_exec` (no kernel BTF needed to attach).
//!
//! Kernel prototype (include/trace/events/sched.h):
//! `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`
//! It fires in the context of the task that just replaced its image, after the new mm is set
//! up, so argv is readable from the new process's memory and `bprm->file` is the executable
//! actually mapped (the interpreter, for a `#!` script).

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str, bpf_probe_read_user,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    EventKind,
    exec::{
        EXEC_ARGS_MAX, EXEC_FIXED_SIZE, EXEC_NAME_MAX, FLAG_ARGS_TRUNCATED, FLAG_ARGS_UNREADABLE,
        FLAG_FILENAME_TRUNCATED,
    },
};

use crate::{
    emit::{Loss, count_loss, output_flags},
    kernel::{read_into, read_or, read_ptr, read_z},
    maps::{EXEC_SCRATCH, PROC_EVENTS, capture, control, ignored},
    off,
    path::walk,
    task::fill_task,
};

const NAME_MASK: u32 = EXEC_NAME_MAX as u32 - 1;
const ARGS_MASK: u32 = EXEC_ARGS_MAX as u32 - 1;

#[raw_tracepoint(tracepoint = "sched_process_exec")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    match try_exec(&ctx) {
        Ok(()) => 0,
        Err(why) => {
            count_loss(EventKind::Exec, why);
            if let Loss::ReadFailed = why {
                // Rare (a kernel read faulted); counted above, logged for the operator.
                aya_log_ebpf::warn!(&ctx, "exec event of tgid {} lost: kernel read failed", ctx.tgid());
            }
            0
        }
    }
}

fn try_exec(ctx: &RawTracePointContext) -> Result<(), Loss> {
    let Some(control) = control() else { return Ok(()) };
    let tgid = ctx.tgid();
    if ignored(control, tgid) {
        return Ok(());
    }
    let cfg = capture();
    let task: *const u8 = ctx.arg(0);
    let old_pid: i32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);

    // SAFETY: plain helper call.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let ev = EXEC_SCRATCH.get_ptr_mut(cpu).ok_or(Loss::ReadFailed)?;
    // SAFETY: `ev` points at this CPU's slot, valid for the whole program run; kernel and user
    // memory is only read through probe-read helpers; every write into `data` is at a masked
    // offset with a bounded size, inside `data` + `slack`.
    unsafe {
        let f = &raw mut (*ev).fixed;
        fill_task(task, &raw mut (*f).task).map_err(|_| Loss::ReadFailed)?;
        let data = (&raw mut (*ev).data).cast::<u8>();
        let mut flags = 0u32;

        // 1. File name as passed to execve.
        let filename = read_ptr(bprm, off!(binprm_filename)).unwrap_or(core::ptr::null());
        let fname_len = read_name(data, filename, &mut flags);

        // 2. Interpreter, when a `#!` script replaced bprm->interp.
        let interp = read_ptr(bprm, off!(binprm_interp)).unwrap_or(core::ptr::null());
        let mut interp_len = 0;
        if !interp.is_null() && interp != filename {
            let mut ignored = 0;
            interp_len = read_name(data.wrapping_add((fname_len & NAME_MASK) as usize), interp, &mut ignored);
        }

        // 3. The executable's path (bprm->file). The cursor is reloaded from map memory first,
        // as below: otherwise every distinct (file name, interpreter) length range reaching
        // here is a state of its own and the whole walk is verified once per state (5.10, 6.1).
        (*f).filename_len = fname_len;
        (*f).interp_len = interp_len;
        let cur = (core::ptr::read_volatile(&raw const (*f).filename_len) & NAME_MASK)
            + (core::ptr::read_volatile(&raw const (*f).interp_len) & NAME_MASK);
        (*f).exe_len = 0;
        (*f).exe_flags = 0;
        (*f).exe_fs_magic = 0;
        if let Ok(file) = read_ptr(bprm, off!(binprm_file))
            && let (Ok(d), Ok(m)) = (read_ptr(file, off!(file_dentry)), read_ptr(file, off!(file_vfsmount)))
        {
            let w = walk::<4095, 4096>(d, m, data.wrapping_add((cur & 8191) as usize));
            (*f).exe_len = w.len;
            (*f).exe_flags = w.flags;
            (*f).exe_fs_magic = w.fs_magic;
        }
        // 3b. The executable's identity, for its digest: straight-line reads (zero when a
        // pointer is NULL or this kernel has no mtime field; userspace then looks at /proc).
        let file: *const u8 = read_z(bprm, off!(binprm_file));
        let inode: *const u8 = read_z(file, off!(file_inode));
        let sb: *const u8 = read_z(inode, off!(inode_sb));
        read_into(&raw mut (*f).exe_ino, inode, off!(inode_ino));
        read_into(&raw mut (*f).exe_size, inode, off!(inode_size));
        read_into(&raw mut (*f).exe_mtime_sec, inode, off!(inode_mtime_sec));
        read_into(&raw mut (*f).exe_mtime_nsec, inode, off!(inode_mtime_nsec));
        read_into(&raw mut (*f).exe_dev, sb, off!(sb_dev));
        // Reload the cursor from map memory: the verifier then tracks one bounded unknown instead
        // of every distinct state the walk above can end in (which multiplied the cost of the
        // walk below ~10x at load time).
        (*f).filename_len = fname_len;
        (*f).interp_len = interp_len;
        let mut cur = (core::ptr::read_volatile(&raw const (*f).filename_len) & NAME_MASK)
            + (core::ptr::read_volatile(&raw const (*f).interp_len) & NAME_MASK)
            + (core::ptr::read_volatile(&raw const (*f).exe_len) & NAME_MASK);

        // 4. Working directory (task->fs->pwd).
        (*f).cwd_len = 0;
        (*f).cwd_flags = 0;
        if let Ok(fs) = read_ptr(task, off!(task_fs))
            && let (Ok(d), Ok(m)) = (read_ptr(fs, off!(fs_pwd_dentry)), read_ptr(fs, off!(fs_pwd_vfsmount)))
        {
            let w = walk::<4095, 4096>(d, m, data.wrapping_add((cur & 16383) as usize));
            (*f).cwd_len = w.len;
            (*f).cwd_flags = w.flags;
        }
        cur += core::ptr::read_volatile(&raw const (*f).cwd_len) & NAME_MASK;
        let cur = cur & 16383;

        // 5. argv: mm->arg_start .. mm->arg_end in the new image's memory.
        let mut args_len = 0u32;
        let mut args_total = 0u32;
        match read_ptr(task, off!(task_mm)) {
            Ok(mm) => {
                let start: u64 = read_or(mm, off!(mm_arg_start), 0);
                let end: u64 = read_or(mm, off!(mm_arg_end), 0);
                let total = end.saturating_sub(start);
                args_total = if total > u64::from(u32::MAX) { u32::MAX } else { total as u32 };
                let limit = if cfg.args_max < ARGS_MASK { cfg.args_max } else { ARGS_MASK };
                let mut want = args_total;
                if want > limit {
                    want = limit;
                    flags |= FLAG_ARGS_TRUNCATED;
                }
                // Through the stack, so the mask survives optimisation: LLVM knows
                // want <= ARGS_MASK and drops a plain `& ARGS_MASK`, and the 5.10 verifier
                // cannot bound the branchless min() above ("R2 min value is negative" at
                // bpf_probe_read_user). A masked load gives it 0..=ARGS_MASK on every kernel.
                let want = core::ptr::read_volatile(&raw const want) & ARGS_MASK;
                if want > 0 {
                    let dst = data.wrapping_add(cur as usize);
                    if bpf_probe_read_user(dst.cast(), want, start as *const _) == 0 {
                        args_len = want;
                    } else {
                        flags |= FLAG_ARGS_UNREADABLE;
                    }
                }
            }
            Err(_) => flags |= FLAG_ARGS_UNREADABLE,
        }

        (*f).old_pid = old_pid as u32;
        (*f).argc = read_or::<i32>(bprm, off!(binprm_argc), 0) as u32;
        (*f).args_len = args_len;
        (*f).args_total_len = args_total;
        let size = EXEC_FIXED_SIZE as u32 + cur + (args_len & ARGS_MASK);
        let h = &raw mut (*f).header;
        (*h).kind = EventKind::Exec as u32;
        (*h).size = size;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        (*h).tgid = tgid;
        (*h).tid = ctx.pid();
        (*h).cpu = cpu;
        (*h).flags = flags;

        let bytes = core::slice::from_raw_parts(ev.cast::<u8>(), size as usize);
        PROC_EVENTS.output::<[u8]>(bytes, output_flags(&PROC_EVENTS, bytes.len())).map_err(|_| Loss::RingFull)
    }
}

/// Reads a kernel string to `dst` (at most EXEC_NAME_MAX - 1 bytes, no NUL kept); returns its
/// length. Sets FLAG_FILENAME_TRUNCATED in `flags` when it was cut.
///
/// # Safety
/// `dst` must have EXEC_NAME_MAX writable bytes; `src` may be any pointer (probe-read).
#[inline(always)]
unsafe fn read_name(dst: *mut u8, src: *const u8, flags: &mut u32) -> u32 {
    if src.is_null() {
        return 0;
    }
    // SAFETY: bounded write of at most EXEC_NAME_MAX bytes into `dst`.
    let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), EXEC_NAME_MAX as u32, src.cast()) };
    if n <= 0 {
        return 0;
    }
    if n as usize >= EXEC_NAME_MAX {
        *flags |= FLAG_FILENAME_TRUNCATED;
    }
    (n as u32 - 1) & NAME_MASK
}
