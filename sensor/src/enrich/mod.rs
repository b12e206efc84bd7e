//! Enrichment: kernel events → the process and event parts of a record.
//!
//! Adds what a kernel event does not carry by itself: the stable process GUIDs (its own and its
//! parent's), wall-clock times, names for ids, the cgroup path, and — for events other than exec —
//! the executable and command line remembered from the process's exec or from the `/proc` seed.

pub mod ancestry;
pub mod cgroups;
pub mod clock;
pub mod dns;
pub mod events;
pub mod file;
pub mod guid;
pub mod hasher;
pub mod host;
pub mod kinds;
mod net;
pub mod parking;
pub mod process_table;
pub mod procfs;
pub mod session;
mod tamper;
mod task;
pub mod users;

use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _, path::Path};

use sensor_proto::v1::{FileEvent, LossEvent, Process, audit_record::Event};

use crate::{
    decode::{ExecRaw, KernelEvent, task::TaskRaw},
    flow::{LossReport, PipelineEvent},
    text::text,
};
use ancestry::Ancestry;
use clock::BootClock;
use guid::GuidMaker;
use hasher::{ExeHasher, FileKey, KnownExe};
use process_table::{ProcessTable, TableLimits};
use session::SessionTracker;

/// Filesystem magic numbers of memory-backed filesystems (`include/uapi/linux/magic.h`).
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Parts of written records handed back by the record stage for the enricher to build the next
/// records in ([`Enricher::reuse`]): a record is a few dozen strings, and building them new and
/// freeing them for every record was the largest share of the pipeline's allocations.
#[derive(Debug, Default)]
pub struct Spares {
    pub processes: Vec<Box<Process>>,
    pub files: Vec<FileEvent>,
}

/// An event with everything the record stage needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    pub boot_ns: u64,
    pub process: Option<Box<Process>>,
    /// Ancestors of `process`, nearest first (shared by the records of one process).
    pub ancestors: std::sync::Arc<Ancestry>,
    pub event: Event,
}

/// Settings of the enrichment stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrichConfig {
    pub table: TableLimits,
    /// Executables larger than this are not hashed.
    pub hash_max_bytes: Option<u64>,
}

pub struct Enricher {
    clock: BootClock,
    guids: GuidMaker,
    cgroups: cgroups::CgroupPaths,
    table: ProcessTable,
    hasher: ExeHasher,
    /// Executables being hashed, by process GUID (so the digest is found after the process is
    /// gone, without a syscall per event). Entries leave at exit.
    hash_pending: crate::fastmap::FastMap<String, FileKey>,
    sessions: SessionTracker,
    sensitive: crate::filter::SharedSensitive,
    /// DNS payloads that did not decode (reported in records as `malformed`, counted here).
    malformed_dns: u64,
    /// Bulk events waiting for their process's lineage events.
    parking: parking::Parking<KernelEvent>,
    /// The sensor's mount namespace: exe paths of processes in it can be checked on disk.
    own_mnt_ns: u64,
    /// Wakes the inode filter when a sensitive path gets a new inode.
    filter_waker: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The sensor's own files, to name the class of a protected path in file records.
    protected: crate::protect::ProtectedPaths,
    /// Process parts of written records, to build the next ones in (see `task.rs`).
    #[expect(clippy::vec_box, reason = "records hold the part boxed; the box is reused with it")]
    spare: Vec<Box<Process>>,
    /// File parts of written records, to build the next file records in (see `file.rs`).
    spare_files: Vec<FileEvent>,
}

/// Most processes waiting for their executable's digest.
const HASH_PENDING_MAX: usize = 65_536;

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher").field("table", &self.table.stats()).finish_non_exhaustive()
    }
}

impl Enricher {
    pub fn new(clock: BootClock, boot_id: &str, cfg: EnrichConfig) -> Self {
        let guids = GuidMaker::new(boot_id);
        Self {
            clock,
            cgroups: cgroups::CgroupPaths::new(),
            table: ProcessTable::new(cfg.table, guids.clone()),
            hasher: ExeHasher::start(cfg.hash_max_bytes.unwrap_or(hasher::DEFAULT_MAX_FILE_BYTES)),
            hash_pending: crate::fastmap::FastMap::default(),
            sessions: SessionTracker::new("/proc"),
            sensitive: crate::filter::SharedSensitive::default(),
            malformed_dns: 0,
            parking: parking::Parking::default(),
            own_mnt_ns: procfs::own_mnt_ns(),
            filter_waker: None,
            protected: crate::protect::ProtectedPaths::default(),
            spare: Vec::new(),
            spare_files: Vec::new(),
            guids,
        }
    }

