//! 32-bit system calls (see `sensor_common::ia32`): for each watched x86-64 call, the i386 calls
//! that equal it get their decoding in `IA32_SYSCALLS` and, through the raw dispatcher, the
//! `ia32_*` twins of its programs and a gate in the dispatchers' tables where no 64-bit program
//! has that number; on the fentry path, the call's own twins behind stubs on the `__ia32_*`
//! function. The syscall tracepoints never see 32-bit calls. Best effort: a step that fails
//! leaves the 32-bit calls of that one system call unwatched, with a warning, and the 64-bit
//! ones as they are.

use std::str::FromStr as _;

use anyhow::Context as _;
use aya::maps::Array;
use sensor_common::{
    file::FileSyscallSpec,
    ia32::{
        FIXUP_LEN64, FIXUP_NONE, FIXUP_SOCKETCALL, FIXUP_UID16, IA32_TWIN_PREFIX, Ia32Call,
        MAP_FENTRY_IA32_PROGS, MAP_FEXIT_IA32_PROGS, MAP_IA32_ENTER_PROGS, MAP_IA32_EXIT_PROGS,
        MAP_IA32_SOCKETCALL, MAP_IA32_SYSCALLS, PROG_IA32_ENTER_GATE, PROG_IA32_EXIT_GATE, RAW_TWIN_PREFIX,
    },
    names,
};
use tracing::{debug, warn};

use super::{Attaching, SyscallHooks};

/// i386 calls that equal an x86-64 call of another name or with other arguments:
/// (x86-64 name, i386 name, fixup). An x86-64 call not named here equals the i386 call of its
/// own name, when there is one.
const ALIASES: &[(&str, &str, u16)] = &[
    // The i386 `chown` family of Linux 2.2 takes 16-bit ids; the `*32` calls are the ones glibc uses.
    ("chown", "chown32", FIXUP_NONE),
    ("chown", "chown", FIXUP_UID16),
    ("lchown", "lchown32", FIXUP_NONE),
    ("lchown", "lchown", FIXUP_UID16),
    ("fchown", "fchown32", FIXUP_NONE),
    ("fchown", "fchown", FIXUP_UID16),
    ("truncate", "truncate", FIXUP_NONE),
    ("truncate", "truncate64", FIXUP_LEN64),
    ("ftruncate", "ftruncate", FIXUP_NONE),
    ("ftruncate", "ftruncate64", FIXUP_LEN64),
    // The 16-bit credential calls change the same credentials (the programs compare before and
    // after, not the arguments).
    ("setuid", "setuid32", FIXUP_NONE),
    ("setuid", "setuid", FIXUP_NONE),
    ("setgid", "setgid32", FIXUP_NONE),
    ("setgid", "setgid", FIXUP_NONE),
    ("setreuid", "setreuid32", FIXUP_NONE),
    ("setreuid", "setreuid", FIXUP_NONE),
    ("setregid", "setregid32", FIXUP_NONE),
    ("setregid", "setregid", FIXUP_NONE),
    ("setresuid", "setresuid32", FIXUP_NONE),
    ("setresuid", "setresuid", FIXUP_NONE),
    ("setresgid", "setresgid32", FIXUP_NONE),
    ("setresgid", "setresgid", FIXUP_NONE),
    ("setfsuid", "setfsuid32", FIXUP_NONE),
    ("setfsuid", "setfsuid", FIXUP_NONE),
    ("setfsgid", "setfsgid32", FIXUP_NONE),
    ("setfsgid", "setfsgid", FIXUP_NONE),
];

/// The network calls `socketcall(call, args)` multiplexes that the network programs watch:
/// (`SYS_*` call number, x86-64 call, how many arguments it takes from `args`). `send` is
/// `sendto` without an address.
pub(super) const SOCKETCALL: &[(u32, &str, u16)] = &[
    (2, "bind", 3),
    (3, "connect", 3),
    (4, "listen", 2),
    (5, "accept", 3),
    (9, "sendto", 4),
    (11, "sendto", 6),
    (16, "sendmsg", 3),
    (18, "accept4", 4),
    (20, "sendmmsg", 4),
];

