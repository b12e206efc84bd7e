//! Loading the embedded eBPF object: preflight checks, globals from the kernel's BTF (its own, or
//! a BTF file given for kernels built without it), and program attachment. Maps the sources read
//! from are taken out before anything attaches.

use std::{collections::HashMap, path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{Program, RawTracePoint, TracePoint},
};
use sensor_common::{
    EventKind, LossCounter,
    exec::CaptureConfig,
    file::{FileSyscallSpec, InodeKey},
    names,
    net::NetSyscallSpec,
};
use tracing::{debug, info, warn};

mod runs;
pub use runs::{ProgramRuns, pinned_program_runs, program_runs};

use crate::{
    btf::{BtfSource, KernelBtf},
    file_syscalls,
    links::Links,
    tracefs,
};

/// The eBPF object built by build.rs.
pub(crate) static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Bridge from aya-log (eBPF side) into the `log` facade, which tracing receives.
pub type EbpfLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Load-time settings passed to the programs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// BTF file of this kernel, for kernels without `/sys/kernel/btf/vmlinux`.
    pub btf: Option<PathBuf>,
    pub args_max: u32,
    pub self_tgid: u32,
    pub report_threads: bool,
    pub include_mode: bool,
    pub proc_ring_bytes: Option<u32>,
    pub file_ring_bytes: Option<u32>,
}

/// A loaded (not yet attached) object and the maps the sources need.
pub struct Loaded {
    pub ebpf: Ebpf,
    /// Where the kernel struct offsets came from.
    pub btf_source: BtfSource,
    /// Kernel ids of every map of the object (the taken ones included), for `OWN_IDS`.
    pub map_ids: Vec<u32>,
    pub maps: Maps,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").finish_non_exhaustive()
    }
}

/// The maps the sources take, from a fresh load or from the pins of an earlier run.
pub struct Maps {
    pub proc_events: RingBuf<MapData>,
    pub file_events: RingBuf<MapData>,
    pub net_events: RingBuf<MapData>,
    /// (dev, ino) → INODE_* bits; maintained by `filter::InodeFilter`.
    pub inode_filter: aya::maps::HashMap<MapData, InodeKey, u32>,
    pub loss: PerCpuArray<MapData, LossCounter>,
    /// What this run hands to the next one that adopts its pins (see `crate::handover`).
    pub handover: crate::handover::Handover,
    /// The programs' log bridge (a fresh load only).
    pub logger: Option<EbpfLogger>,
    /// The programs were adopted: stale inode filter entries of the last run must go.
    pub adopted: bool,
}

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps").field("adopted", &self.adopted).finish_non_exhaustive()
    }
}

/// Capabilities the sensor needs, with their bit numbers in `CapEff`.
const NEEDED_CAPS: [(u32, &str); 3] = [(39, "CAP_BPF"), (38, "CAP_PERFMON"), (21, "CAP_SYS_ADMIN")];

/// Fails with a clear message when the process cannot load eBPF programs.
pub fn preflight() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> =
        NEEDED_CAPS.iter().filter(|(bit, _)| eff & (1 << bit) == 0).map(|(_, n)| *n).collect();
    if !missing.is_empty() {
        bail!(
            "the sensor must run as root or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; missing: {}",
            missing.join(", ")
        );
    }
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use memcg.
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK (harmless on 5.11+)");
    }
    Ok(())
}

/// Loads the object with offsets resolved from the kernel's BTF.
pub fn load(cfg: LoadConfig) -> anyhow::Result<Loaded> {
    load_with(cfg, |_| Ok(()))
}

