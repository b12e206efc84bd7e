//! Verifying and attaching the programs of a fresh load: process lifecycle first (required),
//! then one collector per event kind, each switched off with a warning when this kernel cannot
//! run it. System calls reach their programs through fentry stubs, the raw dispatcher or
//! syscall tracepoints ([`SyscallHooks`]).

use std::{collections::HashMap, str::FromStr as _, time::Instant};

use anyhow::Context as _;
use aya::{
    Btf, Ebpf,
    maps::ProgramArray,
    programs::{Program, RawTracePoint, TracePoint},
};
use sensor_common::{EventKind, names};
use tracing::{debug, info, warn};

use super::{
    Attached, Fallback, SyscallHooks,
    fentry::{self, FentryTargets, program_fd, syscall_function},
};
use crate::{file_syscalls, links::Links, tracefs};

mod ia32;

/// Programs the verifier refused, with its reason.
type Refused = HashMap<String, String>;

/// What attaching needs: the object, what the verifier refused, where links go, and how system
/// calls reach the programs.
pub struct Attaching<'a> {
    ebpf: &'a mut Ebpf,
    refused: Refused,
    links: &'a mut Links,
    hooks: SyscallHooks,
    /// Dispatcher slots filled so far (syscall number, program), to catch a number claimed twice.
    slots: HashMap<(bool, u32), &'static str>,
    /// The fentry path: the kernel's BTF (stubs are loaded by function name), its syscall
    /// functions, and the next unused stub number of each group, entry and exit.
    btf: Option<(Btf, FentryTargets)>,
    next_stub: HashMap<(u32, bool, bool), u32>,
}

