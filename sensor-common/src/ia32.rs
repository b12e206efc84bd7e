//! 32-bit system calls of a 64-bit x86 kernel (`int 0x80`, or `sysenter`/`syscall` from 32-bit
//! code): their numbers are the i386 table's and their arguments sit in other registers, so the
//! x86-64 programs cannot read them. Through the raw dispatcher each watched one is decoded into
//! the x86-64 call it equals (`IA32_SYSCALLS`, written by the loader) and run by the `ia32_*`
//! twin of that call's program; the records are the same as for the 64-bit call.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// What a watched 32-bit call is to the programs (`IA32_SYSCALLS[i386 number]`, and
/// `IA32_SOCKETCALL[call]` for the calls `socketcall` multiplexes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Ia32Call {
    /// The x86-64 number of the same call; 0 with `fixup` 0 in an unused slot.
    pub nr: u32,
    /// How its arguments differ from the x86-64 call's: a `FIXUP_*`.
    pub fixup: u16,
    /// `IA32_SOCKETCALL` entries: how many 32-bit arguments the call takes from the caller's
    /// array (at most 6).
    pub nargs: u16,
}

const _: () = assert!(size_of::<Ia32Call>() == 8);

/// The arguments are the x86-64 call's, each 32 bits wide.
pub const FIXUP_NONE: u16 = 0;
/// `socketcall(call, args)`: the call is `IA32_SOCKETCALL[call]`, its arguments the 32-bit
/// words at `args` in the caller's memory.
pub const FIXUP_SOCKETCALL: u16 = 1;
/// `truncate64`, `ftruncate64`: the 64-bit length is split over arguments 1 (low) and 2 (high).
pub const FIXUP_LEN64: u16 = 2;
/// `chown`, `lchown`, `fchown` of the i386 table: 16-bit ids in arguments 1 and 2 (`0xffff`
/// leaves one unchanged, as -1 does).
pub const FIXUP_UID16: u16 = 3;
/// One past the highest fixup.
pub const FIXUP_COUNT: u16 = 4;

/// Slots of `IA32_SOCKETCALL`: above every `SYS_*` call number of `socketcall` (1–20).
pub const SOCKETCALL_SLOTS: u32 = 32;

/// i386 number → [`Ia32Call`].
pub const MAP_IA32_SYSCALLS: &str = "IA32_SYSCALLS";
/// `socketcall`'s call number → [`Ia32Call`].
pub const MAP_IA32_SOCKETCALL: &str = "IA32_SOCKETCALL";
/// i386 number → the `ia32_*` twin of the watched call's enter (exit) program.
pub const MAP_IA32_ENTER_PROGS: &str = "IA32_ENTER_PROGS";
pub const MAP_IA32_EXIT_PROGS: &str = "IA32_EXIT_PROGS";
/// Put by the loader in the dispatchers' tables at the numbers of watched 32-bit calls that no
/// 64-bit program claims: they pass 32-bit calls on to `IA32_*_PROGS` and return at once on
/// the 64-bit call of that number.
pub const PROG_IA32_ENTER_GATE: &str = "ia32_enter_gate";
pub const PROG_IA32_EXIT_GATE: &str = "ia32_exit_gate";

/// The fentry path's stubs of 32-bit calls: `fentry_stub_{group}_{n}` and `fexit_stub_{group}_{n}`
/// for `n` from [`crate::names::FENTRY_STUBS`], this many, each loaded against one watched
/// `__ia32_sys_X` or `__ia32_compat_sys_X` function; they tail-call through
/// [`MAP_FENTRY_IA32_PROGS`] ([`MAP_FEXIT_IA32_PROGS`]) by i386 number.
pub const IA32_FENTRY_STUBS: u32 = 72;
pub const MAP_FENTRY_IA32_PROGS: [&str; crate::names::FENTRY_GROUPS as usize] =
    ["FENTRY_IA32_PROGS_0", "FENTRY_IA32_PROGS_1"];
pub const MAP_FEXIT_IA32_PROGS: [&str; crate::names::FENTRY_GROUPS as usize] =
    ["FEXIT_IA32_PROGS_0", "FEXIT_IA32_PROGS_1"];

/// A raw twin's name starts so (`raw_enter_net`) ...
pub const RAW_TWIN_PREFIX: &str = "raw_";
/// ... and its 32-bit twin's so, with the same rest (`ia32_enter_net`).
pub const IA32_TWIN_PREFIX: &str = "ia32_";

/// Whether `name` is a 32-bit twin of a raw twin (see [`IA32_TWIN_PREFIX`]) or a gate.
pub fn is_ia32_prog(name: &str) -> bool {
    if name == PROG_IA32_ENTER_GATE || name == PROG_IA32_EXIT_GATE {
        return true;
    }
    let Some(rest) = name.strip_prefix(IA32_TWIN_PREFIX) else { return false };
    crate::names::raw_twins().any(|(_, raw, _)| raw.strip_prefix(RAW_TWIN_PREFIX) == Some(rest))
}