/// [`load`], handing the loaded object to `before_take` before the maps the sources need are
/// taken out of it (`crate::kernel` pins them there, so that another sensor can adopt them).
pub fn load_with(cfg: LoadConfig, before_take: impl FnOnce(&Ebpf) -> Result<()>) -> Result<Loaded> {
    let started = Instant::now();
    let given = cfg.btf;
    let (kbtf, btf_source) = KernelBtf::locate(given.as_deref())?;
    let offsets = kbtf
        .kernel_offsets()
        .with_context(|| format!("resolving kernel struct offsets from {btf_source}"))?;
    drop(kbtf);
    if let BtfSource::File(path) = &btf_source {
        warn_on_release_mismatch(path);
    }
    info!(btf = %btf_source, "kernel struct offsets resolved");
    debug!(?offsets, "kernel offsets from BTF");
    if let Err(e) = tracefs::ensure_mounted() {
        warn!(error = %format!("{e:#}"), "tracefs unavailable: syscall collectors will be off");
    }
    let capture = CaptureConfig {
        args_max: cfg.args_max,
        _reserved: 0,
        report_threads: u32::from(cfg.report_threads),
        include_mode: u32::from(cfg.include_mode),
    };
    let module_name_loc = tracefs::field_offsets("module", "module_load")
        .ok()
        .and_then(|f| f.get("name").copied())
        .unwrap_or(u32::MAX);
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let mut loader = EbpfLoader::new();
    // No kernel BTF for aya: the programs carry no CO-RE relocations (offsets come in as the
    // global above) and the lifecycle programs are raw tracepoints, so the kernel's BTF is not
    // needed, and not parsing it again saves start-up time.
    loader
        .btf(None)
        .override_global(names::GLOBAL_OFFSETS, &offsets, true)
        .override_global(names::GLOBAL_CAPTURE, &capture, true)
        .override_global(names::GLOBAL_MODULE_NAME_LOC, &module_name_loc, true)
        .map_max_entries(names::MAP_EXEC_SCRATCH, u32::try_from(cpus).unwrap_or(u32::MAX))
        .map_max_entries("FILE_SCRATCH", u32::try_from(cpus).unwrap_or(u32::MAX));
    if let Some(bytes) = cfg.proc_ring_bytes {
        loader.map_max_entries(names::MAP_PROC_EVENTS, bytes);
    }
    if let Some(bytes) = cfg.file_ring_bytes {
        loader.map_max_entries(names::MAP_FILE_EVENTS, bytes);
    }
    let mut ebpf = loader.load(EBPF_OBJECT).context("loading the eBPF object")?;
    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %e, "eBPF log bridge unavailable");
            None
        }
    };
    let map_ids = crate::guard::map_ids(&ebpf);
    crate::guard::claim(&mut ebpf, cfg.self_tgid)?;
    before_take(&ebpf)?;
    let handover = match take(&mut ebpf, names::MAP_HANDOVER)? {
        aya::maps::Map::Array(m) => {
            crate::handover::Handover::map(m.fd()).context("mapping the HANDOVER array")?
        }
        _ => anyhow::bail!("map {} has an unexpected type", names::MAP_HANDOVER),
    };
    let proc_events = RingBuf::try_from(take(&mut ebpf, names::MAP_PROC_EVENTS)?)?;
    let file_events = RingBuf::try_from(take(&mut ebpf, names::MAP_FILE_EVENTS)?)?;
    let net_events = RingBuf::try_from(take(&mut ebpf, names::MAP_NET_EVENTS)?)?;
    let inode_filter = aya::maps::HashMap::try_from(take(&mut ebpf, names::MAP_INODE_FILTER)?)?;
    // Borrowed, not taken: the programs are verified later and need the map to stay open.
    let mut specs: aya::maps::HashMap<_, u32, FileSyscallSpec> = aya::maps::HashMap::try_from(
        ebpf.map_mut(names::MAP_FILE_SYSCALLS).context("map FILE_SYSCALLS missing")?,
    )?;
    for (nr, _, spec) in file_syscalls::for_this_arch() {
        specs.insert(nr, spec, 0).context("filling the file syscall table")?;
    }
    let mut net_specs: aya::maps::HashMap<_, u32, NetSyscallSpec> = aya::maps::HashMap::try_from(
        ebpf.map_mut(names::MAP_NET_SYSCALLS).context("map NET_SYSCALLS missing")?,
    )?;
    for (nr, _, spec) in file_syscalls::net_for_this_arch() {
        net_specs.insert(nr, spec, 0).context("filling the network syscall table")?;
    }
    let loss = PerCpuArray::try_from(take(&mut ebpf, names::MAP_LOSS)?)?;
    debug!(elapsed_ms = started.elapsed().as_millis(), "eBPF object loaded");
    let maps =
        Maps { proc_events, file_events, net_events, inode_filter, loss, handover, logger, adopted: false };
    Ok(Loaded { ebpf, btf_source, map_ids, maps })
}

