//! Names of maps, programs and globals, used by both the eBPF object and the loader.

use crate::EventKind;

/// Ring buffer carrying process lifecycle and privilege events. Kept apart from high-volume
/// file/network events so that those can never crowd lineage out.
pub const MAP_PROC_EVENTS: &str = "PROC_EVENTS";
/// Per-CPU array of [`crate::LossCounter`], indexed by event kind.
pub const MAP_LOSS: &str = "LOSS";
/// Array (one slot per CPU) where exec events are assembled.
pub const MAP_EXEC_SCRATCH: &str = "EXEC_SCRATCH";
/// Per-thread state between `sys_enter_*` and `sys_exit_*` (LRU hash).
pub const MAP_PENDING: &str = "PENDING";

/// Programs and the tracepoints they attach to.
pub const PROG_SCHED_PROCESS_EXEC: &str = "sched_process_exec";
pub const PROG_SCHED_PROCESS_FORK: &str = "sched_process_fork";
pub const PROG_SCHED_PROCESS_EXIT: &str = "sched_process_exit";
/// Classic tracepoint programs on `syscalls/sys_enter_*` and `sys_exit_*`.
pub const PROG_SYS_ENTER_CRED: &str = "sys_enter_cred";
pub const PROG_SYS_EXIT_CRED: &str = "sys_exit_cred";
pub const PROG_SYS_ENTER_PTRACE: &str = "sys_enter_ptrace";
pub const PROG_SYS_EXIT_PTRACE: &str = "sys_exit_ptrace";
pub const PROG_SYS_ENTER_BPF: &str = "sys_enter_bpf";
pub const PROG_SYS_EXIT_BPF: &str = "sys_exit_bpf";
/// Programs on `sys_enter_process_vm_writev`, `sys_enter_process_vm_readv` and
/// `sys_enter_pidfd_getfd`; their exits go to [`PROG_SYS_EXIT_PTRACE`].
pub const PROG_SYS_ENTER_PROCESS_VM_WRITEV: &str = "sys_enter_process_vm_writev";
pub const PROG_SYS_ENTER_PROCESS_VM_READV: &str = "sys_enter_process_vm_readv";
pub const PROG_SYS_ENTER_PIDFD_GETFD: &str = "sys_enter_pidfd_getfd";
/// Raw tracepoint `signal_generate`: signals aimed at the sensor.
pub const PROG_SIGNAL_GENERATE: &str = "signal_generate";
/// Classic tracepoint `module/module_load`.
pub const PROG_MODULE_LOAD: &str = "module_load";

/// The programs of an event kind. Each kind implements it on its marker type
/// ([`crate::kind`]) next to its event struct; [`programs`] and [`raw_twins`] are generated from
/// the kind table.
pub trait KindPrograms {
    /// The programs whose runs report the kind: the loader counts their recursion misses as
    /// losses of that kind, and the object test checks that each is in the embedded object.
    const PROGRAMS: &'static [&'static str];
    /// Each of its syscall tracepoint programs and its raw twin: the same body, reached
    /// through the dispatcher instead of `syscalls/sys_*_X`. One of the two sets is loaded.
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)];
}

macro_rules! kind_programs {
    ([] $($(#[$doc:meta])* $kind:ident = $num:literal => $name:literal,)+) => {
        /// The programs whose runs report `kind` ([`KindPrograms::PROGRAMS`]).
        pub const fn programs(kind: EventKind) -> &'static [&'static str] {
            match kind {
                $(EventKind::$kind => <crate::kind::$kind as KindPrograms>::PROGRAMS,)+
            }
        }

        /// The raw twins of `kind`'s syscall tracepoint programs ([`KindPrograms::RAW_TWINS`]).
        pub const fn raw_twins_of(kind: EventKind) -> &'static [(&'static str, &'static str, &'static str)] {
            match kind {
                $(EventKind::$kind => <crate::kind::$kind as KindPrograms>::RAW_TWINS,)+
            }
        }
    };
}
crate::for_each_event_kind!(kind_programs);

