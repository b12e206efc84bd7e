//! The kernel side of a run: the programs and the maps the sources read, from a fresh load or
//! adopted from the pins of an earlier run (see `crate::pin`), and what happens to them at stop.

use std::path::PathBuf;

use aya::Ebpf;
use sensor_proto::v1::Pinning;
use tracing::{info, warn};

use crate::{
    enrich::clock::BootClock,
    flow::LossReport,
    loader::{self, Attached, LoadConfig, Maps, ProgramRuns},
    pin::{self, PinDir, PinOptions},
};

/// Pins of this run.
#[derive(Debug)]
struct Pins {
    dir: PinDir,
    version: String,
    /// Where this run's pins are being made (renamed to the version directory once complete).
    work: PathBuf,
    options: PinOptions,
    links: Vec<aya::programs::links::PinnedLink>,
}

/// The programs of this run.
pub struct Kernel {
    /// A fresh load (`None`: adopted programs, held by their pinned links).
    ebpf: Option<Ebpf>,
    map_ids: Vec<u32>,
    pins: Option<Pins>,
    /// Programs of adopted pins, by name.
    adopted: Vec<String>,
    /// Adopted programs whose skipped runs are counted (taken by [`Kernel::program_runs`]).
    adopted_runs: Vec<ProgramRuns>,
    /// Where the kernel struct offsets came from.
    pub btf: String,
    /// How the programs came to run, for `sensor_start`.
    pub pinning: Pinning,
    /// What the pins of other versions held when this run replaced them (see `pin::retire`).
    pub retired: Vec<LossReport>,
    /// The links of a fresh load's attachments (released together at [`Kernel::stop`]).
    links: crate::links::Links,
    /// How system calls reach the programs: chosen for a fresh load, read from the pinned
    /// program names for adopted ones.
    hooks: loader::SyscallHooks,
    /// The fentry path's syscall functions, until attached.
    fentry: Option<loader::FentryTargets>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("pinning", &self.pinning).finish_non_exhaustive()
    }
}

impl Kernel {
    /// Adopts the pins of an earlier run of the same version, or loads the object (pinning its
    /// maps when pinning is on). Refuses while another sensor holds the pin directory.
    pub fn open(cfg: LoadConfig, pinning: Option<&PinOptions>) -> anyhow::Result<(Self, Maps)> {
        let Some(options) = pinning else {
            let reason = "no pin directory configured".to_owned();
            return Self::fresh(cfg, None, Pinning { mode: "off".into(), reason, ..Pinning::default() });
        };
        let dir = PinDir::lock(&options.dir)?;
        let version = pin::version(&cfg);
        let current = dir.version_dir(&version);
        match pin::adopt(&current, cfg.self_tgid) {
            Ok(Some(a)) => {
                let pinning = Pinning {
                    mode: "adopted".into(),
                    dir: options.dir.display().to_string(),
                    version: version.clone(),
                    reason: String::new(),
                };
                let pins =
                    Pins { dir, version, work: current.clone(), options: options.clone(), links: a.links };
                let btf = format!("adopted from {}", current.display());
                let hooks = loader::SyscallHooks::of_programs(&a.programs);
                let kernel = Self {
                    ebpf: None,
                    map_ids: Vec::new(),
                    pins: Some(pins),
                    adopted: a.programs,
                    adopted_runs: a.runs,
                    btf,
                    pinning,
                    retired: Vec::new(),
                    links: crate::links::Links::default(),
                    hooks,
                    fentry: None,
                };
                return Ok((kernel, a.maps));
            }
            Ok(None) => {}
            Err(e) => {
                warn!(dir = %current.display(), error = %format!("{e:#}"), "pins of this version unusable: replacing them");
            }
        }
        for old in dir.others(Some(&version)) {
            pin::claim(&old, cfg.self_tgid);
        }
        // bpffs refuses names with a dot.
        let work = options.dir.join(format!("{version}-new"));
        pin::remove(&work);
        let pinning = Pinning {
            mode: "fresh".into(),
            dir: options.dir.display().to_string(),
            version: version.clone(),
            reason: String::new(),
        };
        let pins = Pins { dir, version, work, options: options.clone(), links: Vec::new() };
        Self::fresh(cfg, Some(pins), pinning)
    }

