//! How system calls reach the programs — fentry stubs, the raw dispatcher or the syscall
//! tracepoints — and the settings that choose among them at load.

use sensor_common::names;
use tracing::{info, warn};

/// How system calls reach the programs (see the eBPF crate's `dispatch` and `fentry` modules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallHooks {
    /// An `fentry`/`fexit` stub pair on each watched call's `__x64_sys_X` function, tail-calling
    /// the call's program: no program on `sys_enter`/`sys_exit`, so the kernel keeps every
    /// system call on its fast path. Where this kernel refuses tracing programs (or their tail
    /// calls), the sensor goes on with `fallback`, chosen as if the fentry path were off.
    Fentry { fallback: Fallback },
    /// Raw `sys_enter`/`sys_exit` programs tail-calling by syscall number: two attachments
    /// (x86-64; see [`SyscallHooks::choose_with_fentry`]).
    Dispatcher,
    /// A `syscalls/sys_enter_X`/`sys_exit_X` tracepoint pair per watched call (about a hundred
    /// attachments): where the dispatcher is switched off, runs preemptibly, its registers are
    /// unknown (no x86-64 `pt_regs`) or its programs are refused.
    Tracepoints,
}

/// What the fentry path falls back to where the kernel refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Dispatcher,
    Tracepoints,
}

impl From<Fallback> for SyscallHooks {
    fn from(f: Fallback) -> Self {
        match f {
            Fallback::Dispatcher => Self::Dispatcher,
            Fallback::Tracepoints => Self::Tracepoints,
        }
    }
}

/// Whether system calls reach the programs through fentry/fexit stubs on the syscall functions
/// (no slow path for any system call) where the kernel allows tracing programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyscallFentry {
    /// Where this kernel loads tracing programs, has its own BTF and the x86-64 syscall
    /// functions; else `syscall_dispatcher` decides.
    #[default]
    Auto,
    /// As `Auto`, with a warning when the kernel refuses it.
    On,
    /// Never: `syscall_dispatcher` decides.
    Off,
}

impl SyscallFentry {
    /// As written in the configuration: `"auto"`, `true` or `false`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "true",
            Self::Off => "false",
        }
    }
}

/// Whether system calls reach the programs through the raw `sys_enter`/`sys_exit` dispatcher
/// (two attachments, stop in milliseconds) or one syscall tracepoint pair per watched call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyscallDispatcher {
    /// The dispatcher, except on kernels that run syscall tracepoint programs preemptibly
    /// (there a preempted dispatcher makes the kernel skip every other task's system calls on
    /// that CPU) or whose BTF does not name the x86-64 syscall registers.
    #[default]
    Auto,
    /// The dispatcher wherever the registers are known, even on a preemptible kernel.
    On,
    /// The syscall tracepoints.
    Off,
}

impl SyscallDispatcher {
    /// As written in the configuration: `"auto"`, `true` or `false`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "true",
            Self::Off => "false",
        }
    }
}

/// A kernel function that exists where syscall tracepoints run their BPF programs with
/// preemption enabled (faultable syscall tracepoints, seen on 7.2; 6.18 has no such function).
pub(super) const PREEMPTIBLE_SYSCALL_BPF: &str = "trace_call_bpf_faultable";

impl SyscallHooks {
    /// The dispatcher when `setting` allows it and this kernel's BTF names the registers of the
    /// syscall ABI. `Auto` keeps the tracepoints where syscall tracepoint programs run
    /// preemptibly: a dispatcher preempted on a CPU makes the kernel skip the dispatcher for
    /// every other task's system calls there (counted, loss kind "syscall"), where a
    /// tracepoint program preempted blocks only its own system call.
    /// The fentry path when `fentry` allows it and the kernel may run it (`fentry_possible`:
    /// its own BTF names the x86-64 syscall functions; else why not), else the dispatcher or
    /// the tracepoints as [`SyscallHooks::fallback`] says. Whether the kernel loads tracing
    /// programs is known only once they are verified (`attach`), which falls back then.
    pub(super) fn choose_with_fentry(
        fentry: SyscallFentry,
        setting: SyscallDispatcher,
        o: &sensor_common::KernelOffsets,
        preemptible: bool,
        fentry_possible: Result<(), &str>,
    ) -> Self {
        let fallback = Self::fallback(setting, o, preemptible);
        let possible = if regs_known(o) { fentry_possible } else { Err("the syscall registers are unknown") };
        match (fentry, possible) {
            (SyscallFentry::Off, _) => fallback.into(),
            (SyscallFentry::Auto | SyscallFentry::On, Ok(())) => Self::Fentry { fallback },
            (SyscallFentry::On, Err(reason)) => {
                warn!(reason, "fentry path unavailable (syscall_fentry = true)");
                fallback.into()
            }
            (SyscallFentry::Auto, Err(reason)) => {
                info!(reason, "fentry path unavailable");
                fallback.into()
            }
        }
    }

