//! Exec: `tp_btf/sched_process_exec`.
//!
//! Kernel prototype (include/trace/events/sched.h):
//! `TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`
//! It fires in the context of the task that just replaced its image, after the new mm is set
//! up, so argv is readable from the new process's memory.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm,
        generated::{
            bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str,
            bpf_probe_read_user,
        },
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use sensor_common::{
    EventKind,
    exec::{
        AUDIT_UNSET, EXEC_ARGS_MAX, EXEC_FILENAME_MAX, EXEC_FIXED_SIZE, FLAG_ARGS_TRUNCATED,
        FLAG_ARGS_UNREADABLE, FLAG_FILENAME_TRUNCATED,
    },
};

use crate::{
    emit::{Loss, count_loss, wakeup_flags},
    kernel::{read, read_or, read_ptr},
    maps::{EXEC_SCRATCH, PROC_EVENTS, exec_config, offsets},
};

#[btf_tracepoint(function = "sched_process_exec")]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro passes the context by value"
)]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    match try_exec(&ctx) {
        Ok(()) => 0,
        Err(Loss::ReadFailed) => {
            count_loss(EventKind::Exec, Loss::ReadFailed);
            // Rare (a kernel read faulted); counted above, logged for the operator.
            aya_log_ebpf::warn!(
                &ctx,
                "exec event of tgid {} lost: kernel read failed",
                ctx.tgid()
            );
            0
        }
        Err(Loss::RingFull) => {
            count_loss(EventKind::Exec, Loss::RingFull);
            0
        }
    }
}

fn try_exec(ctx: &BtfTracePointContext) -> Result<(), Loss> {
    let off = offsets();
    if off.ready == 0 {
        return Ok(());
    }
    let cfg = exec_config();
    let tgid = ctx.tgid();
    if cfg.self_tgid != 0 && tgid == cfg.self_tgid {
        return Ok(());
    }
    let task: *const u8 = ctx.arg(0);
    let old_pid: i32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);

    let ev = EXEC_SCRATCH.get_ptr_mut(0).ok_or(Loss::ReadFailed)?;
    // SAFETY: `ev` points at this CPU's scratch slot, valid for the whole program run; every
    // kernel/user read goes through probe-read helpers that check the source address.
    unsafe {
        let f = &raw mut (*ev).fixed;
        let mut flags = 0u32;

        // Credentials: task->cred->{uid,gid,euid,egid}.
        let cred = read_ptr(task, off.task_cred).map_err(|_| Loss::ReadFailed)?;
        (*f).uid = read(cred, off.cred_uid).map_err(|_| Loss::ReadFailed)?;
        (*f).gid = read(cred, off.cred_gid).map_err(|_| Loss::ReadFailed)?;
        (*f).euid = read(cred, off.cred_euid).map_err(|_| Loss::ReadFailed)?;
        (*f).egid = read(cred, off.cred_egid).map_err(|_| Loss::ReadFailed)?;
        (*f).auid = read_or(task, off.task_loginuid, AUDIT_UNSET);
        (*f).sessionid = read_or(task, off.task_sessionid, AUDIT_UNSET);
        (*f).start_boottime_ns =
            read(task, off.task_start_boottime).map_err(|_| Loss::ReadFailed)?;
        let parent = read_ptr(task, off.task_real_parent).map_err(|_| Loss::ReadFailed)?;
        (*f).ppid = read(parent, off.task_tgid).map_err(|_| Loss::ReadFailed)?;
        (*f).old_pid = old_pid as u32;
        (*f).comm = bpf_get_current_comm().unwrap_or([0; 16]);

        // File name as passed to execve (kernel string; absent names are an empty string).
        let data = (&raw mut (*ev).data).cast::<u8>();
        let mut fname_len = 0u32;
        if let Ok(name) = read_ptr(bprm, off.binprm_filename) {
            let n = bpf_probe_read_kernel_str(data.cast(), EXEC_FILENAME_MAX as u32, name.cast());
            if n > 0 {
                // n counts the terminating NUL; a full buffer means the name was cut.
                fname_len = (n as u32 - 1) & (EXEC_FILENAME_MAX as u32 - 1);
                if n as usize >= EXEC_FILENAME_MAX {
                    flags |= FLAG_FILENAME_TRUNCATED;
                }
            }
        }

        // argv: mm->arg_start .. mm->arg_end in the new image's memory.
        let mut args_len = 0u32;
        let mut args_total = 0u32;
        match read_ptr(task, off.task_mm) {
            Ok(mm) => {
                let start: u64 = read_or(mm, off.mm_arg_start, 0);
                let end: u64 = read_or(mm, off.mm_arg_end, 0);
                let total = end.saturating_sub(start);
                args_total = if total > u64::from(u32::MAX) {
                    u32::MAX
                } else {
                    total as u32
                };
                let mut want = args_total;
                let limit = if cfg.args_max < EXEC_ARGS_MAX as u32 {
                    cfg.args_max
                } else {
                    EXEC_ARGS_MAX as u32 - 1
                };
                if want > limit {
                    want = limit;
                    flags |= FLAG_ARGS_TRUNCATED;
                }
                // Masks give the verifier its bounds: offset < FILENAME_MAX, size < ARGS_MAX.
                let want = want & (EXEC_ARGS_MAX as u32 - 1);
                if want > 0 {
                    let dst = data.wrapping_add(fname_len as usize);
                    if bpf_probe_read_user(dst.cast(), want, start as *const _) == 0 {
                        args_len = want;
                    } else {
                        flags |= FLAG_ARGS_UNREADABLE;
                    }
                }
            }
            Err(_) => flags |= FLAG_ARGS_UNREADABLE,
        }

        let size = EXEC_FIXED_SIZE as u32 + fname_len + args_len;
        (*f).filename_len = fname_len;
        (*f).args_len = args_len;
        (*f).args_total_len = args_total;
        (*f)._reserved = 0;
        let h = &raw mut (*f).header;
        (*h).kind = EventKind::Exec as u32;
        (*h).size = size;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        (*h).tgid = tgid;
        (*h).tid = ctx.pid();
        (*h).cpu = bpf_get_smp_processor_id();
        (*h).flags = flags;

        let bytes = core::slice::from_raw_parts(ev.cast::<u8>(), size as usize);
        PROC_EVENTS
            .output::<[u8]>(bytes, wakeup_flags(&PROC_EVENTS))
            .map_err(|_| Loss::RingFull)
    }
}