    fn fresh(cfg: LoadConfig, pins: Option<Pins>, pinning: Pinning) -> anyhow::Result<(Self, Maps)> {
        let pin_dir = pins.as_ref().map(|p| p.work.clone());
        let loaded = loader::load_with(cfg, |ebpf| match &pin_dir {
            Some(dir) => pin::pin_maps(ebpf, dir),
            None => Ok(()),
        })?;
        let kernel = Self {
            ebpf: Some(loaded.ebpf),
            map_ids: loaded.map_ids,
            pins,
            adopted: Vec::new(),
            adopted_runs: Vec::new(),
            btf: loaded.btf_source.to_string(),
            pinning,
            retired: Vec::new(),
            links: crate::links::Links::default(),
            hooks: loaded.hooks,
            fentry: loaded.fentry,
        };
        Ok((kernel, loaded.maps))
    }

    /// Attaches a fresh load (then pins its links, and removes pins of other versions), or
    /// describes the adopted programs.
    pub fn attach(&mut self) -> anyhow::Result<Attached> {
        let Some(ebpf) = self.ebpf.as_mut() else {
            let syscalls = self.hooks.name();
            return Ok(Attached { adopted: self.adopted.clone(), syscalls, ..Attached::default() });
        };
        let (attached, links) = loader::attach(ebpf, self.hooks, self.fentry.take())?;
        self.links = links;
        crate::guard::register_own_ids(ebpf, &self.map_ids);
        if let Some(p) = self.pins.take() {
            self.pins = finish_pins(ebpf, p, &mut self.pinning, &mut self.retired);
        }
        Ok(attached)
    }

    /// The programs whose skipped runs are counted: a fresh load's, or the adopted ones.
    pub fn program_runs(&mut self) -> Vec<ProgramRuns> {
        match &self.ebpf {
            Some(ebpf) => loader::program_runs(ebpf),
            None => std::mem::take(&mut self.adopted_runs),
        }
    }

    /// Releases the programs: pinned ones stay attached (unless `unpin_on_stop`), the others
    /// detach, all links at once, and where the kernel allows it after this process has ended
    /// (see [`crate::links`]).
    pub fn stop(mut self) {
        let started = std::time::Instant::now();
        let links = std::mem::take(&mut self.links);
        let n = links.len();
        let mut background = 0;
        match self.pins.take() {
            Some(mut p) if p.options.unpin_on_stop => {
                pin::remove(&p.dir.version_dir(&p.version));
                let mut links = links;
                for l in std::mem::take(&mut p.links) {
                    links.push(l);
                }
                background = links.release_in_background();
            }
            // Pinned: they stay attached; only this process's references go.
            Some(_) => links.release(),
            None => background = links.release_in_background(),
        }
        drop(self);
        tracing::debug!(links = n, elapsed_ms = started.elapsed().as_millis(), "links released");
        if background > 0 {
            info!(links = background, "the kernel detaches these links after this process ends");
        }
    }
}

/// Pins the links of a fresh load into the work directory and makes it this version's; on a
/// kernel whose links cannot be pinned, pinning is off for the run (the reason is recorded; the
/// directory stays locked).
fn finish_pins(
    ebpf: &Ebpf,
    mut p: Pins,
    pinning: &mut Pinning,
    retired: &mut Vec<LossReport>,
) -> Option<Pins> {
    let res = pin::own_links(ebpf).map_err(anyhow::Error::msg).and_then(|links| {
        pin::pin_links(&links, &p.work)?;
        let target = p.dir.version_dir(&p.version);
        pin::remove(&target);
        std::fs::rename(&p.work, &target)?;
        Ok(links.len())
    });
    match res {
        Ok(n) => {
            for old in p.dir.others(Some(&p.version)) {
                info!(dir = %old.display(), "replacing the pins of another version");
                for (kind, count) in pin::retire(&old) {
                    warn!(kind, count, "events the replaced programs kept or had in flight: counted as lost");
                    let now = BootClock::boot_ns_now();
                    retired.push(LossReport {
                        kind,
                        reason: "replaced",
                        count,
                        first_boot_ns: now,
                        last_boot_ns: now,
                    });
                }
            }
            info!(links = n, dir = %p.dir.version_dir(&p.version).display(), "programs pinned: they stay attached across restarts");
            p.links.clear();
            Some(p)
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "pinning off for this run: the programs end with this process");
            pin::remove(&p.work);
            pinning.mode = "off".into();
            pinning.reason = format!("{e:#}");
            // The directory stays locked: still one sensor per pin directory.
            Some(p)
        }
    }
}
