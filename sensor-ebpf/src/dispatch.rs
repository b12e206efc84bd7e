//! System calls reach the programs one of two ways, chosen by the loader:
//!
//! - **Raw dispatcher** (x86-64): one raw tracepoint program on `sys_enter` and one on
//!   `sys_exit` tail-call, by system call number, the raw twin of the watched call's program
//!   (`SYS_ENTER_PROGS`, `SYS_EXIT_PROGS`, filled by the loader). Two attachments instead of
//!   about a hundred: a classic syscall tracepoint is a perf event, and the kernel detaches each
//!   one under a global mutex with a full RCU grace period, so stopping took seconds. Raw
//!   tracepoint links are also BPF links on every supported kernel (classic tracepoint
//!   attachments only from 5.15); pinning on 5.10 still waits for `module_load` to follow.
//! - **Syscall tracepoints** (`syscalls/sys_enter_X`, `sys_exit_X`): the fallback where the
//!   dispatcher cannot run (no `pt_regs` offsets for this architecture, or switched off).
//!
//! Each program body is written once against [`Syscall`] and compiled into every entry point by
//! [`syscall_program!`] (a third way, the fentry path, is in [`crate::fentry`]). A 32-bit
//! system call of x86-64 (`TS_COMPAT`), whose number is another table's, is passed on by the raw
//! twins to the 32-bit twins (see [`crate::ia32`]); the syscall tracepoints never see one.

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{map, raw_tracepoint},
    maps::ProgramArray,
    programs::{RawTracePointContext, TracePointContext},
};

use sensor_common::{
    offsets::{REGS_WINDOW_ARG, REGS_WINDOW_NR, REGS_WINDOW_WORDS},
    syscalls::SYSCALL_SLOTS as SLOTS,
};

use crate::{
    kernel::{read_z, tp_args, tp_field},
    off,
};

/// `thread_info.status` bit of a 32-bit system call on x86-64.
const TS_COMPAT: u32 = 0x0002;

/// syscall number → the raw twin of its `sys_enter` program.
#[map(name = "SYS_ENTER_PROGS")]
static SYS_ENTER_PROGS: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);

/// syscall number → the raw twin of its `sys_exit` program.
#[map(name = "SYS_EXIT_PROGS")]
static SYS_EXIT_PROGS: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);

/// What a program reads of the system call it runs for.
pub trait Syscall {
    /// The call's number (this architecture's table).
    fn nr(&self) -> u32;
    /// Argument `i` (< 6, a constant).
    fn arg(&self, i: usize) -> u64;
    /// The six argument slots; slots past the call's own arguments hold garbage.
    fn args(&self) -> [u64; 6];
    /// The number and the six argument slots (from the registers: one read for both).
    #[inline(always)]
    fn call(&self) -> (u32, [u64; 6]) {
        (self.nr(), self.args())
    }
    /// The return value (exit programs only).
    fn ret(&self) -> i64;
    /// At a call's exit, its number and arguments when this context still has them: the raw
    /// `sys_exit` tracepoint does (x86-64 keeps the argument registers until the return; only
    /// `ax` takes the result), a `sys_exit_X` tracepoint does not (its record has the result
    /// only).
    fn call_at_exit(&self) -> Option<(u32, [u64; 6])>;
    /// A 32-bit system call of a 64-bit kernel that this context cannot decode (its number is
    /// another table's). Checked before anything else in the raw twins, but for those that
    /// check it themselves later (see [`syscall_program!`]), which then hand the call on with
    /// [`Syscall::to_ia32`]; the other contexts never see such calls.
    #[inline(always)]
    fn compat(&self) -> bool {
        false
    }
    /// Hands a [`Syscall::compat`] call on to the 32-bit twin of its program (a tail call:
    /// returns only when no twin watches that call).
    #[inline(always)]
    fn to_ia32(&self) {}
    /// A 32-bit call decoded by this context: user memory holds the compat layouts of
    /// structures with pointers (`struct compat_msghdr`, `struct compat_iovec`).
    #[inline(always)]
    fn ia32(&self) -> bool {
        false
    }
}

