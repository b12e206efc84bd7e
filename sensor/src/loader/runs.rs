//! The programs whose skipped runs are counted (see `sources::loss`): those of a fresh load, or
//! those behind an adopting run's pinned links, each with the event kind it reports.

use aya::{Ebpf, programs::ProgramFd};
use sensor_common::{EventKind, names};
use tracing::warn;

/// What the runs of a counted program are: events of one kind, or — the raw syscall
/// dispatchers and the fentry stubs, which tail-call a watched system call's program — system
/// calls of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    Kind(EventKind),
    Syscalls,
}

impl Runs {
    /// How many groups there are: one per event kind, then the dispatchers.
    pub const COUNT: usize = sensor_common::header::RUN_GROUPS;

    /// Position among the [`Runs::COUNT`] groups (event kinds in `EventKind::ALL` order first).
    pub const fn index(self) -> usize {
        match self {
            Runs::Kind(k) => k.index(),
            Runs::Syscalls => EventKind::ALL.len(),
        }
    }

    /// The group at `index` (see [`Runs::index`]).
    pub fn at(index: usize) -> Self {
        EventKind::ALL.get(index).map_or(Runs::Syscalls, |k| Runs::Kind(*k))
    }

    /// The `kind` of the loss records of skipped runs: the event kind, or "syscall".
    pub const fn name(self) -> &'static str {
        match self {
            Runs::Kind(k) => k.name(),
            Runs::Syscalls => "syscall",
        }
    }
}

/// An attached program and what a run of it reports. The kernel skips a run when another BPF
/// program is already active on that CPU (`recursion_misses` in its fdinfo); those runs are
/// events lost before any of our code ran, so they are accounted like ring overflows.
#[derive(Debug)]
pub struct ProgramRuns {
    pub kind: Runs,
    pub name: String,
    pub fd: ProgramFd,
}

/// Every loaded program of `ebpf` with the event kind it reports.
pub fn program_runs(ebpf: &Ebpf) -> Vec<ProgramRuns> {
    ebpf.programs()
        .filter_map(|(name, prog)| {
            let kind = program_kind(name)?;
            let fd = prog
                .fd()
                .ok()?
                .try_clone()
                .inspect_err(|e| warn!(prog = name, error = %e, "dup of program fd"))
                .ok()?;
            Some(ProgramRuns { kind, name: name.to_owned(), fd })
        })
        .collect()
}

/// The programs behind pinned links (`(program name, link pin)`), for an adopting run: their
/// skipped runs keep counting in the kernel across runs. Links of one program count once.
pub fn pinned_program_runs(links: &[(String, std::path::PathBuf)]) -> Vec<ProgramRuns> {
    use aya::programs::links::{FdLink, PinnedLink};
    let mut ids = Vec::new();
    for (name, path) in links {
        let Some(kind) = program_kind(name) else { continue };
        let id = PinnedLink::from_pin(path)
            .map_err(anyhow::Error::from)
            .and_then(|l| Ok(FdLink::from(l).info()?.program_id()));
        match id {
            Ok(id) if !ids.iter().any(|(i, _, _)| *i == id) => ids.push((id, kind, name.clone())),
            Ok(_) => {}
            Err(e) => warn!(link = %path.display(), error = %format!("{e:#}"), "reading a pinned link"),
        }
    }
    let mut runs = Vec::new();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        if let Some((_, kind, name)) = ids.iter().find(|(id, _, _)| *id == info.id()) {
            match info.fd() {
                Ok(fd) => runs.push(ProgramRuns { kind: *kind, name: name.clone(), fd }),
                Err(e) => warn!(prog = %name, error = %e, "opening an adopted program"),
            }
        }
    }
    if runs.len() < ids.len() {
        warn!(
            found = runs.len(),
            linked = ids.len(),
            "some adopted programs were not found: their skipped runs are not counted"
        );
    }
    runs
}

/// What a program of the object reports (see [`names::programs`]); `None` for programs whose
/// runs are no events (the guards of the sensor's own pins and maps).
fn program_kind(name: &str) -> Option<Runs> {
    // A stub of the fentry path runs for one call but skips like a dispatcher: counted alike.
    if names::is_dispatcher(name) || names::is_fentry_stub(name) {
        return Some(Runs::Syscalls);
    }
    let name = names::tracepoint_twin(name).unwrap_or(name);
    EventKind::ALL.into_iter().find(|k| names::programs(*k).contains(&name)).map(Runs::Kind)
}
