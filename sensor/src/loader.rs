//! Loading the embedded eBPF object: preflight checks, globals from the running kernel's BTF,
//! and program attachment. Maps the sources read from are taken out before anything attaches.

use std::time::Instant;

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::BtfTracePoint,
};
use sensor_common::{LossCounter, exec::ExecConfig, names};
use tracing::{debug, info, warn};

use crate::btf::KernelBtf;

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Bridge from aya-log (eBPF side) into the `log` facade, which tracing receives.
pub type EbpfLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Load-time settings passed to the programs.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    pub args_max: u32,
    pub self_tgid: u32,
    pub proc_ring_bytes: Option<u32>,
}

/// A loaded (not yet attached) object and the maps the sources need.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub proc_events: RingBuf<MapData>,
    pub loss: PerCpuArray<MapData, LossCounter>,
    pub logger: Option<EbpfLogger>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").finish_non_exhaustive()
    }
}

/// Capabilities the sensor needs, with their bit numbers in `CapEff`.
const NEEDED_CAPS: [(u32, &str); 3] = [(39, "CAP_BPF"), (38, "CAP_PERFMON"), (21, "CAP_SYS_ADMIN")];

/// Fails with a clear message when the process cannot load eBPF programs.
pub fn preflight() -> anyhow::Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = NEEDED_CAPS
        .iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the sensor must run as root or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; missing: {}",
            missing.join(", ")
        );
    }
    // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use memcg.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        debug!(error = %std::io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK (harmless on 5.11+)");
    }
    Ok(())
}

/// Loads the object with offsets resolved from the running kernel's BTF.
pub fn load(cfg: LoadConfig) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let kbtf = KernelBtf::from_sys()?;
    let offsets = kbtf
        .kernel_offsets()
        .context("resolving kernel struct offsets")?;
    debug!(?offsets, "kernel offsets from BTF");
    let exec_cfg = ExecConfig {
        args_max: cfg.args_max,
        self_tgid: cfg.self_tgid,
    };
    let mut loader = EbpfLoader::new();
    loader
        .override_global(names::GLOBAL_OFFSETS, &offsets, true)
        .override_global(names::GLOBAL_EXEC_CONFIG, &exec_cfg, true);
    if let Some(bytes) = cfg.proc_ring_bytes {
        loader.map_max_entries(names::MAP_PROC_EVENTS, bytes);
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %e, "eBPF log bridge unavailable");
            None
        }
    };
    let proc_events = RingBuf::try_from(take(&mut ebpf, names::MAP_PROC_EVENTS)?)?;
    let loss = PerCpuArray::try_from(take(&mut ebpf, names::MAP_LOSS)?)?;
    debug!(
        elapsed_ms = started.elapsed().as_millis(),
        "eBPF object loaded"
    );
    Ok(Loaded {
        ebpf,
        proc_events,
        loss,
        logger,
    })
}

fn take(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))
}

/// Loads into the kernel and attaches every program. Call after the readers have started.
pub fn attach(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let started = Instant::now();
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(names::PROG_SCHED_PROCESS_EXEC)
        .with_context(|| format!("program {} missing", names::PROG_SCHED_PROCESS_EXEC))?
        .try_into()?;
    prog.load(names::TP_SCHED_PROCESS_EXEC, &btf)
        .with_context(|| format!("verifying {}", names::PROG_SCHED_PROCESS_EXEC))?;
    prog.attach()
        .with_context(|| format!("attaching {}", names::PROG_SCHED_PROCESS_EXEC))?;
    info!(
        elapsed_ms = started.elapsed().as_millis(),
        programs = 1,
        "programs attached"
    );
    Ok(())
}
