//! Names of maps, programs and globals, used by both the eBPF object and the loader.

/// Ring buffer carrying process lifecycle events (exec, later fork/exit).
pub const MAP_PROC_EVENTS: &str = "PROC_EVENTS";
/// Per-CPU array of [`crate::LossCounter`], indexed by event kind.
pub const MAP_LOSS: &str = "LOSS";
/// Per-CPU scratch space used to build variable-length events.
pub const MAP_EXEC_SCRATCH: &str = "EXEC_SCRATCH";

/// `tp_btf/sched_process_exec` program.
pub const PROG_SCHED_PROCESS_EXEC: &str = "sched_process_exec";
/// Tracepoint name the exec program attaches to.
pub const TP_SCHED_PROCESS_EXEC: &str = "sched_process_exec";

/// Global with the kernel struct offsets resolved from the running kernel's BTF.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Global with the exec capture limits and the sensor's own pid.
pub const GLOBAL_EXEC_CONFIG: &str = "EXEC_CONFIG";
