//! 32-bit system calls (see `sensor_common::ia32`): `int 0x80` from any process, or a 32-bit
//! binary's calls. Their numbers are the i386 table's, so a 64-bit program would read another
//! call's arguments from the wrong registers.
//!
//! The loader puts, at each watched i386 number, the `ia32_*` twin of the matching x86-64 call's
//! program into `IA32_ENTER_PROGS`/`IA32_EXIT_PROGS`. In the dispatchers' own tables that number
//! holds either a raw twin (of whatever 64-bit call has it), which hands a 32-bit call on
//! ([`crate::dispatch::Syscall::to_ia32`]), or, when no 64-bit program claims it, a gate that does
//! only that. Only the calls at those numbers pay for the check; the 32-bit twins read the
//! arguments from the i386 registers and give the bodies the x86-64 number of the same call.

use aya_ebpf::{
    EbpfContext,
    helpers::generated::bpf_probe_read_user,
    macros::{map, raw_tracepoint},
    maps::{Array, ProgramArray},
    programs::RawTracePointContext,
};
use sensor_common::{
    ia32::{FIXUP_LEN64, FIXUP_SOCKETCALL, FIXUP_UID16, Ia32Call, SOCKETCALL_SLOTS},
    offsets::{IA32_WINDOW_ARG, IA32_WINDOW_NR, IA32_WINDOW_WORDS},
    syscalls::SYSCALL_SLOTS as SLOTS,
};

use crate::{
    dispatch::{Regs, Syscall, compat},
    kernel::read_z,
    off,
};

/// i386 number → the 32-bit twin of the watched call's enter program.
#[map(name = "IA32_ENTER_PROGS")]
static IA32_ENTER_PROGS: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);

/// i386 number → the 32-bit twin of the watched call's exit program.
#[map(name = "IA32_EXIT_PROGS")]
static IA32_EXIT_PROGS: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);

/// i386 number → the x86-64 call it equals (written by the loader).
#[map(name = "IA32_SYSCALLS")]
static IA32_SYSCALLS: Array<Ia32Call> = Array::with_max_entries(SLOTS, 0);

/// `socketcall`'s call number → the x86-64 call it equals (written by the loader).
#[map(name = "IA32_SOCKETCALL")]
static IA32_SOCKETCALL: Array<Ia32Call> = Array::with_max_entries(SOCKETCALL_SLOTS, 0);

/// Tail-calls the 32-bit twin watching i386 call `nr` at its enter (`exit` false) or exit;
/// returns when there is none.
#[inline(always)]
pub fn hand_on<C: EbpfContext>(ctx: &C, nr: u32, exit: bool) {
    if nr >= SLOTS {
        return;
    }
    let table = if exit { &IA32_EXIT_PROGS } else { &IA32_ENTER_PROGS };
    // SAFETY: tail call with the caller's own context; an empty slot returns here.
    unsafe { table.tail_call(ctx, nr) };
}

#[raw_tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn ia32_enter_gate(ctx: RawTracePointContext) -> i32 {
    if compat() {
        hand_on(&ctx, ctx.arg::<u64>(1) as u32, false);
    }
    0
}

#[raw_tracepoint]
#[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
pub fn ia32_exit_gate(ctx: RawTracePointContext) -> i32 {
    if compat() {
        hand_on(&ctx, Regs(ctx.arg::<u64>(0) as *const u8).nr(), true);
    }
    0
}

/// A 32-bit call reached through `IA32_*_PROGS`: the raw tracepoint's context, with the call
/// decoded as the x86-64 call it equals.
pub struct Ia32Syscall {
    ctx: RawTracePointContext,
    regs: Regs,
}

impl Ia32Syscall {
    #[inline(always)]
    pub fn new(ctx: RawTracePointContext) -> Self {
        let regs = Regs(ctx.arg::<u64>(0) as *const u8);
        Self { ctx, regs }
    }
}

impl Syscall for Ia32Syscall {
    #[inline(always)]
    fn nr(&self) -> u32 {
        decode(self.regs).0
    }

    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        decode(self.regs).1[i]
    }

    #[inline(always)]
    fn args(&self) -> [u64; 6] {
        decode(self.regs).1
    }

    #[inline(always)]
    fn call(&self) -> (u32, [u64; 6]) {
        decode(self.regs)
    }

    #[inline(always)]
    fn ret(&self) -> i64 {
        self.ctx.arg::<i64>(1)
    }

    #[inline(always)]
    fn call_at_exit(&self) -> Option<(u32, [u64; 6])> {
        // As on x86-64, the saved registers keep the arguments until the return.
        Some(decode(self.regs))
    }

    #[inline(always)]
    fn ia32(&self) -> bool {
        true
    }
}

/// Not a watched call: no program's table has this number.
const UNWATCHED: u32 = u32::MAX;

/// The x86-64 number and the arguments of the 32-bit call in `regs` (one probe read of the
/// registers; `socketcall` reads its arguments from the caller's memory).
#[inline(always)]
pub fn decode(regs: Regs) -> (u32, [u64; 6]) {
    // SAFETY: probe read of the task's saved registers (zero when it faults).
    let w: [u64; IA32_WINDOW_WORDS] = unsafe { read_z(regs.0, off!(regs_bp)) };
    let mut args = IA32_WINDOW_ARG.map(|i| w[i] & 0xffff_ffff);
    let Some(call) = IA32_SYSCALLS.get(w[IA32_WINDOW_NR] as u32).copied() else {
        return (UNWATCHED, args);
    };
    let mut nr = call.nr;
    match call.fixup {
        FIXUP_SOCKETCALL => {
            let Some(sub) = IA32_SOCKETCALL.get(args[0] as u32).copied() else {
                return (UNWATCHED, args);
            };
            nr = sub.nr;
            args = socketcall_args(args[1], sub.nargs);
        }
        FIXUP_LEN64 => args[1] |= args[2] << 32,
        FIXUP_UID16 => {
            for a in &mut args[1..3] {
                if *a == 0xffff {
                    *a = u64::from(u32::MAX);
                }
            }
        }
        _ => {}
    }
    (if nr == 0 { UNWATCHED } else { nr }, args)
}

/// The first `nargs` (≤ 6) 32-bit words at `from` in the caller's memory, zero-extended; the
/// others zero. Only the call's own words are read (an array at the end of a mapping reads),
/// one probe read each: the verifier takes only constant sizes here, and a zeroed array would
/// be a `memset` loop.
#[inline(always)]
fn socketcall_args(from: u64, nargs: u16) -> [u64; 6] {
    let word = |i: u16| {
        if i >= nargs {
            return 0;
        }
        let mut v = core::mem::MaybeUninit::<u32>::uninit();
        // SAFETY: user memory read with the probe helper into a stack value, which the helper
        // fills (with zeros when the read faults).
        unsafe {
            bpf_probe_read_user(v.as_mut_ptr().cast(), 4, (from + 4 * u64::from(i)) as *const _);
            u64::from(v.assume_init())
        }
    };
    [word(0), word(1), word(2), word(3), word(4), word(5)]
}
