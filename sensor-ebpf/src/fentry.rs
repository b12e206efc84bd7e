//! The fentry path: system calls reached without the kernel's syscall slow path.
//!
//! Any program on the `sys_enter`/`sys_exit` tracepoints (raw or not) sets a flag on every
//! thread that sends *every* system call of the machine through the slow path. `fentry` and
//! `fexit` programs patch only the function they trace. Here each watched call's
//! `__x64_sys_X(const struct pt_regs *regs)` gets a stub (`fentry_stub_N`, `fexit_stub_N`,
//! loaded against that function by the loader) that tail-calls, by the number in
//! `regs->orig_ax`, the call's *fentry twin* — the same body the raw twins run (see
//! [`crate::syscall_program!`]). Calls nobody watches run no program at all.
//!
//! Tail calls between tracing programs need one attach prototype (kernel 6.12+, backported).
//! The kernels' BTF gives the `__x64_sys_X` functions two (the argument named `regs` or
//! `__unused`), so the programs come in two groups, each with its own twins (loaded against a
//! function of that group), stubs and tables; the loader sorts the functions by prototype.
//!
//! 32-bit calls go through `__ia32_sys_X` and `__ia32_compat_sys_X` (same prototypes), with
//! i386 numbers in `orig_ax`: their stubs (numbered from `FENTRY_STUBS`) tail-call through
//! tables of their own (`F*_IA32_PROGS_*`) into the same twins, which decode such a call from
//! the i386 registers ([`crate::ia32`]) when the task is in one (`TS_COMPAT`). x32 calls carry
//! a number above the tables.

use core::ffi::c_void;

use crate::{
    dispatch::{Regs, Syscall, compat},
    ia32,
    kernel::read_z,
};
use aya_ebpf::{
    EbpfContext,
    macros::{fentry, fexit, map},
    maps::ProgramArray,
    programs::{FEntryContext, FExitContext},
};

use sensor_common::syscalls::SYSCALL_SLOTS as SLOTS;

// One table pair per prototype group (`sensor_common::names::FENTRY_GROUPS`): syscall number →
// the group's fentry twin of the call's enter program, or fexit twin of its exit program.
#[map(name = "FENTRY_PROGS_0")]
static FENTRY_PROGS_0: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FEXIT_PROGS_0")]
static FEXIT_PROGS_0: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FENTRY_PROGS_1")]
static FENTRY_PROGS_1: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FEXIT_PROGS_1")]
static FEXIT_PROGS_1: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
// The same for 32-bit calls: i386 number → the twin of the x86-64 call it equals.
#[map(name = "FENTRY_IA32_PROGS_0")]
static FENTRY_IA32_PROGS_0: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FEXIT_IA32_PROGS_0")]
static FEXIT_IA32_PROGS_0: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FENTRY_IA32_PROGS_1")]
static FENTRY_IA32_PROGS_1: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);
#[map(name = "FEXIT_IA32_PROGS_1")]
static FEXIT_IA32_PROGS_1: ProgramArray = ProgramArray::with_max_entries(SLOTS, 0);

/// An `fentry`/`fexit` call of `__x64_sys_X(const struct pt_regs *regs)` in a twin of
/// prototype group `G`: the context holds `regs`, then (fexit) the return value.
///
/// The group keeps the twins of a body apart. One type for both would make the body's inner
/// closures one function with two callers, left out of line; identical twins would be merged by
/// the compiler into one calling the other. A program must not call a subprogram (see the
/// loader's `no_program_calls_a_subprogram`).
///
/// A twin runs for 64-bit and 32-bit calls alike (their stubs differ, not their twins): `ia32`
/// says which this one is, and the call is decoded accordingly.
pub struct FentrySyscall<const G: u32> {
    ctx: *mut c_void,
    regs: Regs,
    ia32: bool,
}

impl<const G: u32> FentrySyscall<G> {
    #[inline(always)]
    pub fn new(ctx: *mut c_void) -> Self {
        core::hint::black_box(G);
        Self { ctx, regs: regs_of(ctx), ia32: compat() }
    }
}

/// `regs`, the traced function's argument, read from the context with a probe read rather than
/// a typed context load: where the function's BTF prototype came from the weak `sys_ni.c`
/// stubs, `struct pt_regs` is only declared there, and 5.10 refuses a load of a pointer to it
/// ("arg#0 type is not a struct").
#[inline(always)]
fn regs_of(ctx: *mut c_void) -> Regs {
    // SAFETY: probe read of the context's first slot (zero when it faults).
    Regs(unsafe { read_z::<u64>(ctx as *const u8, 0) } as *const u8)
}

