//! Pinning in bpffs, so that a restart (an upgrade, a crash, a SIGKILL) does not open a hole.
//!
//! With a pin directory (`--pin-dir`, `[sensor] pin_dir`), the sensor pins its ring buffers and
//! state maps and every link of its programs under `<dir>/<version>/`, where `<version>` is a
//! digest of the embedded eBPF object and the load-time settings. The programs then stay attached
//! when the process ends, for whatever reason, and keep writing into the pinned rings. The next
//! sensor with the same version adopts them: it opens the pinned maps, says who it is in the
//! `CONTROL` map, and reads what accumulated first; what the rings could not hold meanwhile is in
//! the kernel's loss counters, and the `HANDOVER` map says how much of that the last run already
//! put into loss records. A sensor of another version loads and attaches its own programs first,
//! then removes the old pins (briefly both run: events may be doubled, never missed).
//!
//! One reader only: the pin directory is locked (`flock`) while a sensor runs; a second one
//! refuses and names the first one's pid (from the `CONTROL` map).
//!
//! Links pin only where they are BPF links: raw tracepoints always (5.8+), classic tracepoints
//! from Linux 5.15 (`bpf_link_create` for perf events). Where a link cannot be pinned, pinning is
//! off for the run (the reason is logged and put into `sensor_start`), because an adopted set of
//! programs with some links gone would miss events silently.

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::{Array, Map, MapData, PerCpuArray, RingBuf},
    programs::{Program, links::PinnedLink},
};
use sensor_common::{EventKind, ia32, names, tamper::Control};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::{
    guard::bpf,
    loader::{EBPF_OBJECT, LoadConfig},
};

/// The maps a sensor needs to adopt pinned programs.
pub(crate) const PINNED_MAPS: [&str; 20] = [
    names::MAP_PROC_EVENTS,
    names::MAP_FILE_EVENTS,
    names::MAP_NET_EVENTS,
    names::MAP_LOSS,
    names::MAP_INODE_FILTER,
    names::MAP_INODE_BLOOM,
    names::MAP_CONTROL,
    names::MAP_HANDOVER,
    // A program array is emptied when the last user reference to it goes: pinned, the
    // dispatcher's and the fentry stubs' tables outlive this process with the pinned links.
    names::MAP_SYS_ENTER_PROGS,
    names::MAP_SYS_EXIT_PROGS,
    names::MAP_FENTRY_PROGS[0],
    names::MAP_FEXIT_PROGS[0],
    names::MAP_FENTRY_PROGS[1],
    names::MAP_FEXIT_PROGS[1],
    ia32::MAP_IA32_ENTER_PROGS,
    ia32::MAP_IA32_EXIT_PROGS,
    ia32::MAP_FENTRY_IA32_PROGS[0],
    ia32::MAP_FEXIT_IA32_PROGS[0],
    ia32::MAP_FENTRY_IA32_PROGS[1],
    ia32::MAP_FEXIT_IA32_PROGS[1],
];

/// Pinning settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinOptions {
    /// Directory on a bpffs mount (created when missing).
    pub dir: PathBuf,
    /// Remove the pins at a clean stop (the programs then detach); default: keep them, so the
    /// next start (a restart, an upgrade) continues without a hole.
    pub unpin_on_stop: bool,
}

/// Default pin directory of the packaged service.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/sensor";

/// The locked pin directory of this run.
#[derive(Debug)]
pub struct PinDir {
    root: PathBuf,
    /// Holds the lock until the process ends.
    _lock: crate::exclusive::DirLock,
}

/// Digest of the embedded object and the load-time settings: pins of the same version behave
/// exactly as a fresh load would.
pub fn version(cfg: &LoadConfig) -> String {
    let mut h = Sha256::new();
    h.update(EBPF_OBJECT);
    h.update(cfg.args_max.to_le_bytes());
    h.update([u8::from(cfg.report_threads), u8::from(cfg.include_mode)]);
    h.update(cfg.syscall_dispatcher.name());
    h.update(cfg.syscall_fentry.name());
    // Effective sizes: a default that follows the CPUs changes with them.
    for (_, _, bytes) in cfg.rings() {
        h.update(bytes.to_le_bytes());
    }
    h.update(cfg.btf.as_ref().map(|p| p.as_os_str().as_encoded_bytes().to_vec()).unwrap_or_default());
    format!("v{}", &hex::encode(h.finalize())[..16])
}