/// Attaches one optional collector.
pub type Collector = fn(&mut Attaching<'_>) -> anyhow::Result<()>;

/// How a kind's programs are attached after the process lifecycle.
pub enum Attach {
    /// Exec, fork and exit: required, attached first (see `LIFECYCLE`).
    Lifecycle,
    /// Reported by another kind's programs (`bpf_access` by `bpf_load`'s), attached with them.
    Shared,
    /// A collector of its own, named by the kind, switched off with a warning when this kernel
    /// cannot run it. `syscalls`: it watches system calls, whose tracepoint record layout is
    /// checked first when they come through tracepoints.
    Collector { attach: Collector, syscalls: bool },
}

/// How an event kind's programs are attached. Each kind implements it on its marker
/// (`sensor_common::kind::X`) in its module under `crate::kinds`; `attach_of` is generated
/// from the kind table.
pub trait Attachable {
    fn attach() -> Attach;
}

macro_rules! attach_of {
    ([] $($(#[$doc:meta])* $kind:ident = $num:literal => $name:literal,)+) => {
        /// The collector of each kind.
        fn attach_of(kind: EventKind) -> Attach {
            match kind {
                $(EventKind::$kind => <sensor_common::kind::$kind as Attachable>::attach(),)+
            }
        }
    };
}
sensor_common::for_each_event_kind!(attach_of);

/// A collector of system calls (their tracepoint layout is checked first).
pub fn syscall_collector(attach: Collector) -> Attach {
    Attach::Collector { attach, syscalls: true }
}

/// Loads into the kernel and attaches every program. Call after the readers have started.
/// Process lifecycle (exec, fork, exit) is required; the other collectors are switched off with
/// a warning when this kernel cannot run them.
/// The links are returned owned, not left to their programs: stopping releases them at once.
pub fn attach(
    ebpf: &mut Ebpf,
    hooks: SyscallHooks,
    fentry: Option<FentryTargets>,
) -> anyhow::Result<(Attached, Links)> {
    let started = Instant::now();
    let mut out = Attached::default();
    let mut links = Links::default();
    let (btf, hooks) = match (hooks, fentry) {
        (SyscallHooks::Fentry { fallback }, Some(targets)) => {
            let started = Instant::now();
            match Btf::from_sys_fs() {
                Ok(btf) => {
                    debug!(
                        elapsed_ms = started.elapsed().as_millis(),
                        "kernel BTF parsed for the fentry path"
                    );
                    (Some((btf, targets)), hooks)
                }
                Err(e) => {
                    warn!(error = %e, "fentry path: the kernel's BTF unreadable: falling back");
                    (None, fallback.into())
                }
            }
        }
        (SyscallHooks::Fentry { fallback }, None) => (None, fallback.into()),
        (hooks, _) => (None, hooks),
    };
    let (refused, hooks) = verify_all(ebpf, hooks, btf.as_ref().map(|(b, t)| (b, t)))?;
    debug!(elapsed_ms = started.elapsed().as_millis(), syscalls = hooks.name(), "programs verified");
    for (prog, tp) in LIFECYCLE {
        let p: &mut RawTracePoint =
            ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
        let id = p.attach(tp).with_context(|| format!("attaching {prog} to raw tracepoint {tp}"))?;
        links.push(p.take_link(id)?);
        // One line per attachment: the bench attaches its floor to exactly these.
        debug!(prog, raw_tracepoint = tp, "attached");
        out.collectors.push(prog);
    }
    let layout_ok = match hooks {
        SyscallHooks::Tracepoints => tracefs::check_syscall_layout(),
        SyscallHooks::Dispatcher | SyscallHooks::Fentry { .. } => Ok(()),
    };
    let mut a = Attaching {
        ebpf,
        refused,
        links: &mut links,
        hooks,
        slots: HashMap::new(),
        btf,
        next_stub: HashMap::new(),
    };
    for kind in EventKind::ALL {
        let Attach::Collector { attach, syscalls } = attach_of(kind) else { continue };
        let name = kind.name();
        let res = match &layout_ok {
            Err(e) if syscalls => Err(anyhow::anyhow!("{e:#}")),
            _ => attach(&mut a),
        };
        match res {
            Ok(()) => out.collectors.push(name),
            Err(e) => {
                warn!(collector = name, error = %format!("{e:#}"), "collector disabled on this kernel");
                out.disabled.push((name, format!("{e:#}")));
            }
        }
    }
    if hooks == SyscallHooks::Dispatcher && !a.slots.is_empty() {
        for (prog, tp) in
            [(names::PROG_SYS_ENTER_DISPATCH, "sys_enter"), (names::PROG_SYS_EXIT_DISPATCH, "sys_exit")]
        {
            a.raw_tracepoint(prog, tp).context("the system call dispatcher")?;
        }
    }
    out.syscalls = hooks.name();
    info!(
        elapsed_ms = started.elapsed().as_millis(),
        collectors = ?out.collectors,
        disabled = out.disabled.len(),
        syscalls = hooks.name(),
        "programs attached"
    );
    Ok((out, links))
}

/// The lifecycle programs and their raw tracepoints (required). Raw tracepoints pass the same
/// arguments as BTF tracepoints (`task`, `bprm`, …) without needing the kernel's own BTF, so
/// process lifecycle works the same on kernels built without it.
const LIFECYCLE: [(&str, &str); 3] = [
    (names::PROG_SCHED_PROCESS_EXEC, "sched_process_exec"),
    (names::PROG_SCHED_PROCESS_FORK, "sched_process_fork"),
    (names::PROG_SCHED_PROCESS_EXIT, "sched_process_exit"),
];

/// Verifies the programs of `hooks`. When the fentry path is refused (its twins, or the probe
/// of its stubs' tail calls), its fallback's programs are verified instead; when the dispatcher
/// itself is refused, the syscall tracepoint programs are, and the sensor goes on with them.
fn verify_all(
    ebpf: &mut Ebpf,
    hooks: SyscallHooks,
    fentry: Option<(&Btf, &FentryTargets)>,
) -> anyhow::Result<(Refused, SyscallHooks)> {
    let mut refused = verify(ebpf, true, |name| !hooks.excludes(name), fentry)?;
    let mut hooks = hooks;
    if let SyscallHooks::Fentry { fallback } = hooks {
        let twin_refused = refused.iter().find(|(p, _)| names::is_fentry_twin(p)).map(|(_, why)| why.clone());
        let why = match (twin_refused, fentry) {
            (Some(why), _) => Some(why),
            (None, Some((btf, targets))) => fentry::probe(ebpf, btf, targets).err().map(|e| format!("{e:#}")),
            (None, None) => Some("no kernel BTF".to_owned()),
        };
        if let Some(why) = why {
            hooks = fallback.into();
            warn!(error = %why, fallback = hooks.name(), "fentry path refused by this kernel: falling back");
            let wanted: fn(&str) -> bool = match fallback {
                Fallback::Dispatcher => |n| {
                    names::is_raw_twin(n) || names::is_dispatcher(n) || sensor_common::ia32::is_ia32_prog(n)
                },
                Fallback::Tracepoints => names::is_syscall_tracepoint_prog,
            };
            refused.extend(verify(ebpf, false, wanted, None)?);
        }
    }
    if hooks == SyscallHooks::Dispatcher {
        let dispatch = [names::PROG_SYS_ENTER_DISPATCH, names::PROG_SYS_EXIT_DISPATCH];
        if let Some(why) = dispatch.iter().find_map(|p| refused.get(*p)) {
            warn!(error = %why, "system call dispatcher refused: using syscall tracepoints");
            let fallback = SyscallHooks::Tracepoints;
            refused.extend(verify(ebpf, false, names::is_syscall_tracepoint_prog, None)?);
            return Ok((refused, fallback));
        }
    }
    Ok((refused, hooks))
}

/// Verifies (loads) the programs `wanted` selects: verification is most of start-up (on 6.18:
/// sys_exit_net ~200 ms, sched_process_exec ~150 ms, sys_exit_file ~100 ms), so the optional
/// programs are verified on threads of their own while the lifecycle programs (with
/// `lifecycle`) are verified here. A refused lifecycle program is an error; refused optional
/// ones are returned with the reason.
fn verify(
    ebpf: &mut Ebpf,
    lifecycle: bool,
    wanted: impl Fn(&str) -> bool,
    fentry: Option<(&Btf, &FentryTargets)>,
) -> anyhow::Result<Refused> {
    std::thread::scope(|s| {
        let mut required = Vec::new();
        let mut others = Vec::new();
        for (name, prog) in ebpf.programs_mut() {
            let is_lifecycle = LIFECYCLE.iter().any(|(n, _)| *n == name);
            if is_lifecycle {
                if let (true, Program::RawTracePoint(p)) = (lifecycle, prog) {
                    required.push((name, p));
                }
                continue;
            }
            if !wanted(name) {
                continue;
            }
            let started = Instant::now();
            let job = match prog {
                Program::RawTracePoint(p) => s.spawn(move || {
                    let res = p.load();
                    let insns = p.info().ok().and_then(|i| i.verified_instruction_count());
                    debug!(prog = name, elapsed_ms = started.elapsed().as_millis(), ?insns, "verified");
                    res
                }),
                Program::TracePoint(p) => s.spawn(move || {
                    let res = p.load();
                    let insns = p.info().ok().and_then(|i| i.verified_instruction_count());
                    debug!(prog = name, elapsed_ms = started.elapsed().as_millis(), ?insns, "verified");
                    res
                }),
                // The fentry twins of the groups this kernel has, each against a syscall
                // function of its group (the stubs are not `wanted`).
                Program::FEntry(_) | Program::FExit(_) => {
                    let Some((btf, target)) =
                        fentry.and_then(|(btf, t)| Some((btf, t.target_of_twin(name)?)))
                    else {
                        continue;
                    };
                    s.spawn(move || {
                        let res = match prog {
                            Program::FEntry(p) => p.load(target, btf),
                            Program::FExit(p) => p.load(target, btf),
                            _ => unreachable!("matched above"),
                        };
                        let insns = prog.info().ok().and_then(|i| i.verified_instruction_count());
                        debug!(
                            prog = name,
                            target,
                            elapsed_ms = started.elapsed().as_millis(),
                            ?insns,
                            "verified"
                        );
                        res
                    })
                }
                _ => continue,
            };
            others.push((name, job));
        }
        if lifecycle {
            for (prog, _) in LIFECYCLE {
                let started = Instant::now();
                let (_, p) = required
                    .iter_mut()
                    .find(|(n, _)| *n == prog)
                    .with_context(|| format!("program {prog} missing"))?;
                p.load().with_context(|| format!("verifying {prog}"))?;
                let insns = p.info().ok().and_then(|i| i.verified_instruction_count());
                debug!(prog, elapsed_ms = started.elapsed().as_millis(), ?insns, "verified");
            }
        }
        let mut refused = Refused::new();
        for (name, job) in others {
            let res = job.join().map_err(|_| anyhow::anyhow!("verifying {name}: the thread panicked"))?;
            if let Err(e) = res {
                refused.insert(
                    name.to_owned(),
                    format!("{:#}", anyhow::Error::new(e).context(format!("verifying {name}"))),
                );
            }
        }
        Ok(refused)
    })
}

impl Attaching<'_> {
    fn check(&self, prog: &str) -> anyhow::Result<()> {
        match self.refused.get(prog) {
            Some(why) => anyhow::bail!("{why}"),
            None => Ok(()),
        }
    }

    /// `prog` on the classic tracepoint `category/name`.
    pub fn tracepoint(&mut self, prog: &str, category: &str, name: &str) -> anyhow::Result<()> {
        self.check(prog)?;
        let p: &mut TracePoint =
            self.ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
        let id =
            p.attach(category, name).with_context(|| format!("attaching {prog} to {category}/{name}"))?;
        self.links.push(p.take_link(id)?);
        // One line per attachment: the bench attaches its floor to exactly these.
        debug!(prog, tracepoint = %format_args!("{category}/{name}"), "attached");
        Ok(())
    }

    /// `prog` on the raw tracepoint `tp`.
    fn raw_tracepoint(&mut self, prog: &str, tp: &str) -> anyhow::Result<()> {
        self.check(prog)?;
        let p: &mut RawTracePoint =
            self.ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
        let id = p.attach(tp).with_context(|| format!("attaching {prog} to raw tracepoint {tp}"))?;
        self.links.push(p.take_link(id)?);
        debug!(prog, raw_tracepoint = tp, "attached");
        Ok(())
    }

    /// The enter and exit programs of system call `syscall`.
    pub fn syscall_pair(
        &mut self,
        enter: &'static str,
        exit: &'static str,
        syscall: &str,
    ) -> anyhow::Result<()> {
        match self.hooks {
            SyscallHooks::Tracepoints => {
                self.tracepoint(enter, "syscalls", &format!("sys_enter_{syscall}"))?;
                self.tracepoint(exit, "syscalls", &format!("sys_exit_{syscall}"))
            }
            SyscallHooks::Fentry { .. } => {
                let nr = syscall_nr(syscall)?;
                let enter = (!names::TRACEPOINT_ONLY.contains(&enter)).then_some(enter);
                let twin = |p: &str| {
                    names::fentry_twin(p).with_context(|| format!("program {p} has no fentry twin"))
                };
                let function = syscall_function(syscall);
                let (_, targets) = self.btf.as_ref().context("the fentry path without the kernel's BTF")?;
                let g = targets
                    .group_of(&function)
                    .with_context(|| format!("no function {function} in this kernel's BTF"))?;
                // The exit first: a call seen only at its exit is reported from the registers,
                // an entry without its exit would only fill the pending maps.
                let exit_twin = format!("{}_{g}", twin(exit)?);
                self.table_slot(fentry::table(true, g), true, nr, exit, &exit_twin)?;
                self.attach_stub(true, g, &function, false)?;
                if let Some(enter) = enter {
                    let enter_twin = format!("{}_{g}", twin(enter)?);
                    self.table_slot(fentry::table(false, g), false, nr, enter, &enter_twin)?;
                    self.attach_stub(false, g, &function, false)?;
                }
                self.ia32_pair(enter, exit, syscall, nr);
                Ok(())
            }
            SyscallHooks::Dispatcher => {
                let nr = syscall_nr(syscall)?;
                // An enter program needed only on the tracepoints has nothing to do here.
                let enter = (!names::TRACEPOINT_ONLY.contains(&enter)).then_some(enter);
                // Both verified before either is in a table: an enter program without its exit
                // would only fill the pending maps.
                for prog in enter.into_iter().chain([exit]) {
                    self.check(names::raw_twin(prog).unwrap_or(prog))?;
                }
                if let Some(enter) = enter {
                    self.dispatch(false, nr, enter)?;
                }
                self.dispatch(true, nr, exit)?;
                self.ia32_pair(enter, exit, syscall, nr);
                Ok(())
            }
        }
    }

    /// Puts the raw twin of `prog` in the enter (or exit) dispatch table at `nr`.
    fn dispatch(&mut self, exit: bool, nr: u32, prog: &'static str) -> anyhow::Result<()> {
        let raw = names::raw_twin(prog).with_context(|| format!("program {prog} has no raw twin"))?;
        let table = if exit { names::MAP_SYS_EXIT_PROGS } else { names::MAP_SYS_ENTER_PROGS };
        self.table_slot(table, exit, nr, prog, raw)
    }

    /// Puts `twin` (of `prog`) in program array `table` at `nr`.
    fn table_slot(
        &mut self,
        table: &str,
        exit: bool,
        nr: u32,
        prog: &'static str,
        twin: &str,
    ) -> anyhow::Result<()> {
        self.check(twin)?;
        if let Some(other) = self.slots.get(&(exit, nr))
            && *other != prog
        {
            anyhow::bail!("system call {nr} is claimed by {other} and {prog}");
        }
        self.set_prog(table, nr, twin)?;
        self.slots.insert((exit, nr), prog);
        Ok(())
    }

    /// `prog` at `nr` in program array `table` (no claim: see [`Self::table_slot`]).
    fn set_prog(&mut self, table: &str, nr: u32, prog: &str) -> anyhow::Result<()> {
        let fd = program_fd(self.ebpf, prog)?;
        let map = self.ebpf.map_mut(table).with_context(|| format!("map {table} missing"))?;
        ProgramArray::try_from(map)?.set(nr, &fd, 0).with_context(|| format!("{table}[{nr}] = {prog}"))
    }

    /// Loads the next unused entry (or exit) stub of group `g` against kernel function
    /// `function` and attaches it there: one of the 32-bit calls' stubs when `ia32`.
    fn attach_stub(&mut self, exit: bool, g: u32, function: &str, ia32: bool) -> anyhow::Result<()> {
        // The 64-bit calls' last stub is the load-time probe's; the 32-bit calls' come after.
        let (first, end) = if ia32 {
            (names::FENTRY_STUBS, names::FENTRY_STUBS + sensor_common::ia32::IA32_FENTRY_STUBS)
        } else {
            (0, names::FENTRY_STUBS - 1)
        };
        let next = self.next_stub.entry((g, exit, ia32)).or_insert(first);
        if *next >= end {
            anyhow::bail!("no fentry stub left for {function}");
        }
        let stub = fentry::stub_name(exit, g, *next);
        *next += 1;
        let (btf, _) = self.btf.as_ref().context("the fentry path without the kernel's BTF")?;
        fentry::load_stub(self.ebpf, &stub, function, btf)?;
        let prog = self.ebpf.program_mut(&stub).with_context(|| format!("program {stub} missing"))?;
        let attached = match prog {
            Program::FEntry(p) => p.attach().and_then(|id| p.take_link(id)).map(|l| self.links.push(l)),
            Program::FExit(p) => p.attach().and_then(|id| p.take_link(id)).map(|l| self.links.push(l)),
            _ => anyhow::bail!("program {stub} is no fentry/fexit program"),
        };
        attached.with_context(|| format!("attaching {stub} to {function}"))?;
        // One line per attachment: the bench attaches its floor to exactly these.
        debug!(prog = %stub, function, exit, "attached");
        Ok(())
    }
}

/// The number of system call `name` on this architecture.
fn syscall_nr(name: &str) -> anyhow::Result<u32> {
    let nr = syscalls::Sysno::from_str(name)
        .map_err(|_| anyhow::anyhow!("no system call {name} on this architecture"))?
        .id();
    u32::try_from(nr).with_context(|| format!("system call number of {name}"))
}

/// The file programs on every watched file syscall this kernel has.
pub fn attach_file(a: &mut Attaching<'_>) -> anyhow::Result<()> {
    let mut attached = 0;
    let mut first_error = None;
    for (_, name, _) in file_syscalls::for_this_arch() {
        match a.syscall_pair(names::PROG_SYS_ENTER_FILE, names::PROG_SYS_EXIT_FILE, name) {
            Ok(()) => attached += 1,
            Err(e) => {
                debug!(syscall = name, error = %format!("{e:#}"), "file syscall not watched");
                first_error.get_or_insert(e);
            }
        }
    }
    if attached == 0 {
        // Say why (a verifier refusal is the same for every syscall), not only that it failed.
        let e = first_error.unwrap_or_else(|| anyhow::anyhow!("no file syscalls on this architecture"));
        return Err(e.context("no file syscall could be watched"));
    }
    Ok(())
}

/// The network programs on every watched network syscall.
pub fn attach_net(a: &mut Attaching<'_>) -> anyhow::Result<()> {
    for (_, name, _) in file_syscalls::net_for_this_arch() {
        a.syscall_pair(names::PROG_SYS_ENTER_NET, names::PROG_SYS_EXIT_NET, name)?;
    }
    a.ia32_socketcall(names::PROG_SYS_ENTER_NET, names::PROG_SYS_EXIT_NET);
    Ok(())
}

/// `ptrace`, and the other ways into another process: `process_vm_writev`, `process_vm_readv`
/// (the program keeps only reads of the sensor) and `pidfd_getfd`; all exits share one program.
pub fn attach_ptrace(a: &mut Attaching<'_>) -> anyhow::Result<()> {
    a.syscall_pair(names::PROG_SYS_ENTER_PTRACE, names::PROG_SYS_EXIT_PTRACE, "ptrace")?;
    for (enter, syscall) in [
        (names::PROG_SYS_ENTER_PROCESS_VM_WRITEV, "process_vm_writev"),
        (names::PROG_SYS_ENTER_PROCESS_VM_READV, "process_vm_readv"),
        (names::PROG_SYS_ENTER_PIDFD_GETFD, "pidfd_getfd"),
    ] {
        // pidfd_getfd is 5.6+: its absence leaves ptrace and process_vm_* watched.
        if let Err(e) = a.syscall_pair(enter, names::PROG_SYS_EXIT_PTRACE, syscall) {
            warn!(syscall, error = %format!("{e:#}"), "process access system call not watched");
        }
    }
    Ok(())
}

/// Signals generated for the sensor (raw tracepoint: it sees the sender before delivery).
pub fn attach_signal(a: &mut Attaching<'_>) -> anyhow::Result<()> {
    a.raw_tracepoint(names::PROG_SIGNAL_GENERATE, "signal_generate")
}

pub fn attach_cred(a: &mut Attaching<'_>) -> anyhow::Result<()> {
    for syscall in names::CRED_SYSCALLS {
        a.syscall_pair(names::PROG_SYS_ENTER_CRED, names::PROG_SYS_EXIT_CRED, syscall)?;
    }
    Ok(())
}