/// Classic syscall tracepoint records (kernel/trace/trace_syscalls.c): `struct trace_entry`
/// (8 bytes), `int __syscall_nr` at 8, then `unsigned long args[6]` from 16 (`sys_enter_*`) or
/// `long ret` at 16 (`sys_exit_*`). The loader checks these offsets against tracefs formats.
impl Syscall for TracePointContext {
    #[inline(always)]
    fn nr(&self) -> u32 {
        // SAFETY: a field every syscall record has.
        unsafe { tp_field::<i32>(self, 8) as u32 }
    }

    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        // SAFETY: constant `i` of an argument the call has (see `Syscall::arg`).
        unsafe { tp_field(self, 16 + 8 * i) }
    }

    #[inline(always)]
    fn args(&self) -> [u64; 6] {
        // One copy of the six slots: the shared programs are attached to syscalls with fewer
        // arguments, so direct context loads beyond the first would be refused at attach.
        tp_args(self, 16)
    }

    #[inline(always)]
    fn ret(&self) -> i64 {
        // SAFETY: `ret` of a `sys_exit_*` record.
        unsafe { tp_field(self, 16) }
    }

    #[inline(always)]
    fn call_at_exit(&self) -> Option<(u32, [u64; 6])> {
        None
    }
}

/// The registers a system call saved (`struct pt_regs`, offsets from the kernel's BTF), read
/// with probe reads (zero when one faults).
#[derive(Clone, Copy)]
pub struct Regs(pub *const u8);

impl Regs {
    /// The call's number (`orig_ax` on x86-64).
    #[inline(always)]
    pub fn nr(self) -> u32 {
        // SAFETY: probe read of the task's saved registers (zero when it faults).
        unsafe { read_z::<u64>(self.0, off!(regs_syscall_nr)) as u32 }
    }

    /// Argument `i` (< 6, a constant).
    #[inline(always)]
    pub fn arg(self, i: usize) -> u64 {
        let off = match i {
            0 => off!(regs_arg0),
            1 => off!(regs_arg1),
            2 => off!(regs_arg2),
            3 => off!(regs_arg3),
            4 => off!(regs_arg4),
            _ => off!(regs_arg5),
        };
        // SAFETY: probe read of the task's saved registers (zero when it faults).
        unsafe { read_z(self.0, off) }
    }

    /// One probe read of the argument registers instead of six (see
    /// `sensor_common::offsets::REGS_WINDOW_ARG`; the loader uses the registers only where the
    /// kernel's `pt_regs` has that layout).
    #[inline(always)]
    pub fn args(self) -> [u64; 6] {
        self.call().1
    }

    /// The call's number and arguments, in the same one probe read.
    #[inline(always)]
    pub fn call(self) -> (u32, [u64; 6]) {
        // SAFETY: probe read of the task's saved registers (zero when it faults).
        let w: [u64; REGS_WINDOW_WORDS] = unsafe { read_z(self.0, off!(regs_arg3)) };
        (w[REGS_WINDOW_NR] as u32, REGS_WINDOW_ARG.map(|i| w[i]))
    }
}

/// A raw `sys_enter(struct pt_regs *regs, long id)` (`EXIT` false) or `sys_exit(struct pt_regs
/// *regs, long ret)` call, reached through a dispatcher's tail call (which keeps the context).
pub struct RawSyscall<const EXIT: bool> {
    ctx: RawTracePointContext,
    regs: Regs,
}

impl<const EXIT: bool> RawSyscall<EXIT> {
    #[inline(always)]
    pub fn new(ctx: RawTracePointContext) -> Self {
        let regs = Regs(ctx.arg::<u64>(0) as *const u8);
        Self { ctx, regs }
    }
}

impl<const EXIT: bool> Syscall for RawSyscall<EXIT> {
    #[inline(always)]
    fn nr(&self) -> u32 {
        self.regs.nr()
    }

    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        self.regs.arg(i)
    }

    #[inline(always)]
    fn args(&self) -> [u64; 6] {
        self.regs.args()
    }

    #[inline(always)]
    fn call(&self) -> (u32, [u64; 6]) {
        self.regs.call()
    }

    #[inline(always)]
    fn ret(&self) -> i64 {
        self.ctx.arg::<i64>(1)
    }

    #[inline(always)]
    fn call_at_exit(&self) -> Option<(u32, [u64; 6])> {
        Some(self.regs.call())
    }

    #[inline(always)]
    fn compat(&self) -> bool {
        compat()
    }

    #[inline(always)]
    fn to_ia32(&self) {
        crate::ia32::hand_on(&self.ctx, self.regs.nr(), EXIT);
    }
}

/// A 32-bit system call of a 64-bit kernel (x86-64 `TS_COMPAT`): its number is another
/// table's. Checked by the raw twins and the gates (see [`crate::ia32`]), not by the
/// dispatchers, so the calls at numbers nobody watches (most of them) cost no read of the task;
/// also by the fentry twins, which 64-bit and 32-bit calls share.
#[inline(always)]
pub fn compat() -> bool {
    // SAFETY: plain helper call.
    compat_of(unsafe { bpf_get_current_task() } as *const u8)
}