    /// The sensor's protected paths (file records on them name their class in `protected`).
    pub fn set_protected(&mut self, protected: crate::protect::ProtectedPaths) {
        self.protected = protected;
    }

    /// A record about the sensor itself (lifecycle): `process` is the sensor's own process.
    pub fn sensor_record(&mut self, boot_ns: u64, event: Event) -> Enriched {
        let own = self.table.live_by_pid(std::process::id()).map(|e| e.process.clone());
        match own {
            Some(p) => self.done(boot_ns, Box::new(p), event),
            None => Enriched { boot_ns, process: None, ancestors: Ancestry::empty(), event },
        }
    }

    /// The sensitive paths to mark file records with (kept current by the inode filter), and
    /// the handle that makes the filter re-resolve them at once.
    pub fn set_sensitive(
        &mut self,
        shared: crate::filter::SharedSensitive,
        waker: Option<std::sync::Arc<tokio::sync::Notify>>,
    ) {
        self.sensitive = shared;
        self.filter_waker = waker;
    }

    /// Seeds the process table from `/proc` (processes that started before the sensor) and
    /// returns a session record for each login session already open.
    pub fn seed(&mut self) -> Vec<Enriched> {
        let stats = self.table.seed_from_proc(std::path::Path::new("/proc"), &self.clock);
        tracing::info!(seeded = stats.seeded, skipped = stats.skipped, "process table seeded from /proc");
        let live: Vec<Process> = self.table.live().map(|e| e.process.clone()).collect();
        let now = BootClock::boot_ns_now();
        let mut out = Vec::new();
        for p in live {
            if let Some(s) = self.sessions.observe(&p, &self.table, true) {
                out.push(self.done(now, Box::new(p), Event::Session(s)));
            }
        }
        out
    }

    /// Table sizes and counters.
    pub fn table_stats(&self) -> process_table::TableStats {
        self.table.stats()
    }

    /// DNS payloads that could not be decoded so far.
    pub fn malformed_dns(&self) -> u64 {
        self.malformed_dns
    }

    /// Enriches one event into `out`: usually one record's worth, two when the event is the
    /// first seen of a new login session (the session record comes first).
    pub fn enrich(&mut self, ev: PipelineEvent, out: &mut Vec<Enriched>) {
        let ev = match ev {
            PipelineEvent::Loss(l) => {
                out.push(loss(l));
                return;
            }
            PipelineEvent::Kernel(k) => k,
            PipelineEvent::Sensor(event) => {
                out.push(self.sensor_record(BootClock::boot_ns_now(), *event));
                return;
            }
        };
        // Events from the bulk rings may overtake their process's lineage (see [`parking`]);
        // lineage itself and the low-volume kinds share the process ring, so they never wait.
        let bulk = kinds::is_bulk(&ev);
        let boot_ns = ev.header().boot_ns;
        if bulk && self.parking.should_park(boot_ns) {
            if let Some(old) = self.parking.park(boot_ns, ev) {
                self.enrich_now(&old, out);
            }
            return;
        }
        self.enrich_now(&ev, out);
    }

    /// Every process event stamped before `boot_ns` has been enriched (the record stage reads the
    /// mark before it takes the next event; see [`parking`]).
    pub fn advance_lineage_mark(&mut self, boot_ns: u64) {
        self.parking.advance_mark(boot_ns);
    }

    /// Every file and network event stamped before `boot_ns` has been taken from the bulk
    /// queue (the record stage reads the bulk readers' mark, then finds the queue empty): exited
    /// processes those events no longer need leave the process table. Parked events have been
    /// taken but not enriched yet, so the oldest of them holds the mark back.
    pub fn settle_bulk(&mut self, boot_ns: u64) {
        let settled = self.parking.oldest().map_or(boot_ns, |t| t.min(boot_ns));
        self.table.settle(settled);
    }

    /// Enriches the parked events whose wait is over at `now_boot_ns` (all of them with `all`,
    /// at stop). The record stage calls this when it is idle.
    pub fn release_parked(&mut self, now_boot_ns: u64, all: bool, out: &mut Vec<Enriched>) {
        while let Some(ev) = self.parking.next_ready(now_boot_ns, all) {
            self.enrich_now(&ev, out);
        }
        self.release_sessions(None, now_boot_ns, all, out);
    }

    /// Gives back the room bursts grew in the parking queue, when it is empty.
    pub fn shrink_idle_buffers(&mut self) {
        self.parking.shrink_if_idle();
    }