/// Every syscall tracepoint program with its raw and fentry twins, of every kind.
pub fn raw_twins() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    EventKind::ALL.into_iter().flat_map(raw_twins_of)
}

/// Raw tracepoint programs on `sys_enter` and `sys_exit` that tail-call, by system call number,
/// the raw twin of the watched call's program (see [`raw_twins`]); the loader fills the tables.
pub const PROG_SYS_ENTER_DISPATCH: &str = "sys_enter_dispatch";
pub const PROG_SYS_EXIT_DISPATCH: &str = "sys_exit_dispatch";

/// Whether `name` is one of the two dispatcher programs.
pub fn is_dispatcher(name: &str) -> bool {
    name == PROG_SYS_ENTER_DISPATCH || name == PROG_SYS_EXIT_DISPATCH
}

/// Program arrays of the dispatchers: syscall number → program.
pub const MAP_SYS_ENTER_PROGS: &str = "SYS_ENTER_PROGS";
pub const MAP_SYS_EXIT_PROGS: &str = "SYS_EXIT_PROGS";

/// Syscall tracepoint programs with no raw twin: needed only on the syscall tracepoints. The file
/// enter program only saves the arguments for the exit, which, reached through the dispatcher,
/// reads them from the registers the call left (x86-64 keeps them until the return). A file
/// call costs one program run instead of two, and no map insert and delete.
pub const TRACEPOINT_ONLY: [&str; 1] = [PROG_SYS_ENTER_FILE];

/// Whether `name` is a program of the syscall tracepoints (one with a raw twin, or one needed
/// only there): loaded when the dispatcher is not.
pub fn is_syscall_tracepoint_prog(name: &str) -> bool {
    raw_twin(name).is_some() || TRACEPOINT_ONLY.contains(&name)
}

/// The raw twin of syscall tracepoint program `tp`.
pub fn raw_twin(tp: &str) -> Option<&'static str> {
    raw_twins().find(|(t, _, _)| *t == tp).map(|(_, r, _)| *r)
}

/// The syscall tracepoint program whose raw or fentry twin is `twin`.
pub fn tracepoint_twin(twin: &str) -> Option<&'static str> {
    let base = fentry_base(twin);
    raw_twins().find(|(_, r, f)| *r == twin || Some(*f) == base).map(|(t, _, _)| *t)
}

/// The fentry twins' base name of syscall tracepoint program `tp`: its body as an `fentry`
/// (enter) or `fexit` (exit) program, tail-called by the stubs on the `__x64_sys_X` functions.
/// The object has one copy per prototype group, `{base}_{group}` ([`FENTRY_GROUPS`]).
pub fn fentry_twin(tp: &str) -> Option<&'static str> {
    raw_twins().find(|(t, _, _)| *t == tp).map(|(_, _, f)| *f)
}

/// The base of fentry twin `name` (`{base}_{group}`), if it is one.
fn fentry_base(name: &str) -> Option<&'static str> {
    let (base, group) = name.rsplit_once('_')?;
    let group: u32 = group.parse().ok()?;
    if group >= FENTRY_GROUPS {
        return None;
    }
    raw_twins().find(|(_, _, f)| *f == base).map(|(_, _, f)| *f)
}

/// Whether `name` is an fentry twin ([`fentry_twin`]) of some group.
pub fn is_fentry_twin(name: &str) -> bool {
    fentry_base(name).is_some()
}

/// Whether `name` is a raw twin ([`raw_twin`]).
pub fn is_raw_twin(name: &str) -> bool {
    raw_twins().any(|(_, r, _)| *r == name)
}

/// Prototype groups of the fentry path. A tail call between tracing programs needs both
/// loaded against functions of one BTF prototype (Linux 6.12, backported), and the kernels'
/// BTF gives the `__x64_sys_X` functions two: `(const struct pt_regs *regs)` and, for those
/// whose prototype came from the weak `sys_ni.c` stubs, `(const struct pt_regs *__unused)`.
/// Each group has its own twins, stubs and program arrays.
pub const FENTRY_GROUPS: u32 = 2;

