//! Loading the embedded eBPF object: preflight checks, globals from the kernel's BTF (its own, or
//! a BTF file given for kernels built without it), and program attachment. Maps the sources read
//! from are taken out before anything attaches.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
};
use sensor_common::{LossCounter, exec::CaptureConfig, file::FileSyscallSpec, names, net::NetSyscallSpec};
use tracing::{debug, info, warn};

mod fentry;
mod hooks;
pub mod rings;
mod runs;
pub use fentry::FentryTargets;
use hooks::PREEMPTIBLE_SYSCALL_BPF;
pub use hooks::{Fallback, SyscallDispatcher, SyscallFentry, SyscallHooks};
pub use runs::{ProgramRuns, Runs, pinned_program_runs, program_runs};

use crate::{
    btf::{BtfSource, KernelBtf},
    file_syscalls,
    flow::Ring,
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
    /// The raw syscall dispatcher or the syscall tracepoints (see [`SyscallHooks::choose_with_fentry`]).
    pub syscall_dispatcher: SyscallDispatcher,
    /// The fentry path where the kernel allows it (see [`SyscallHooks::choose_with_fentry`]).
    pub syscall_fentry: SyscallFentry,
    pub include_mode: bool,
    /// Ring buffer sizes in bytes; `None`: scaled to the online CPUs ([`rings::default_bytes`]).
    pub proc_ring_bytes: Option<u32>,
    pub file_ring_bytes: Option<u32>,
    pub net_ring_bytes: Option<u32>,
}