    /// Events parked, waiting for their process's lineage, per kind (`EventKind::ALL` order).
    pub fn parked_by_kind(&self) -> [u64; sensor_common::EventKind::ALL.len()] {
        let mut n = [0; sensor_common::EventKind::ALL.len()];
        for ev in self.parking.iter() {
            n[ev.kind().index()] += 1;
        }
        n
    }

    /// Events parked, waiting for their process's lineage events, and session records waiting
    /// for their terminal.
    pub fn parked(&self) -> usize {
        self.parking.len() + self.sessions.deferred()
    }

    /// Session records held back for their terminal that can go now (before `by`'s record).
    fn release_sessions(
        &mut self,
        by: Option<&Process>,
        now_boot_ns: u64,
        all: bool,
        out: &mut Vec<Enriched>,
    ) {
        if self.sessions.deferred() == 0 {
            return;
        }
        for d in self.sessions.ready(by, now_boot_ns, all) {
            let rec = self.done(d.boot_ns, Box::new(d.process), Event::Session(d.event));
            out.push(rec);
        }
    }

    fn enrich_now(&mut self, ev: &KernelEvent, out: &mut Vec<Enriched>) {
        let Some(done) = kinds::enrich(self, ev, out) else { return };
        self.release_sessions(done.process.as_deref(), done.boot_ns, false, out);
        out.push(done);
    }

    /// Finishes a record's process part: names, hash, ancestors.
    pub(crate) fn done(&mut self, boot_ns: u64, mut process: Box<Process>, event: Event) -> Enriched {
        self.add_names(&mut process);
        let ancestors = self.table.ancestry(&process.guid);
        Enriched { boot_ns, process: Some(process), ancestors, event }
    }

    fn add_names(&mut self, p: &mut Process) {
        let mut names = self.sessions.names().for_record();
        set_text(&mut p.user, names.user(p.uid));
        set_text(&mut p.group, names.group(p.gid));
        if p.auid != process_table::UNSET {
            set_text(&mut p.login_user, names.user(p.auid));
        }
    }

    /// [`Self::process`] plus what the table remembers of the process's program (exe, argv,
    /// cwd, hash) from its exec, its fork or the `/proc` seed.
    pub(crate) fn known_process(&mut self, tgid: u32, tid: u32, t: &TaskRaw) -> Box<Process> {
        let mut process = self.process(tgid, tid, t);
        match self.table.get(&process.guid) {
            Some(k) => inherit_program(&mut process, &k.process),
            None => {
                // Not seen before (e.g. it started while the table was being seeded).
                if let Some(view) = procfs::live_view(tgid, t.start_boottime_ns)
                    && let Some(exe) = view.exe
                {
                    (process.exe, process.exe_raw) = raw_split(exe);
                }
            }
        }
        if process.exe_sha256.is_empty()
            && let Some(key) = self.hash_pending.get(&process.guid)
            && let Some(sha) = self.hasher.lookup_key(key)
        {
            self.hash_pending.remove(&process.guid);
            self.table.set_exe_sha256(&process.guid, sha.clone());
            process.exe_sha256 = sha;
        }
        process
    }

    /// Starts (or finds) the digest of the executable `process` runs (`known`: as the exec
    /// event identified it).
    fn hash_exe(&mut self, process: &mut Process, e: &ExecRaw) {
        self.hash_pending.remove(&process.guid);
        let usable = !(e.exe.deleted || e.exe.truncated || e.exe.pseudo || e.exe.unreadable);
        let known = e.exe_id.map(|k| KnownExe {
            key: FileKey { dev: k.dev, ino: k.ino, mtime_ns: k.mtime_ns, size: k.size },
            path: usable.then(|| Path::new(OsStr::from_bytes(&e.exe.path))),
        });
        match self.hasher.request(process.pid, known) {
            Some((_, Some(sha))) => process.exe_sha256 = sha,
            Some((key, None)) => {
                if self.hash_pending.len() >= HASH_PENDING_MAX {
                    self.hash_pending.clear();
                }
                self.hash_pending.insert(process.guid.clone(), key);
            }
            None => {}
        }
    }

    /// The class of the sensor's path a file record touches ("" when none): the kernel marks
    /// what it found through the inode filter; absolute names are classified here too (a
    /// rename onto a protected name, a file that did not exist at the last filter refresh).
    fn protected_class(&self, kernel_marked: bool, fe: &sensor_proto::v1::FileEvent) -> String {
        let class = [&fe.path, &fe.path2]
            .into_iter()
            .filter(|p| !p.is_empty())
            .find_map(|p| self.protected.classify(p.as_bytes()));
        match class {
            Some(c) => c.to_owned(),
            None if kernel_marked => "other".to_owned(),
            None => String::new(),
        }
    }