fn on_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Mounts bpffs at /sys/fs/bpf when `dir` is below it and nothing is mounted there (systems
/// that do not mount it at boot).
fn mount_bpffs_for(dir: &Path) -> anyhow::Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if !dir.starts_with(root) || on_bpffs(root) {
        return Ok(());
    }
    nix::mount::mount(Some("bpf"), root, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
        .with_context(|| format!("mounting bpffs at {} for the pin directory", root.display()))?;
    info!("mounted bpffs at /sys/fs/bpf");
    Ok(())
}

impl PinDir {
    /// Creates and locks `dir`. Refuses when it is not on a bpffs mount, or when another sensor
    /// holds it (naming that sensor's pid).
    pub fn lock(dir: &Path) -> anyhow::Result<Self> {
        mount_bpffs_for(dir)?;
        let parent = dir.ancestors().skip(1).find(|p| p.exists()).unwrap_or(Path::new("/"));
        if !on_bpffs(parent) && !on_bpffs(dir) {
            bail!(
                "pin directory {}: not on a bpffs mount (mount one with `mount -t bpf bpf /sys/fs/bpf`, or \
                 run without --pin-dir)",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating pin directory {}", dir.display()))?;
        let lock = crate::exclusive::lock_dir(dir, "pin directory")?;
        Ok(Self { root: dir.to_owned(), _lock: lock })
    }

    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.root.join(version)
    }

    /// Pin directories of other versions (and unfinished ones), to be removed once this run's
    /// programs are attached; with `None`, every one.
    pub fn others(&self, version: Option<&str>) -> Vec<PathBuf> {
        std::fs::read_dir(&self.root)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| version.is_none_or(|v| e.file_name().to_str() != Some(v)))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn map_pin(name: &str) -> String {
    format!("map-{name}")
}

/// Pins the maps another sensor needs to adopt the programs into `dir` (created).
pub fn pin_maps(ebpf: &Ebpf, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in PINNED_MAPS {
        let map = ebpf.map(name).with_context(|| format!("map {name} missing"))?;
        let data = crate::guard::map_data(map).with_context(|| format!("map {name}: unexpected type"))?;
        data.pin(dir.join(map_pin(name))).with_context(|| format!("pinning map {name}"))?;
    }
    Ok(())
}

/// The BPF links of the loaded programs, with the program's name. Classic tracepoint
/// attachments are BPF links only from Linux 5.15 (`bpf_link_create` for perf events); before,
/// they cannot be pinned: `Err` with the reason then.
pub fn own_links(ebpf: &Ebpf) -> Result<Vec<(u32, String)>, String> {
    let progs: std::collections::HashMap<u32, (String, bool)> = ebpf
        .programs()
        .filter_map(|(n, p)| Some((p.info().ok()?.id(), (n.to_owned(), matches!(p, Program::TracePoint(_))))))
        .collect();
    let links: Vec<(u32, String, bool)> = crate::guard::held_links()
        .into_iter()
        .filter_map(|l| progs.get(&l.program_id).map(|(n, tp)| (l.id, n.clone(), *tp)))
        .collect();
    let tracepoints_loaded = progs.values().any(|(_, tp)| *tp);
    if tracepoints_loaded && !links.iter().any(|l| l.2) {
        return Err("classic tracepoint attachments are not BPF links on this kernel (they are from \
                    Linux 5.15): they cannot be pinned"
            .to_owned());
    }
    Ok(links.into_iter().map(|(id, n, _)| (id, n)).collect())
}

/// Pins the BPF link `id` at `path` (`BPF_LINK_GET_FD_BY_ID`, then `BPF_OBJ_PIN`).
fn pin_link(id: u32, path: &Path) -> anyhow::Result<()> {
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    let fd = bpf(BPF_LINK_GET_FD_BY_ID, &[u64::from(id), 0])
        .with_context(|| format!("BPF_LINK_GET_FD_BY_ID {id}"))?;
    // SAFETY: a new fd the kernel just returned, owned here.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) };
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).context("pin path")?;
    // `union bpf_attr` for BPF_OBJ_PIN: `__aligned_u64 pathname`, `__u32 bpf_fd`, `__u32 file_flags`.
    let attr = [c.as_ptr() as u64, u64::from(u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX))];
    bpf(BPF_OBJ_PIN, &attr).with_context(|| format!("pinning link {id} at {}", path.display()))?;
    Ok(())
}

/// Pins every link into `dir` (`link-<program>-<id>`): they then outlive the process.
pub fn pin_links(links: &[(u32, String)], dir: &Path) -> anyhow::Result<()> {
    for (id, prog) in links {
        pin_link(*id, &dir.join(format!("link-{prog}-{id}")))?;
    }
    Ok(())
}

/// The maps of adopted programs.
pub struct Adopted {
    pub maps: crate::loader::Maps,
    /// Programs whose links are pinned there.
    pub programs: Vec<String>,
    /// Pinned links (held so that an unpin at stop detaches them).
    pub links: Vec<PinnedLink>,
    /// The programs behind the links, whose skipped runs are counted.
    pub runs: Vec<crate::loader::ProgramRuns>,
}

impl std::fmt::Debug for Adopted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adopted").field("programs", &self.programs).finish_non_exhaustive()
    }
}