impl LoadConfig {
    /// Each ring's kind, map name and size in bytes: as configured, else scaled to the online
    /// CPUs (read once per call).
    pub fn rings(&self) -> [(Ring, &'static str, u32); 3] {
        let cpus = rings::online_cpus();
        let size = |ring, set: Option<u32>| set.unwrap_or_else(|| rings::default_bytes(ring, cpus));
        [
            (Ring::Proc, names::MAP_PROC_EVENTS, size(Ring::Proc, self.proc_ring_bytes)),
            (Ring::File, names::MAP_FILE_EVENTS, size(Ring::File, self.file_ring_bytes)),
            (Ring::Net, names::MAP_NET_EVENTS, size(Ring::Net, self.net_ring_bytes)),
        ]
    }
}

/// A loaded (not yet attached) object and the maps the sources need.
pub struct Loaded {
    pub ebpf: Ebpf,
    /// Where the kernel struct offsets came from.
    pub btf_source: BtfSource,
    /// Kernel ids of every map of the object (the taken ones included), for `OWN_IDS`.
    pub map_ids: Vec<u32>,
    pub maps: Maps,
    /// How system calls reach the programs on this kernel.
    pub hooks: SyscallHooks,
    /// The fentry path's syscall functions (with [`SyscallHooks::Fentry`]).
    pub fentry: Option<FentryTargets>,
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
    /// Maintained by `filter::InodeFilter`.
    pub inode_filter: crate::filter::FilterMaps,
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
    let rings = cfg.rings();
    let given = cfg.btf;
    let (kbtf, btf_source) = KernelBtf::locate(given.as_deref())?;
    let offsets = kbtf
        .kernel_offsets()
        .with_context(|| format!("resolving kernel struct offsets from {btf_source}"))?;
    // Only a setting that may choose the dispatcher needs to know (a BTF walk of its own).
    let preemptible =
        cfg.syscall_dispatcher != SyscallDispatcher::Off && kbtf.has_function(PREEMPTIBLE_SYSCALL_BPF);
    let fentry_targets = match &btf_source {
        _ if cfg.syscall_fentry == SyscallFentry::Off => Err("switched off".to_owned()),
        BtfSource::File(_) => {
            Err("a BTF file was given: tracing programs attach by the kernel's own BTF".to_owned())
        }
        BtfSource::Kernel => {
            let started = Instant::now();
            let t = match fentry::tracing_refused() {
                Some(why) => Err(why),
                None => FentryTargets::of_kernel(&kbtf),
            };
            debug!(elapsed_ms = started.elapsed().as_millis(), ok = t.is_ok(), "syscall functions sorted");
            t
        }
    };
    drop(kbtf);
    if let BtfSource::File(path) = &btf_source {
        warn_on_release_mismatch(path);
    }
    info!(btf = %btf_source, "kernel struct offsets resolved");
    debug!(?offsets, "kernel offsets from BTF");
    let hooks = SyscallHooks::choose_with_fentry(
        cfg.syscall_fentry,
        cfg.syscall_dispatcher,
        &offsets,
        preemptible,
        fentry_targets.as_ref().map(|_| ()).map_err(String::as_str),
    );
    let fentry = fentry_targets.ok().filter(|_| matches!(hooks, SyscallHooks::Fentry { .. }));
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
    for (ring, map, bytes) in rings {
        info!(ring = ring.name(), bytes, "ring buffer size");
        loader.map_max_entries(map, bytes);
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
    let inode_filter = crate::filter::FilterMaps {
        entries: aya::maps::HashMap::try_from(take(&mut ebpf, names::MAP_INODE_FILTER)?)?,
        bloom: aya::maps::Array::try_from(take(&mut ebpf, names::MAP_INODE_BLOOM)?)?,
    };
    // Borrowed, not taken: the programs are verified later and need the map to stay open.
    let mut specs: aya::maps::Array<_, FileSyscallSpec> = aya::maps::Array::try_from(
        ebpf.map_mut(names::MAP_FILE_SYSCALLS).context("map FILE_SYSCALLS missing")?,
    )?;
    for (nr, name, spec) in file_syscalls::for_this_arch() {
        specs.set(nr, spec, 0).with_context(|| format!("filling the file syscall table ({name}, {nr})"))?;
    }
    let mut net_specs: aya::maps::Array<_, NetSyscallSpec> = aya::maps::Array::try_from(
        ebpf.map_mut(names::MAP_NET_SYSCALLS).context("map NET_SYSCALLS missing")?,
    )?;
    for (nr, name, spec) in file_syscalls::net_for_this_arch() {
        net_specs
            .set(nr, spec, 0)
            .with_context(|| format!("filling the network syscall table ({name}, {nr})"))?;
    }
    let loss = PerCpuArray::try_from(take(&mut ebpf, names::MAP_LOSS)?)?;
    debug!(elapsed_ms = started.elapsed().as_millis(), "eBPF object loaded");
    let maps =
        Maps { proc_events, file_events, net_events, inode_filter, loss, handover, logger, adopted: false };
    Ok(Loaded { ebpf, btf_source, map_ids, maps, hooks, fentry })
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

/// What is attached, for the startup log and tests.
#[derive(Debug, Default, Clone)]
pub struct Attached {
    pub collectors: Vec<&'static str>,
    /// Programs adopted from the pins of an earlier run (nothing was attached by this run).
    pub adopted: Vec<String>,
    /// Collectors that could not start on this kernel, with the reason.
    pub disabled: Vec<(&'static str, String)>,
    /// How system calls reach the programs ([`SyscallHooks::name`]).
    pub syscalls: &'static str,
}

pub mod attach;
pub use attach::attach;

#[cfg(test)]
mod tests {
    use sensor_common::EventKind;

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
            names::MAP_INODE_BLOOM,
            names::MAP_CONTROL,
            names::MAP_OWN_IDS,
            names::MAP_HANDOVER,
            names::MAP_SYS_ENTER_PROGS,
            names::MAP_SYS_EXIT_PROGS,
        ]
        .into_iter()
        .chain(names::MAP_FENTRY_PROGS)
        .chain(names::MAP_FEXIT_PROGS)
        {
            assert!(obj.maps.contains_key(map), "map {map} missing; object has {:?}", obj.maps.keys());
        }
        let twins = names::raw_twins().map(|(_, raw, _)| raw);
        let dispatch = [&names::PROG_SYS_ENTER_DISPATCH, &names::PROG_SYS_EXIT_DISPATCH];
        for &prog in EventKind::ALL.into_iter().flat_map(names::programs).chain(twins).chain(dispatch) {
            assert!(
                obj.programs.contains_key(prog),
                "program {prog} missing; object has {:?}",
                obj.programs.keys()
            );
        }
        for g in 0..names::FENTRY_GROUPS {
            for (_, _, base) in names::raw_twins() {
                let twin = format!("{base}_{g}");
                assert!(obj.programs.contains_key(&twin), "fentry twin {twin} missing");
                assert!(names::is_fentry_twin(&twin), "{twin}");
            }
            for n in 0..names::FENTRY_STUBS + sensor_common::ia32::IA32_FENTRY_STUBS {
                for exit in [false, true] {
                    let stub = fentry::stub_name(exit, g, n);
                    assert!(obj.programs.contains_key(&stub), "stub {stub} missing");
                }
            }
        }
        let stubs = obj.programs.keys().filter(|p| names::is_fentry_stub(p)).count();
        let expected =
            2 * names::FENTRY_GROUPS * (names::FENTRY_STUBS + sensor_common::ia32::IA32_FENTRY_STUBS);
        assert_eq!(stubs, expected as usize, "stubs beyond FENTRY_STUBS are never used");
        let twins = obj.programs.keys().filter(|p| names::is_fentry_twin(p)).count();
        let expected = names::raw_twins().count() * names::FENTRY_GROUPS as usize;
        assert_eq!(twins, expected, "one fentry twin per group");
    }

    /// A program array is emptied when the last user reference to it goes: every one must be
    /// pinned, or a restart that adopts the pinned programs finds it empty.
    #[test]
    fn every_program_array_is_pinned() {
        const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("parse the embedded eBPF object");
        let arrays: Vec<&String> = obj
            .maps
            .iter()
            .filter(|(_, m)| m.map_type() == BPF_MAP_TYPE_PROG_ARRAY)
            .map(|(n, _)| n)
            .collect();
        assert!(arrays.len() >= 4, "{arrays:?}");
        for name in arrays {
            assert!(crate::pin::PINNED_MAPS.contains(&name.as_str()), "program array {name} is not pinned");
        }
    }

    /// Every watched system call gets its own stubs on the fentry path: there are enough.
    #[test]
    fn there_are_enough_fentry_stubs_for_every_watched_call() {
        let calls = crate::file_syscalls::for_this_arch().len()
            + crate::file_syscalls::net_for_this_arch().len()
            + names::CRED_SYSCALLS.len()
            + 4 // ptrace, process_vm_writev, process_vm_readv, pidfd_getfd
            + 3; // bpf, memfd_create, io_uring_setup
        // The last stub of each group is the probe's.
        let stubs = names::FENTRY_STUBS as usize - 1;
        assert!(calls <= stubs, "{calls} watched calls, {stubs} stubs");
    }
}