    /// GUID and exe of a live process (ptrace targets), from `/proc`.
    fn live_identity(&self, pid: u32) -> (String, String) {
        let Some(ticks) = procfs::start_ticks(pid) else { return (String::new(), String::new()) };
        let start = ticks * guid::NS_PER_TICK;
        let exe = procfs::live_view(pid, start).and_then(|v| v.exe).map(|e| text(&e).0).unwrap_or_default();
        (self.guids.guid(pid, start), exe)
    }

    pub(crate) fn exec(&mut self, e: &ExecRaw, out: &mut Vec<Enriched>) -> Enriched {
        let mut process = self.process(e.header.tgid, e.header.tid, &e.task);
        let (argv, argv_raw) = texts(&e.argv);
        let event = events::exec(e, argv.len());
        let (exe, exe_raw) = raw_split(e.exe.path.clone());
        process.exe_memfd = e.exe.pseudo && e.exe.path.starts_with(b"memfd:");
        process.exe_deleted |= e.exe.deleted;
        process.exe_writable_tmp =
            !e.exe.readonly && matches!(e.exe_fs_magic, TMPFS_MAGIC | RAMFS_MAGIC) && !process.exe_memfd;
        process.exe = exe;
        process.exe_raw = exe_raw;
        process.cwd = raw_split(e.cwd.path.clone()).0;
        process.argv = argv;
        process.argv_raw = argv_raw;
        process.argv_truncated = e.args_truncated;
        self.hash_exe(&mut process, e);
        self.table.on_exec(Process::clone(&process));
        if let Some(session) = self.sessions.observe(&process, &self.table, false)
            && !self.sessions.defer(e.header.boot_ns, &process, &session)
        {
            let rec = self.done(e.header.boot_ns, process.clone(), Event::Session(session));
            out.push(rec);
        }
        self.done(e.header.boot_ns, process, event)
    }
}

/// Sets `s` to `to` (empty for `None`), in its own allocation when it has room.
fn set_text(s: &mut String, to: Option<&str>) {
    s.clear();
    s.push_str(to.unwrap_or_default());
}

/// Copies what a process's program is (exe, argv, cwd, hash, flags) from what is known of it.
fn inherit_program(p: &mut Process, from: &Process) {
    p.exe.clone_from(&from.exe);
    p.exe_raw.clone_from(&from.exe_raw);
    p.argv.clone_from(&from.argv);
    p.argv_raw.clone_from(&from.argv_raw);
    p.argv_truncated = from.argv_truncated;
    p.cwd.clone_from(&from.cwd);
    p.exe_sha256.clone_from(&from.exe_sha256);
    p.exe_memfd = from.exe_memfd;
    p.exe_writable_tmp = from.exe_writable_tmp;
    p.exe_deleted |= from.exe_deleted;
}

/// Texts of byte strings; the raw bytes are kept (all of them, index-aligned) only when some
/// text had to be escaped.
fn texts(items: &[Vec<u8>]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut any_escaped = false;
    let out = items
        .iter()
        .map(|a| {
            let (s, escaped) = text(a);
            any_escaped |= escaped;
            s
        })
        .collect();
    (out, if any_escaped { items.to_vec() } else { Vec::new() })
}

/// Text and, when it had to be escaped, the exact bytes.
fn raw_split(bytes: Vec<u8>) -> (String, Vec<u8>) {
    let (s, escaped) = text(&bytes);
    (s, if escaped { bytes } else { Vec::new() })
}

/// The loss record for records one sink could not write (see `sinks::space`).
pub fn sink_loss(now_boot_ns: u64, l: crate::flow::SinkLoss) -> Enriched {
    Enriched {
        boot_ns: now_boot_ns,
        process: None,
        ancestors: Ancestry::empty(),
        event: Event::Loss(LossEvent {
            kind: "sink".to_owned(),
            reason: l.reason.to_owned(),
            count: l.count,
            first_boot_ns: l.first_boot_ns,
            last_boot_ns: l.last_boot_ns,
            output: l.sink,
            first_seq: l.first_seq,
            last_seq: l.last_seq,
            gap_prev_hash: l.prev_hash,
        }),
    }
}

fn loss(l: LossReport) -> Enriched {
    Enriched {
        boot_ns: l.last_boot_ns,
        process: None,
        ancestors: Ancestry::empty(),
        event: Event::Loss(LossEvent {
            kind: l.kind.to_owned(),
            reason: l.reason.to_owned(),
            count: l.count,
            first_boot_ns: l.first_boot_ns,
            last_boot_ns: l.last_boot_ns,
            ..LossEvent::default()
        }),
    }
}