    /// The dispatcher when `setting` allows it and this kernel's BTF names the registers of the
    /// syscall ABI, else the tracepoints. `Auto` keeps the tracepoints where syscall tracepoint
    /// programs run preemptibly: a dispatcher preempted on a CPU makes the kernel skip the
    /// dispatcher for every other task's system calls there (counted, loss kind "syscall"),
    /// where a tracepoint program preempted blocks only its own system call.
    fn fallback(setting: SyscallDispatcher, o: &sensor_common::KernelOffsets, preemptible: bool) -> Fallback {
        match setting {
            SyscallDispatcher::Off => Fallback::Tracepoints,
            _ if !regs_known(o) => {
                info!(
                    "the kernel's BTF does not name the syscall registers, or not in the x86-64 \
                     layout: using syscall tracepoints"
                );
                Fallback::Tracepoints
            }
            SyscallDispatcher::Auto if preemptible => {
                info!(
                    function = PREEMPTIBLE_SYSCALL_BPF,
                    "this kernel runs syscall tracepoint programs preemptibly: using syscall tracepoints"
                );
                Fallback::Tracepoints
            }
            SyscallDispatcher::On if preemptible => {
                warn!(
                    "raw syscall dispatcher on a kernel that runs it preemptibly (syscall_dispatcher = \
                     true): expect skipped system calls under load, counted as loss kind \"syscall\""
                );
                Fallback::Dispatcher
            }
            SyscallDispatcher::Auto | SyscallDispatcher::On => Fallback::Dispatcher,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fentry { .. } => "fentry",
            Self::Dispatcher => "raw syscall dispatcher",
            Self::Tracepoints => "syscall tracepoints",
        }
    }

    /// The way adopted programs (named) were attached by the run that pinned them.
    pub fn of_programs(programs: &[String]) -> Self {
        if programs.iter().any(|p| names::is_fentry_stub(p)) {
            // Nothing falls back any more: the programs are attached.
            Self::Fentry { fallback: Fallback::Dispatcher }
        } else if programs.iter().any(|p| names::is_dispatcher(p)) {
            Self::Dispatcher
        } else {
            Self::Tracepoints
        }
    }

    /// Whether program `name` of the object belongs to another way (and is not loaded). The
    /// fentry path's stubs are loaded one by one against the calls' functions when attached.
    pub(super) fn excludes(self, name: &str) -> bool {
        let fentry = names::is_fentry_twin(name) || names::is_fentry_stub(name);
        let dispatcher =
            names::is_dispatcher(name) || names::is_raw_twin(name) || sensor_common::ia32::is_ia32_prog(name);
        let tracepoints = names::is_syscall_tracepoint_prog(name);
        match self {
            Self::Fentry { .. } => dispatcher || tracepoints || names::is_fentry_stub(name),
            Self::Dispatcher => fentry || tracepoints,
            Self::Tracepoints => fentry || dispatcher,
        }
    }
}

/// Whether this kernel's BTF names the x86-64 syscall registers where one read of the argument
/// window finds them, and those of 32-bit calls where one read of theirs does (the window
/// checks also refuse an absent register).
fn regs_known(o: &sensor_common::KernelOffsets) -> bool {
    use sensor_common::offsets::{OFFSET_ABSENT, ia32_window_fits, regs_window_fits};
    o.regs_syscall_nr != OFFSET_ABSENT && regs_window_fits(o) && ia32_window_fits(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_is_kept_off_kernels_that_run_it_preemptibly() {
        use zerocopy::FromZeros as _;
        let mut known = sensor_common::KernelOffsets::new_zeroed();
        // x86-64 pt_regs: di si dx r10 r8 r9 orig_ax.
        [
            known.regs_arg0,
            known.regs_arg1,
            known.regs_arg2,
            known.regs_arg3,
            known.regs_arg4,
            known.regs_arg5,
        ] = [112, 104, 96, 56, 72, 64];
        known.regs_syscall_nr = 120;
        // bp bx cx: the other registers of 32-bit calls.
        [known.regs_bp, known.regs_bx, known.regs_cx] = [32, 40, 88];
        let mut unknown = known;
        unknown.regs_syscall_nr = sensor_common::offsets::OFFSET_ABSENT;
        let mut other_layout = known;
        other_layout.regs_arg4 = 80;
        let choose = |d, o: &sensor_common::KernelOffsets, p| {
            SyscallHooks::choose_with_fentry(SyscallFentry::Off, d, o, p, Ok(()))
        };
        assert_eq!(choose(SyscallDispatcher::Auto, &known, false), SyscallHooks::Dispatcher);
        assert_eq!(choose(SyscallDispatcher::Auto, &known, true), SyscallHooks::Tracepoints);
        assert_eq!(choose(SyscallDispatcher::On, &known, true), SyscallHooks::Dispatcher, "forced");
        assert_eq!(choose(SyscallDispatcher::Off, &known, false), SyscallHooks::Tracepoints);
        assert_eq!(choose(SyscallDispatcher::On, &unknown, false), SyscallHooks::Tracepoints, "no registers");
        assert_eq!(
            choose(SyscallDispatcher::On, &other_layout, false),
            SyscallHooks::Tracepoints,
            "registers not where one read of the argument window finds them"
        );
        let fentry = SyscallHooks::choose_with_fentry;
        let on = |fallback| SyscallHooks::Fentry { fallback };
        use SyscallDispatcher as D;
        use SyscallFentry as F;
        assert_eq!(fentry(F::Auto, D::Auto, &known, false, Ok(())), on(Fallback::Dispatcher));
        assert_eq!(fentry(F::On, D::Auto, &known, true, Ok(())), on(Fallback::Tracepoints), "preemptible");
        assert_eq!(fentry(F::Auto, D::Off, &known, false, Ok(())), on(Fallback::Tracepoints));
        assert_eq!(fentry(F::Off, D::Auto, &known, false, Ok(())), SyscallHooks::Dispatcher, "off");
        assert_eq!(
            fentry(F::Auto, D::Auto, &known, false, Err("no")),
            SyscallHooks::Dispatcher,
            "impossible"
        );
        assert_eq!(
            fentry(F::On, D::Auto, &unknown, false, Ok(())),
            SyscallHooks::Tracepoints,
            "no registers"
        );
    }
}