/// The i386 calls (number, name, fixup) that equal x86-64 call `x64`.
pub(super) fn calls_equal_to(x64: &str) -> Vec<(u32, &'static str, u16)> {
    let named: Vec<_> = ALIASES.iter().filter(|(x, _, _)| *x == x64).map(|&(_, i, f)| (i, f)).collect();
    let names = if named.is_empty() {
        // The name as the i386 table spells it (a `&'static str`), when it has the call.
        syscalls::x86::Sysno::from_str(x64).map(|s| vec![(s.name(), FIXUP_NONE)]).unwrap_or_default()
    } else {
        named
    };
    names.into_iter().filter_map(|(name, fixup)| Some((i386_nr(name)?, name, fixup))).collect()
}

/// The i386 number of `name`.
fn i386_nr(name: &str) -> Option<u32> {
    u32::try_from(syscalls::x86::Sysno::from_str(name).ok()?.id()).ok()
}

/// The 32-bit twin of raw twin `raw` (`raw_exit_file` → `ia32_exit_file`).
fn ia32_twin(raw: &str) -> Option<String> {
    raw.strip_prefix(RAW_TWIN_PREFIX).map(|rest| format!("{IA32_TWIN_PREFIX}{rest}"))
}

/// i386 calls whose entry point (`syscall_32.tbl`) is the compat function: `__ia32_compat_sys_X`.
/// The others use `__ia32_sys_X`: a kernel's BTF has both names for many calls (the weak
/// `sys_ni.c` stubs), so the name alone does not say which one the table calls.
const COMPAT_ENTRY: &[&str] =
    &["open", "openat", "truncate", "ftruncate", "socketcall", "ptrace", "sendmsg", "sendmmsg"];

/// i386 calls whose entry point has another name: (call, function after `__ia32_`).
const ENTRY_POINTS: &[(&str, &str)] = &[
    ("chown32", "sys_chown"),
    ("lchown32", "sys_lchown"),
    ("fchown32", "sys_fchown"),
    ("chown", "sys_chown16"),
    ("lchown", "sys_lchown16"),
    ("fchown", "sys_fchown16"),
    ("truncate64", "sys_ia32_truncate64"),
    ("ftruncate64", "sys_ia32_ftruncate64"),
    ("setuid32", "sys_setuid"),
    ("setuid", "sys_setuid16"),
    ("setgid32", "sys_setgid"),
    ("setgid", "sys_setgid16"),
    ("setreuid32", "sys_setreuid"),
    ("setreuid", "sys_setreuid16"),
    ("setregid32", "sys_setregid"),
    ("setregid", "sys_setregid16"),
    ("setresuid32", "sys_setresuid"),
    ("setresuid", "sys_setresuid16"),
    ("setresgid32", "sys_setresgid"),
    ("setresgid", "sys_setresgid16"),
    ("setfsuid32", "sys_setfsuid"),
    ("setfsuid", "sys_setfsuid16"),
    ("setfsgid32", "sys_setfsgid"),
    ("setfsgid", "sys_setfsgid16"),
];

/// The kernel function the i386 table calls for `name` (the fentry path's stubs attach there).
fn entry_point(name: &str) -> String {
    match ENTRY_POINTS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => format!("__ia32_{f}"),
        None if COMPAT_ENTRY.contains(&name) => format!("__ia32_compat_sys_{name}"),
        None => format!("__ia32_sys_{name}"),
    }
}