/// The fentry path's stubs: `fentry_stub_{group}_{n}` and `fexit_stub_{group}_{n}` (n <
/// [`FENTRY_STUBS`]), each loaded against one watched call's `__x64_sys_X` function and
/// attached there; they tail-call the call's fentry twin of their group by system call number
/// ([`MAP_FENTRY_PROGS`], [`MAP_FEXIT_PROGS`]). A tracing program is bound to one kernel
/// function when it is loaded, so every watched call needs stubs of its own.
pub const FENTRY_STUB_PREFIX: &str = "fentry_stub_";
pub const FEXIT_STUB_PREFIX: &str = "fexit_stub_";
pub const FENTRY_STUBS: u32 = 64;

/// Whether `name` is a stub of the fentry path.
pub fn is_fentry_stub(name: &str) -> bool {
    name.starts_with(FENTRY_STUB_PREFIX) || name.starts_with(FEXIT_STUB_PREFIX)
}

/// Program arrays of the fentry path's stubs, one per group: syscall number → fentry (exit:
/// fexit) twin of that group.
pub const MAP_FENTRY_PROGS: [&str; FENTRY_GROUPS as usize] = ["FENTRY_PROGS_0", "FENTRY_PROGS_1"];
pub const MAP_FEXIT_PROGS: [&str; FENTRY_GROUPS as usize] = ["FEXIT_PROGS_0", "FEXIT_PROGS_1"];

/// Credential-changing system calls watched (each as `sys_enter_X`/`sys_exit_X`).
pub const CRED_SYSCALLS: [&str; 9] =
    ["setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "capset"];

/// Ring buffer of file events (high volume: kept apart so it cannot crowd out lineage).
pub const MAP_FILE_EVENTS: &str = "FILE_EVENTS";
/// syscall number → [`crate::file::FileSyscallSpec`].
pub const MAP_FILE_SYSCALLS: &str = "FILE_SYSCALLS";
/// (dev, ino) → `INODE_*` bits: sensitive files/directories, excluded directories.
pub const MAP_INODE_FILTER: &str = "INODE_FILTER";
/// The inode filter's Bloom bitmap (`file::INODE_BLOOM_WORDS`).
pub const MAP_INODE_BLOOM: &str = "INODE_BLOOM";
/// Programs on `syscalls/sys_enter_*` / `sys_exit_*` of every watched file syscall.
pub const PROG_SYS_ENTER_FILE: &str = "sys_enter_file";
pub const PROG_SYS_EXIT_FILE: &str = "sys_exit_file";

/// Ring buffer of network events.
pub const MAP_NET_EVENTS: &str = "NET_EVENTS";
/// syscall number → [`crate::net::NetSyscallSpec`].
pub const MAP_NET_SYSCALLS: &str = "NET_SYSCALLS";
/// Programs on `syscalls/sys_enter_*` / `sys_exit_*` of the watched network syscalls.
pub const PROG_SYS_ENTER_NET: &str = "sys_enter_net";
pub const PROG_SYS_EXIT_NET: &str = "sys_exit_net";

/// Global with the kernel struct offsets resolved from the running kernel's BTF.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Global with the capture settings and the sensor's own pid.
pub const GLOBAL_CAPTURE: &str = "CAPTURE";
/// Global with the offset of `__data_loc char[] name` in the `module_load` tracepoint record.
pub const GLOBAL_MODULE_NAME_LOC: &str = "MODULE_NAME_LOC";

/// Array of one [`crate::tamper::Control`]: who the sensor is (written by userspace).
pub const MAP_CONTROL: &str = "CONTROL";
/// `(kind << 32) | id` of every program, map and link the sensor loaded (frozen after attach).
pub const MAP_OWN_IDS: &str = "OWN_IDS";
/// Array of u64 (mmapable) written by userspace only: what a run hands to the next one that
/// adopts its pinned programs: the loss counts already reported, and the events read from the
/// rings but not yet written (see `sensor::handover`).
pub const MAP_HANDOVER: &str = "HANDOVER";
