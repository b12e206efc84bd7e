//! Fork and exit: raw tracepoints `sched_process_fork`, `sched_process_exit` (the tracepoint's
//! arguments as raw values; unlike `tp_btf`, no kernel BTF is needed to attach).
//!
//! Kernel prototypes (include/trace/events/sched.h):
//! `sched_process_fork: TP_PROTO(struct task_struct *parent, struct task_struct *child)`
//! `sched_process_exit: TP_PROTO(struct task_struct *p)` (6.16+ adds `bool group_dead`)

use aya_ebpf::{EbpfContext, macros::raw_tracepoint, programs::RawTracePointContext};
use sensor_common::{
    EventKind,
    process::{ExitEvent, FLAG_THREAD, ForkEvent},
};

use crate::{
    emit::{emit, fill_header},
    kernel::{read, read_ptr},
    maps::{capture, control, ignored},
    off,
    task::fill_task,
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let Some(control) = control() else { return 0 };
    let cfg = capture();
    let parent_tgid = ctx.tgid();
    if ignored(control, parent_tgid) {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    // SAFETY: probe reads of the child task_struct.
    let (Ok(pid), Ok(tgid)) =
        (unsafe { read::<u32>(child, off!(task_pid)) }, unsafe { read::<u32>(child, off!(task_tgid)) })
    else {
        return 0;
    };
    let thread = pid != tgid;
    if thread && cfg.report_threads == 0 {
        return 0;
    }
    emit::<ForkEvent>(EventKind::Fork, |ev| {
        // SAFETY: `ev` is a reserved ring-buffer entry of the right size.
        unsafe {
            fill_task(child, &raw mut (*ev).task)?;
            (*ev).parent_tgid = parent_tgid;
            (*ev)._reserved = 0;
            let flags = if thread { FLAG_THREAD } else { 0 };
            fill_header(&raw mut (*ev).header, EventKind::Fork, size_of::<ForkEvent>(), tgid, pid, flags);
        }
        Ok(())
    });
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let Some(control) = control() else { return 0 };
    let tgid = ctx.tgid();
    if ignored(control, tgid) {
        return 0;
    }
    let task: *const u8 = ctx.arg(0);
    // Only the last thread's exit ends the process (signal->live already decremented).
    // SAFETY: probe reads.
    let live = unsafe { read_ptr(task, off!(task_signal)).and_then(|s| read::<i32>(s, off!(signal_live))) };
    if live != Ok(0) {
        return 0;
    }
    emit::<ExitEvent>(EventKind::Exit, |ev| {
        // SAFETY: `ev` is a reserved ring-buffer entry of the right size.
        unsafe {
            fill_task(task, &raw mut (*ev).task)?;
            (*ev).exit_code = read::<i32>(task, off!(task_exit_code)).unwrap_or(0) as u32;
            (*ev)._reserved = 0;
            fill_header(&raw mut (*ev).header, EventKind::Exit, size_of::<ExitEvent>(), tgid, ctx.pid(), 0);
        }
        Ok(())
    });
    0
}