impl Attaching<'_> {
    /// The 32-bit calls that equal x86-64 call `syscall` (number `x64`), watched by the twins
    /// of `enter` (when it has one) and `exit`.
    pub(super) fn ia32_pair(
        &mut self,
        enter: Option<&'static str>,
        exit: &'static str,
        syscall: &str,
        x64: u32,
    ) {
        for (nr, name, fixup) in calls_equal_to(syscall) {
            match self.ia32_call(enter, exit, nr, name, Ia32Call { nr: x64, fixup, nargs: 0 }) {
                Ok(()) => debug!(syscall = name, i386 = nr, x86_64 = x64, "32-bit call watched"),
                Err(e) => {
                    warn!(syscall = name, i386 = nr, error = %format!("{e:#}"), "32-bit system call not watched");
                }
            }
        }
    }

    /// `socketcall`'s network calls, by the twins of the network programs.
    pub(super) fn ia32_socketcall(&mut self, enter: &'static str, exit: &'static str) {
        if self.hooks == SyscallHooks::Tracepoints {
            return;
        }
        let res = (|| -> anyhow::Result<()> {
            let nr = i386_nr("socketcall").context("no socketcall in the i386 table")?;
            let map = self.ebpf.map_mut(MAP_IA32_SOCKETCALL).context("map IA32_SOCKETCALL missing")?;
            let mut table: Array<_, Ia32Call> = Array::try_from(map)?;
            for &(call, name, nargs) in SOCKETCALL {
                let x64 = super::syscall_nr(name)?;
                table.set(call, Ia32Call { nr: x64, fixup: FIXUP_NONE, nargs }, 0)?;
            }
            let decode = Ia32Call { nr: 0, fixup: FIXUP_SOCKETCALL, nargs: 0 };
            self.ia32_call(Some(enter), exit, nr, "socketcall", decode)
        })();
        if let Err(e) = res {
            warn!(error = %format!("{e:#}"), "32-bit socketcall not watched");
        }
    }

    /// i386 call `nr` (`name`), decoded as `decode` says, by the twins of `enter` and `exit`
    /// on the way system calls reach the programs here.
    fn ia32_call(
        &mut self,
        enter: Option<&'static str>,
        exit: &'static str,
        nr: u32,
        name: &str,
        decode: Ia32Call,
    ) -> anyhow::Result<()> {
        match self.hooks {
            SyscallHooks::Dispatcher => self.ia32_raw(enter, exit, nr, decode),
            SyscallHooks::Fentry { .. } => self.ia32_fentry(enter, exit, nr, name, decode),
            SyscallHooks::Tracepoints => anyhow::bail!("the syscall tracepoints never see 32-bit calls"),
        }
    }

    /// Through the dispatcher: the `ia32_*` twins in `IA32_*_PROGS`, and gates.
    fn ia32_raw(
        &mut self,
        enter: Option<&'static str>,
        exit: &'static str,
        nr: u32,
        decode: Ia32Call,
    ) -> anyhow::Result<()> {
        let twins = twins_of(enter, exit, |prog| {
            let raw = names::raw_twin(prog).with_context(|| format!("program {prog} has no raw twin"))?;
            ia32_twin(raw).with_context(|| format!("raw twin {raw} is misnamed"))
        })?;
        for (_, twin) in &twins {
            self.check(twin)?;
        }
        // The decoding first, then the exit's twin, then the enter's: a twin never runs on a
        // number it cannot decode, nor an enter without its exit.
        self.set_decode(nr, decode)?;
        for (exit, twin) in twins.iter().rev() {
            let table = if *exit { MAP_IA32_EXIT_PROGS } else { MAP_IA32_ENTER_PROGS };
            self.set_prog(table, nr, twin)?;
            self.gate(*exit, nr)?;
        }
        self.mark_file_slot(nr)
    }

    /// On the fentry path: the same twins as the 64-bit calls', in the `F*_IA32_PROGS_*` tables,
    /// and 32-bit stubs on the call's `__ia32_*` function.
    fn ia32_fentry(
        &mut self,
        enter: Option<&'static str>,
        exit: &'static str,
        nr: u32,
        name: &str,
        decode: Ia32Call,
    ) -> anyhow::Result<()> {
        let function = entry_point(name);
        let (_, targets) = self.btf.as_ref().context("the fentry path without the kernel's BTF")?;
        let g = targets
            .group_of(&function)
            .with_context(|| format!("no function {function} in this kernel's BTF"))?;
        let twins = twins_of(enter, exit, |prog| {
            let base =
                names::fentry_twin(prog).with_context(|| format!("program {prog} has no fentry twin"))?;
            Ok(format!("{base}_{g}"))
        })?;
        for (_, twin) in &twins {
            self.check(twin)?;
        }
        self.set_decode(nr, decode)?;
        for (exit, twin) in twins.iter().rev() {
            let tables = if *exit { &MAP_FEXIT_IA32_PROGS } else { &MAP_FENTRY_IA32_PROGS };
            self.set_prog(tables[g as usize], nr, twin)?;
            self.attach_stub(*exit, g, &function, true)?;
        }
        Ok(())
    }

    /// `IA32_SYSCALLS[nr]`.
    fn set_decode(&mut self, nr: u32, decode: Ia32Call) -> anyhow::Result<()> {
        let map = self.ebpf.map_mut(MAP_IA32_SYSCALLS).context("map IA32_SYSCALLS missing")?;
        Array::<_, Ia32Call>::try_from(map)?
            .set(nr, decode, 0)
            .with_context(|| format!("IA32_SYSCALLS[{nr}]"))
    }

    /// A gate at `nr` in the enter (exit) dispatch table, unless a 64-bit program has that
    /// number there (its raw twin hands 32-bit calls on itself). A 64-bit program attached
    /// later replaces the gate.
    fn gate(&mut self, exit: bool, nr: u32) -> anyhow::Result<()> {
        if self.slots.contains_key(&(exit, nr)) {
            return Ok(());
        }
        let (table, gate) = if exit {
            (names::MAP_SYS_EXIT_PROGS, PROG_IA32_EXIT_GATE)
        } else {
            (names::MAP_SYS_ENTER_PROGS, PROG_IA32_ENTER_GATE)
        };
        self.check(gate)?;
        self.set_prog(table, nr, gate)
    }

    /// Tells the raw file exit at 64-bit number `nr`, if there is one, that a 32-bit call of
    /// that number is watched (see `FileSyscallSpec::ia32_slot`).
    fn mark_file_slot(&mut self, nr: u32) -> anyhow::Result<()> {
        let map = self.ebpf.map_mut(names::MAP_FILE_SYSCALLS).context("map FILE_SYSCALLS missing")?;
        let mut specs: Array<_, FileSyscallSpec> = Array::try_from(map)?;
        let spec = specs.get(&nr, 0)?;
        if spec.op != 0 && spec.ia32_slot == 0 {
            specs.set(nr, FileSyscallSpec { ia32_slot: 1, ..spec }, 0)?;
        }
        Ok(())
    }
}