/// Whether `task` (a `task_struct`) is in a 32-bit system call (see [`compat`]).
#[inline(always)]
pub fn compat_of(task: *const u8) -> bool {
    let status = off!(task_ti_status);
    if status == sensor_common::offsets::OFFSET_ABSENT {
        return false;
    }
    // SAFETY: probe read of the task (zero when it faults).
    let s: u32 = unsafe { read_z(task, status) };
    s & TS_COMPAT != 0
}

#[raw_tracepoint(tracepoint = "sys_enter")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sys_enter_dispatch(ctx: RawTracePointContext) -> i32 {
    let id = ctx.arg::<i64>(1);
    if !(0..i64::from(SLOTS)).contains(&id) {
        return 0;
    }
    // SAFETY: tail call with this program's own context; an empty slot returns here.
    unsafe { SYS_ENTER_PROGS.tail_call(&ctx, id as u32) };
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn sys_exit_dispatch(ctx: RawTracePointContext) -> i32 {
    let nr = Regs(ctx.arg::<u64>(0) as *const u8).nr();
    if nr >= SLOTS {
        return 0;
    }
    // SAFETY: tail call with this program's own context; an empty slot returns here.
    unsafe { SYS_EXIT_PROGS.tail_call(&ctx, nr) };
    0
}

/// A system call program's entry points: `$tp`, a classic tracepoint program for
/// `syscalls/sys_*_X`; `$raw`, a raw tracepoint program the dispatcher tail-calls; `$ia32`, its
/// 32-bit twin (a raw tracepoint program reached from `$raw` or a gate, see [`crate::ia32`]);
/// each `$fast`, an `fentry` (`enter`) or `fexit` (`exit`) program the fentry path's stubs of
/// one prototype group tail-call (see [`crate::fentry`]; one per group, `{base}_{group}`).
/// `$body` is `fn(&impl Syscall) -> u32`. The raw twin hands a 32-bit call
/// ([`Syscall::compat`]) on to the 32-bit twins at once unless the arguments end with `compat
/// checked by body`: a body that decides most calls away before it could emit (file exits:
/// read-only opens) checks it itself, before emitting, and the calls it drops cost no read of
/// the task.
#[macro_export]
macro_rules! syscall_program {
    (exit $tp:ident, $raw:ident, $ia32:ident, [$($fast:ident = $group:literal)+], $body:path, compat checked by body) => {
        $crate::syscall_program!(@twins $tp, $raw, $ia32, $body, false, true);
        $crate::syscall_program!(@fexit [$($fast = $group)+], $body);
    };
    (enter $tp:ident, $raw:ident, $ia32:ident, [$($fast:ident = $group:literal)+], $body:path) => {
        $crate::syscall_program!(@twins $tp, $raw, $ia32, $body, true, false);

        $(
            #[aya_ebpf::macros::fentry]
            pub fn $fast(ctx: aya_ebpf::programs::FEntryContext) -> u32 {
                let sc = $crate::fentry::FentrySyscall::<$group>::new(aya_ebpf::EbpfContext::as_ptr(&ctx));
                $body(&sc);
                // Tracing programs must return 0.
                0
            }
        )+
    };
    (exit $tp:ident, $raw:ident, $ia32:ident, [$($fast:ident = $group:literal)+], $body:path) => {
        $crate::syscall_program!(@twins $tp, $raw, $ia32, $body, true, true);
        $crate::syscall_program!(@fexit [$($fast = $group)+], $body);
    };
    (@fexit [$($fast:ident = $group:literal)+], $body:path) => {
        $(
            #[aya_ebpf::macros::fexit]
            pub fn $fast(ctx: aya_ebpf::programs::FExitContext) -> u32 {
                let sc = $crate::fentry::FentrySyscall::<$group>::new(aya_ebpf::EbpfContext::as_ptr(&ctx));
                $body(&sc);
                // Tracing programs must return 0.
                0
            }
        )+
    };
    (@twins $tp:ident, $raw:ident, $ia32:ident, $body:path, $check_compat:literal, $exit:literal) => {
        #[aya_ebpf::macros::tracepoint]
        pub fn $tp(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $body(&ctx)
        }

        #[aya_ebpf::macros::raw_tracepoint]
        pub fn $raw(ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
            let sc = $crate::dispatch::RawSyscall::<$exit>::new(ctx);
            if $check_compat && $crate::dispatch::Syscall::compat(&sc) {
                $crate::dispatch::Syscall::to_ia32(&sc);
                return 0;
            }
            $body(&sc) as i32
        }

        #[aya_ebpf::macros::raw_tracepoint]
        pub fn $ia32(ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
            $body(&$crate::ia32::Ia32Syscall::new(ctx)) as i32
        }
    };
}