/// BTFHub names its files after the kernel release (`5.10.0-46-cloud-amd64.btf`): a file named
/// after another release is most likely the wrong kernel's, whose offsets would read garbage.
fn warn_on_release_mismatch(path: &std::path::Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return };
    let stem = name.split(".btf").next().unwrap_or(name);
    let looks_like_release = stem.starts_with(|c: char| c.is_ascii_digit()) && stem.contains('.');
    let Ok(uts) = nix::sys::utsname::uname() else { return };
    let release = uts.release().to_string_lossy();
    if looks_like_release && stem != release {
        warn!(
            btf = %path.display(),
            kernel = %release,
            "the BTF file is named after another kernel release: offsets may not match this kernel"
        );
    }
}

fn take(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name).with_context(|| format!("map {name} missing from the eBPF object"))
}

/// Attaches one optional collector.
type Collector = fn(&mut Ebpf, &Refused, &mut Links) -> anyhow::Result<()>;

/// Programs the verifier refused, with its reason.
type Refused = HashMap<String, String>;

/// What is attached, for the startup log and tests.
#[derive(Debug, Default, Clone)]
pub struct Attached {
    pub collectors: Vec<&'static str>,
    /// Programs adopted from the pins of an earlier run (nothing was attached by this run).
    pub adopted: Vec<String>,
    /// Collectors that could not start on this kernel, with the reason.
    pub disabled: Vec<(&'static str, String)>,
}

/// How a kind's programs are attached after the process lifecycle.
enum Attach {
    /// Exec, fork and exit: required, attached first (see [`LIFECYCLE`]).
    Lifecycle,
    /// Reported by another kind's programs (`bpf_access` by `bpf_load`'s), attached with them.
    Shared,
    /// A collector of its own, named by the kind, switched off with a warning when this kernel
    /// cannot run it. `syscalls`: it attaches to `syscalls/*` tracepoints, whose record layout
    /// is checked first.
    Collector { attach: Collector, syscalls: bool },
}

/// The collector of each kind.
fn attach_of(kind: EventKind) -> Attach {
    let collector = |attach: Collector| Attach::Collector { attach, syscalls: true };
    match kind {
        EventKind::Exec | EventKind::Fork | EventKind::Exit => Attach::Lifecycle,
        EventKind::Cred => collector(attach_cred),
        EventKind::Ptrace => collector(attach_ptrace),
        EventKind::ModuleLoad => Attach::Collector {
            attach: |e, r, l| attach_tp(e, r, l, names::PROG_MODULE_LOAD, "module", "module_load"),
            syscalls: false,
        },
        EventKind::BpfLoad => collector(|e, r, l| {
            attach_syscall_pair(e, r, l, names::PROG_SYS_ENTER_BPF, names::PROG_SYS_EXIT_BPF, "bpf")
        }),
        EventKind::BpfAccess => Attach::Shared,
        EventKind::MemfdCreate => collector(|e, r, l| {
            attach_syscall_pair(
                e,
                r,
                l,
                names::PROG_SYS_ENTER_MEMFD,
                names::PROG_SYS_EXIT_MEMFD,
                "memfd_create",
            )
        }),
        EventKind::Signal => Attach::Collector { attach: attach_signal, syscalls: false },
        EventKind::File => collector(attach_file),
        EventKind::Net => collector(attach_net),
    }
}

/// Loads into the kernel and attaches every program. Call after the readers have started.
/// Process lifecycle (exec, fork, exit) is required; the other collectors are switched off with
/// a warning when this kernel cannot run them.
/// The links are returned owned, not left to their programs: stopping releases them at once.
pub fn attach(ebpf: &mut Ebpf) -> anyhow::Result<(Attached, Links)> {
    let started = Instant::now();
    let mut out = Attached::default();
    let mut links = Links::default();
    let refused = verify(ebpf)?;
    for (prog, tp) in LIFECYCLE {
        let p: &mut RawTracePoint =
            ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
        let id = p.attach(tp).with_context(|| format!("attaching {prog} to raw tracepoint {tp}"))?;
        links.push(p.take_link(id)?);
        // One line per attachment: the bench attaches its floor to exactly these.
        debug!(prog, raw_tracepoint = tp, "attached");
        out.collectors.push(prog);
    }
    let layout_ok = tracefs::check_syscall_layout();
    for kind in EventKind::ALL {
        let Attach::Collector { attach, syscalls } = attach_of(kind) else { continue };
        let name = kind.name();
        let res = match &layout_ok {
            Err(e) if syscalls => Err(anyhow::anyhow!("{e:#}")),
            _ => attach(ebpf, &refused, &mut links),
        };
        match res {
            Ok(()) => out.collectors.push(name),
            Err(e) => {
                warn!(collector = name, error = %format!("{e:#}"), "collector disabled on this kernel");
                out.disabled.push((name, format!("{e:#}")));
            }
        }
    }
    info!(
        elapsed_ms = started.elapsed().as_millis(),
        collectors = ?out.collectors,
        disabled = out.disabled.len(),
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

/// Verifies (loads) every program: verification is most of start-up (on 6.18: sys_exit_net
/// ~200 ms, sched_process_exec ~150 ms, sys_exit_file ~100 ms), so the tracepoint programs are
/// verified on threads of their own while the lifecycle programs are verified here. A refused
/// lifecycle program is an error; refused optional ones are returned with the reason.
fn verify(ebpf: &mut Ebpf) -> anyhow::Result<Refused> {
    std::thread::scope(|s| {
        let mut lifecycle = Vec::new();
        let mut others = Vec::new();
        for (name, prog) in ebpf.programs_mut() {
            match prog {
                Program::RawTracePoint(p) => {
                    if LIFECYCLE.iter().any(|(n, _)| *n == name) {
                        lifecycle.push((name, p));
                    } else {
                        others.push((name, s.spawn(move || p.load())));
                    }
                }
                Program::TracePoint(p) => {
                    let started = Instant::now();
                    let job = s.spawn(move || {
                        let res = p.load();
                        let insns = p.info().ok().and_then(|i| i.verified_instruction_count());
                        debug!(prog = name, elapsed_ms = started.elapsed().as_millis(), ?insns, "verified");
                        res
                    });
                    others.push((name, job));
                }
                _ => {}
            }
        }
        for (prog, _) in LIFECYCLE {
            let started = Instant::now();
            let (_, p) = lifecycle
                .iter_mut()
                .find(|(n, _)| *n == prog)
                .with_context(|| format!("program {prog} missing"))?;
            p.load().with_context(|| format!("verifying {prog}"))?;
            let insns = p.info().ok().and_then(|i| i.verified_instruction_count());
            debug!(prog, elapsed_ms = started.elapsed().as_millis(), ?insns, "verified");
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

fn tracepoint<'a>(ebpf: &'a mut Ebpf, refused: &Refused, prog: &str) -> anyhow::Result<&'a mut TracePoint> {
    if let Some(why) = refused.get(prog) {
        anyhow::bail!("{why}");
    }
    let p: &mut TracePoint =
        ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
    Ok(p)
}

fn attach_tp(
    ebpf: &mut Ebpf,
    refused: &Refused,
    links: &mut Links,
    prog: &str,
    category: &str,
    name: &str,
) -> anyhow::Result<()> {
    let p = tracepoint(ebpf, refused, prog)?;
    let id = p.attach(category, name).with_context(|| format!("attaching {prog} to {category}/{name}"))?;
    links.push(p.take_link(id)?);
    debug!(prog, tracepoint = %format_args!("{category}/{name}"), "attached");
    Ok(())
}

fn attach_syscall_pair(
    ebpf: &mut Ebpf,
    refused: &Refused,
    links: &mut Links,
    enter: &str,
    exit: &str,
    syscall: &str,
) -> anyhow::Result<()> {
    attach_tp(ebpf, refused, links, enter, "syscalls", &format!("sys_enter_{syscall}"))?;
    attach_tp(ebpf, refused, links, exit, "syscalls", &format!("sys_exit_{syscall}"))
}

/// The file programs on every watched file syscall this kernel has.
fn attach_file(ebpf: &mut Ebpf, refused: &Refused, links: &mut Links) -> anyhow::Result<()> {
    let mut attached = 0;
    let mut first_error = None;
    for (_, name, _) in file_syscalls::for_this_arch() {
        match attach_syscall_pair(
            ebpf,
            refused,
            links,
            names::PROG_SYS_ENTER_FILE,
            names::PROG_SYS_EXIT_FILE,
            name,
        ) {
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
        return Err(e.context("no file syscall tracepoint could be attached"));
    }
    Ok(())
}

/// The network programs on every watched network syscall.
fn attach_net(ebpf: &mut Ebpf, refused: &Refused, links: &mut Links) -> anyhow::Result<()> {
    for (_, name, _) in file_syscalls::net_for_this_arch() {
        attach_syscall_pair(ebpf, refused, links, names::PROG_SYS_ENTER_NET, names::PROG_SYS_EXIT_NET, name)?;
    }
    Ok(())
}

/// `ptrace`, and the other ways into another process: `process_vm_writev`, `process_vm_readv`
/// (the program keeps only reads of the sensor) and `pidfd_getfd`; all exits share one program.
fn attach_ptrace(ebpf: &mut Ebpf, refused: &Refused, links: &mut Links) -> anyhow::Result<()> {
    attach_syscall_pair(
        ebpf,
        refused,
        links,
        names::PROG_SYS_ENTER_PTRACE,
        names::PROG_SYS_EXIT_PTRACE,
        "ptrace",
    )?;
    for (enter, syscall) in [
        (names::PROG_SYS_ENTER_PROCESS_VM_WRITEV, "process_vm_writev"),
        (names::PROG_SYS_ENTER_PROCESS_VM_READV, "process_vm_readv"),
        (names::PROG_SYS_ENTER_PIDFD_GETFD, "pidfd_getfd"),
    ] {
        // pidfd_getfd is 5.6+: its absence leaves ptrace and process_vm_* watched.
        if let Err(e) = attach_syscall_pair(ebpf, refused, links, enter, names::PROG_SYS_EXIT_PTRACE, syscall)
        {
            warn!(syscall, error = %format!("{e:#}"), "process access system call not watched");
        }
    }
    Ok(())
}

/// Signals generated for the sensor (raw tracepoint: it sees the sender before delivery).
fn attach_signal(ebpf: &mut Ebpf, refused: &Refused, links: &mut Links) -> anyhow::Result<()> {
    let prog = names::PROG_SIGNAL_GENERATE;
    if let Some(why) = refused.get(prog) {
        anyhow::bail!("{why}");
    }
    let p: &mut RawTracePoint =
        ebpf.program_mut(prog).with_context(|| format!("program {prog} missing"))?.try_into()?;
    let id = p.attach("signal_generate").context("attaching to raw tracepoint signal_generate")?;
    links.push(p.take_link(id)?);
    Ok(())
}

fn attach_cred(ebpf: &mut Ebpf, refused: &Refused, links: &mut Links) -> anyhow::Result<()> {
    for syscall in names::CRED_SYSCALLS {
        attach_syscall_pair(
            ebpf,
            refused,
            links,
            names::PROG_SYS_ENTER_CRED,
            names::PROG_SYS_EXIT_CRED,
            syscall,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No program calls a subprogram. Such calls have been LLVM's byte-wise `memset`/`memmove`
    /// loops (zeroed or copied aggregates of 16 bytes or more), which the 5.10 and 6.1 verifiers
    /// walk byte by byte on every path: that put sys_exit_net over their 1M-instruction budget.
    #[test]
    fn no_program_calls_a_subprogram() {
        const BPF_CALL_INSN: u8 = 0x85; // BPF_JMP | BPF_CALL
        const BPF_PSEUDO_CALL: u8 = 1;
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("parse the embedded eBPF object");
        for (name, prog) in &obj.programs {
            let f = &obj.functions[&(prog.section_index, prog.address)];
            let calls = f
                .instructions
                .iter()
                .filter(|i| i.code == BPF_CALL_INSN && i.src_reg() == BPF_PSEUDO_CALL)
                .count();
            assert_eq!(
                calls, 0,
                "program {name} calls {calls} subprogram(s): a mem* loop? see llvm-objdump -dr"
            );
        }
    }

    /// The names both sides use (sensor-common's consts) exist in the embedded object.
    #[test]
    fn object_has_every_named_map_and_program() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("parse the embedded eBPF object");
        for map in [
            names::MAP_PROC_EVENTS,
            names::MAP_LOSS,
            names::MAP_EXEC_SCRATCH,
            names::MAP_PENDING,
            names::MAP_FILE_EVENTS,
            names::MAP_FILE_SYSCALLS,
            names::MAP_INODE_FILTER,
            names::MAP_CONTROL,
            names::MAP_OWN_IDS,
            names::MAP_HANDOVER,
        ] {
            assert!(obj.maps.contains_key(map), "map {map} missing; object has {:?}", obj.maps.keys());
        }
        for &prog in EventKind::ALL.into_iter().flat_map(names::programs) {
            assert!(
                obj.programs.contains_key(prog),
                "program {prog} missing; object has {:?}",
                obj.programs.keys()
            );
        }
    }
}