/// Opens the pins in `dir` (a complete set of this version) and claims the programs for this
/// process: `ignore_tgid` as in a fresh load. `None` when there is nothing to adopt.
pub fn adopt(dir: &Path, ignore_tgid: u32) -> anyhow::Result<Option<Adopted>> {
    if !dir.join(map_pin(names::MAP_CONTROL)).exists() {
        return Ok(None);
    }
    let open = |name: &str| {
        MapData::from_pin(dir.join(map_pin(name))).with_context(|| format!("opening pinned map {name}"))
    };
    let mut control: Array<_, Control> = Array::try_from(Map::Array(open(names::MAP_CONTROL)?))?;
    let previous = control.get(&0, 0).map(|c| c.sensor_tgid).unwrap_or(0);
    let mut programs = Vec::new();
    let mut links = Vec::new();
    let mut link_pins = Vec::new();
    for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("link-") {
            let prog = rest.rsplit_once('-').map_or(rest, |(c, _)| c).to_owned();
            link_pins.push((prog.clone(), e.path()));
            if !programs.contains(&prog) {
                programs.push(prog);
            }
            links
                .push(PinnedLink::from_pin(e.path()).with_context(|| format!("opening pinned link {name}"))?);
        }
    }
    if links.is_empty() {
        // Maps without links: a run that died while pinning. Not adoptable.
        return Ok(None);
    }
    programs.sort();
    let maps = crate::loader::Maps {
        proc_events: RingBuf::try_from(Map::RingBuf(open(names::MAP_PROC_EVENTS)?))?,
        file_events: RingBuf::try_from(Map::RingBuf(open(names::MAP_FILE_EVENTS)?))?,
        net_events: RingBuf::try_from(Map::RingBuf(open(names::MAP_NET_EVENTS)?))?,
        inode_filter: crate::filter::FilterMaps {
            entries: aya::maps::HashMap::try_from(Map::HashMap(open(names::MAP_INODE_FILTER)?))?,
            bloom: aya::maps::Array::try_from(Map::Array(open(names::MAP_INODE_BLOOM)?))?,
        },
        loss: PerCpuArray::try_from(Map::PerCpuArray(open(names::MAP_LOSS)?))?,
        handover: crate::handover::Handover::map(open(names::MAP_HANDOVER)?.fd())
            .context("mapping the pinned HANDOVER array")?,
        logger: None,
        adopted: true,
    };
    let runs = crate::loader::pinned_program_runs(&link_pins);
    let adopted = Adopted { maps, programs, links, runs };
    crate::guard::write_control(&mut control, ignore_tgid)?;
    info!(dir = %dir.display(), previous_pid = previous, links = adopted.links.len(),
        "adopted the pinned programs of an earlier run: reading what they kept first");
    Ok(Some(adopted))
}

/// Claims the programs pinned in `dir` (another version's) for this process, so that what it
/// does while it loads its own (opening pins, listing links) is not recorded by them as another
/// process's. Only where the control block has this version's size.
pub fn claim(dir: &Path, ignore_tgid: u32) {
    let Ok(data) = MapData::from_pin(dir.join(map_pin(names::MAP_CONTROL))) else { return };
    if let Ok(mut control) = Array::<_, Control>::try_from(Map::Array(data)) {
        let _ = crate::guard::write_control(&mut control, ignore_tgid);
    }
}

/// Removes the pins of another version (or of a start that did not finish) and counts, per
/// event kind, what their rings still held and what their last run had read but not written:
/// events this version cannot read (their layout may differ), so they are counted, not decoded.
/// The old programs run until the pins are gone, alongside this run's: events of that moment
/// may be counted here and recorded too, never neither.
pub fn retire(dir: &Path) -> Vec<(&'static str, u64)> {
    let mut rings: Vec<RingBuf<MapData>> =
        [names::MAP_PROC_EVENTS, names::MAP_FILE_EVENTS, names::MAP_NET_EVENTS]
            .into_iter()
            .filter_map(|name| MapData::from_pin(dir.join(map_pin(name))).ok())
            .filter_map(|m| RingBuf::try_from(Map::RingBuf(m)).ok())
            .collect();
    let in_flight = MapData::from_pin(dir.join(map_pin(names::MAP_HANDOVER)))
        .ok()
        .and_then(|m| crate::handover::Handover::map(m.fd()).ok())
        .map(|h| h.in_flight());
    remove(dir);
    let mut counts = std::collections::BTreeMap::<&'static str, u64>::new();
    for ring in &mut rings {
        while let Some(item) = ring.next() {
            let kind = item
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .and_then(|b| EventKind::try_from(u32::from_ne_bytes(b)).ok())
                .map_or("unknown", EventKind::name);
            *counts.entry(kind).or_default() += 1;
        }
    }
    for (kind, n) in EventKind::ALL.iter().zip(in_flight.unwrap_or_default()) {
        if n > 0 {
            *counts.entry(kind.name()).or_default() += n;
        }
    }
    counts.into_iter().collect()
}

/// Removes a pin directory (its links detach once no process holds them).
pub fn remove(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => info!(dir = %dir.display(), "pins removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(dir = %dir.display(), error = %e, "removing pins"),
    }
}

/// `sensor cleanup`: removes every pin under `dir` (refuses while a sensor runs with it).
pub fn cleanup(dir: &Path) -> anyhow::Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let locked = PinDir::lock(dir)?;
    let versions = locked.others(None);
    let n = versions.len();
    for v in versions {
        remove(&v);
    }
    drop(locked);
    let _ = std::fs::remove_dir(dir);
    Ok(n)
}