impl<const G: u32> Syscall for FentrySyscall<G> {
    #[inline(always)]
    fn nr(&self) -> u32 {
        self.call().0
    }

    #[inline(always)]
    fn arg(&self, i: usize) -> u64 {
        if self.ia32 { self.call().1[i] } else { self.regs.arg(i) }
    }

    #[inline(always)]
    fn args(&self) -> [u64; 6] {
        self.call().1
    }

    /// Only in `fexit` programs: the slot after the one argument.
    #[inline(always)]
    fn ret(&self) -> i64 {
        // SAFETY: an fexit context of a one-argument function holds the return value second.
        unsafe { *(self.ctx as *const i64).add(1) }
    }

    #[inline(always)]
    fn call(&self) -> (u32, [u64; 6]) {
        if self.ia32 { ia32::decode(self.regs) } else { self.regs.call() }
    }

    #[inline(always)]
    fn call_at_exit(&self) -> Option<(u32, [u64; 6])> {
        // The registers saved at entry are unchanged but for `ax` at the wrapper's return.
        Some(self.call())
    }

    #[inline(always)]
    fn ia32(&self) -> bool {
        self.ia32
    }
}

/// A stub's body: the traced call's number from `regs->orig_ax`, then its twin in `progs`.
#[inline(always)]
fn stub<C: EbpfContext>(ctx: &C, progs: &ProgramArray) -> u32 {
    let nr = regs_of(ctx.as_ptr()).nr();
    if nr < SLOTS {
        // SAFETY: tail call with this program's own context; an empty slot returns here.
        unsafe { progs.tail_call(ctx, nr) };
    }
    0
}

// The stubs of each group, `fentry_stub_{group}_{n}` and `fexit_stub_{group}_{n}` (names and
// count: `sensor_common::names::FENTRY_STUB_PREFIX`, `FENTRY_STUBS`; the object test checks).
//
// Each block of stubs has an ELF section of its own (`fentry/stubs_0`, ...; the part after the
// slash is only a name: stubs are attached to the functions the loader picks): the loader's
// object parser gives every program of a section a copy of that whole section's BTF line and
// function info (aya-obj 0.3, `get_func_and_line_info`), so the 544 stubs in the sections of the
// big fentry/fexit twins made start-up peak at ~100 MiB of copies (53 MiB before the 32-bit
// stubs doubled their count), freed once the programs were loaded.
seq_macro::seq!(N in 0..64 {
    #[fentry(function = "stubs_0")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fentry_stub_0_~N(ctx: FEntryContext) -> u32 {
        stub(&ctx, &FENTRY_PROGS_0)
    }

    #[fexit(function = "stubs_0")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fexit_stub_0_~N(ctx: FExitContext) -> u32 {
        stub(&ctx, &FEXIT_PROGS_0)
    }

    #[fentry(function = "stubs_1")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fentry_stub_1_~N(ctx: FEntryContext) -> u32 {
        stub(&ctx, &FENTRY_PROGS_1)
    }

    #[fexit(function = "stubs_1")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fexit_stub_1_~N(ctx: FExitContext) -> u32 {
        stub(&ctx, &FEXIT_PROGS_1)
    }
});

// The stubs of 32-bit calls, numbered on from the others' (`sensor_common::ia32::IA32_FENTRY_STUBS`).
const _: () = assert!(
    sensor_common::names::FENTRY_STUBS == 64
        && sensor_common::names::FENTRY_STUBS + sensor_common::ia32::IA32_FENTRY_STUBS == 136
);
seq_macro::seq!(N in 64..136 {
    #[fentry(function = "ia32_stubs_0")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fentry_stub_0_~N(ctx: FEntryContext) -> u32 {
        stub(&ctx, &FENTRY_IA32_PROGS_0)
    }

    #[fexit(function = "ia32_stubs_0")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fexit_stub_0_~N(ctx: FExitContext) -> u32 {
        stub(&ctx, &FEXIT_IA32_PROGS_0)
    }

    #[fentry(function = "ia32_stubs_1")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fentry_stub_1_~N(ctx: FEntryContext) -> u32 {
        stub(&ctx, &FENTRY_IA32_PROGS_1)
    }

    #[fexit(function = "ia32_stubs_1")]
    #[expect(clippy::needless_pass_by_value, reason = "the program macro passes the context by value")]
    pub fn fexit_stub_1_~N(ctx: FExitContext) -> u32 {
        stub(&ctx, &FEXIT_IA32_PROGS_1)
    }
});