/// (exit, twin) of `enter` (when there is one) and `exit`, named by `twin`.
fn twins_of(
    enter: Option<&str>,
    exit: &str,
    twin: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<(bool, String)>> {
    enter.map(|p| (false, p)).into_iter().chain([(true, exit)]).map(|(e, p)| Ok((e, twin(p)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_i386_calls_of_watched_names_resolve() {
        assert_eq!(calls_equal_to("openat"), [(295, "openat", FIXUP_NONE)]);
        assert_eq!(calls_equal_to("open"), [(5, "open", FIXUP_NONE)]);
        assert_eq!(calls_equal_to("connect"), [(362, "connect", FIXUP_NONE)]);
        assert_eq!(calls_equal_to("chown"), [(212, "chown32", FIXUP_NONE), (182, "chown", FIXUP_UID16)]);
        assert_eq!(
            calls_equal_to("ftruncate"),
            [(93, "ftruncate", FIXUP_NONE), (194, "ftruncate64", FIXUP_LEN64)]
        );
        assert_eq!(calls_equal_to("setuid"), [(213, "setuid32", FIXUP_NONE), (23, "setuid", FIXUP_NONE)]);
        // No i386 `accept`: 32-bit programs accept through socketcall or accept4.
        assert_eq!(calls_equal_to("accept"), []);
        assert_eq!(ia32_twin("raw_exit_file").as_deref(), Some("ia32_exit_file"));
        assert_eq!(entry_point("openat"), "__ia32_compat_sys_openat");
        assert_eq!(entry_point("connect"), "__ia32_sys_connect");
        assert_eq!(entry_point("setuid"), "__ia32_sys_setuid16");
    }

    /// Every watched call of the other tables has its 32-bit counterpart (but `accept`, through
    /// socketcall), and every socketcall entry names a watched network call.
    #[test]
    fn every_watched_call_has_a_32_bit_counterpart() {
        let watched = crate::file_syscalls::TABLE
            .iter()
            .map(|(n, _)| *n)
            .chain(crate::file_syscalls::NET_TABLE.iter().map(|(n, _)| *n))
            .chain(names::CRED_SYSCALLS)
            .chain(["ptrace", "process_vm_writev", "process_vm_readv", "pidfd_getfd"])
            .chain(["bpf", "memfd_create", "io_uring_setup"]);
        for name in watched.clone().filter(|n| *n != "accept") {
            assert!(!calls_equal_to(name).is_empty(), "{name} has no i386 call");
        }
        let calls: usize = watched.clone().map(|n| calls_equal_to(n).len()).sum::<usize>() + 1;
        // Per group and direction, in the worst case of one group for all (`+ 1`: socketcall).
        assert!(calls <= sensor_common::ia32::IA32_FENTRY_STUBS as usize, "{calls} 32-bit calls");
        for (call, name, nargs) in SOCKETCALL {
            assert!(crate::file_syscalls::NET_TABLE.iter().any(|(n, _)| n == name), "{call}: {name}");
            assert!((2..=6).contains(nargs), "{name}");
        }
    }
}
