//! The sensor's view of live and recently exited processes.
//!
//! Entries are keyed by process GUID (see [`super::guid`]); live processes are also indexed by
//! pid. An exited process is kept while some process below it in the tree is still in the table
//! (it may be needed for that process's ancestry), and after its exit until its last file and
//! network events have been enriched: they travel in the bulk queue, behind the lineage queue
//! that carries the exit, and must still find its exe, argv and ancestors. That is known from
//! the bulk readers' mark ([`ProcessTable::settle`]): once every bulk event stamped up to
//! [`TableLimits::exit_settle_ns`] after the exit has been enriched, the entry goes. Without the
//! mark it goes [`TableLimits::exit_grace_ns`] after the exit, by event time. A fork+exec storm
//! of a thousand processes a second held ten seconds of exited processes (40 MiB more, growing);
//! with the mark it holds about one.
//! Memory is bounded by [`TableLimits::max_entries`]: beyond it, exited entries are evicted
//! oldest-first, then the oldest live ones.

pub(crate) mod seed;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::Path,
    sync::Arc,
};

use sensor_proto::v1::{Ancestor, Process};

use super::{
    ancestry::{Ancestry, capped},
    clock::BootClock,
    guid::GuidMaker,
};
use crate::fastmap::FastMap;

/// `auid` / `session_id` value meaning "not set".
pub const UNSET: u32 = u32::MAX;

/// Default of [`TableLimits::ancestor_argv_bytes`].
pub const DEFAULT_ANCESTOR_ARGV_BYTES: usize = 256;

/// Bounds of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLimits {
    /// Most entries (live and exited) kept.
    pub max_entries: usize,
    /// Most ancestors returned by [`ProcessTable::ancestors`].
    pub max_ancestors: usize,
    /// How long (boot ns, by event time) an exited process stays at most for events still
    /// queued, when the bulk queues' mark does not let it go earlier.
    pub exit_grace_ns: u64,
    /// How far past an exit the bulk queues' mark must be before the exited process goes (see
    /// [`ProcessTable::settle`]): its files and sockets are closed after the exit event
    /// (`exit_files` follows the `sched_process_exit` tracepoint), and those events are stamped
    /// later than the exit.
    pub exit_settle_ns: u64,
    /// Most bytes of encoded ancestries the table keeps for reuse (see
    /// [`ProcessTable::ancestry`]): a few hundred processes with records need well under
    /// 1 MiB; a crafted tree of deep chains with long command lines could otherwise hold an
    /// ancestry copy per process. Past it, ancestries are built per record, as before.
    pub ancestry_cache_bytes: usize,
    /// Most bytes of command line kept for each ancestor above the parent (see
    /// [`super::ancestry::capped`]).
    pub ancestor_argv_bytes: usize,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_entries: 65536,
            max_ancestors: 16,
            exit_grace_ns: 10_000_000_000,
            exit_settle_ns: 1_000_000_000,
            ancestry_cache_bytes: 2 << 20,
            ancestor_argv_bytes: DEFAULT_ANCESTOR_ARGV_BYTES,
        }
    }
}

/// One process known to the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcEntry {
    /// The process as last seen (`guid`, `pid`, `ppid`, `start_boot_ns`, `parent_guid` are set).
    pub process: Process,
    /// GUID of the parent, when known.
    pub parent_guid: Option<String>,
    /// When it exited (boot ns); `None` while it lives.
    pub exited_boot_ns: Option<u64>,
    /// Children still in the table (live, or exited but kept for their own descendants).
    live_children: u32,
    /// Position in the live or exited age order.
    order: u64,
    /// This process's ancestry as of table generation `.0` (see [`ProcessTable::ancestry`]).
    ancestry: Option<(u64, Arc<Ancestry>)>,
}

impl ProcEntry {
    /// Children of this process that are still in the table.
    pub fn live_children(&self) -> u32 {
        self.live_children
    }

    /// The process has not exited (as far as the table knows).
    pub fn is_live(&self) -> bool {
        self.exited_boot_ns.is_none()
    }
}

/// Counters of the table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// Entries of live processes.
    pub live: usize,
    /// Entries of exited processes kept for their descendants.
    pub exited: usize,
    /// Entries dropped because the table was full.
    pub evicted: u64,
    /// Exited entries removed because nothing needs them any more.
    pub retired: u64,
}

/// Result of [`ProcessTable::seed_from_proc`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedStats {
    /// Processes read and inserted.
    pub seeded: usize,
    /// Pid directories that could not be read (vanished, threads, unreadable).
    pub skipped: usize,
}

/// Live and recently exited processes, keyed by GUID.
#[derive(Debug)]
pub struct ProcessTable {
    limits: TableLimits,
    guids: GuidMaker,
    entries: FastMap<String, ProcEntry>,
    /// pid → GUID of the live process with that pid.
    by_pid: FastMap<u32, String>,
    /// Age orders (insertion for live entries, exit for exited ones) → GUID.
    live_order: BTreeMap<u64, String>,
    exited_order: BTreeMap<u64, String>,
    /// Children in the table whose parent GUID is not (yet, or any more) in the table.
    orphans: FastMap<String, u32>,
    next_order: u64,
    evicted: u64,
    retired: u64,
    /// Exited entries no child needs, in exit order: retired once their grace has passed.
    retire_queue: VecDeque<(u64, String)>,
    /// Latest event time seen (boot ns): the clock of the grace period.
    now_boot_ns: u64,
    /// Every bulk (file, network) event stamped before this time has been enriched (see
    /// [`Self::settle`]).
    settled_boot_ns: u64,
    /// Bumped by every change that can change the ancestry of other processes (an exec or a
    /// removal of a process with children in the table, a parent arriving for orphans): cached
    /// ancestries of older generations are rebuilt. A change that can only touch the process's
    /// own ancestry drops just its cache, so a fork+exec storm of leaf processes keeps the rest.
    generation: u64,
    /// Encoded bytes of the ancestries the entries hold (at most `ancestry_cache_bytes`).
    cached_bytes: usize,
}

impl ProcessTable {
    /// An empty table. `guids` must be the maker the records' GUIDs come from: it names parents
    /// that are not in the table yet.
    pub fn new(limits: TableLimits, guids: GuidMaker) -> Self {
        Self {
            limits,
            guids,
            entries: FastMap::default(),
            by_pid: FastMap::default(),
            live_order: BTreeMap::new(),
            exited_order: BTreeMap::new(),
            orphans: FastMap::default(),
            next_order: 0,
            evicted: 0,
            retired: 0,
            retire_queue: VecDeque::new(),
            now_boot_ns: 0,
            settled_boot_ns: 0,
            generation: 0,
            cached_bytes: 0,
        }
    }

    /// Advances the table's clock to `boot_ns` (event time) and retires exited entries no child
    /// needs whose grace period has passed or whose exit the bulk mark has passed (see
    /// [`Self::settle`]).
    pub fn advance(&mut self, boot_ns: u64) {
        self.now_boot_ns = self.now_boot_ns.max(boot_ns);
        while let Some(&(exited, _)) = self.retire_queue.front() {
            let settled = exited.saturating_add(self.limits.exit_settle_ns) <= self.settled_boot_ns;
            let graced = exited.saturating_add(self.limits.exit_grace_ns) <= self.now_boot_ns;
            if !settled && !graced {
                break;
            }
            let Some((_, guid)) = self.retire_queue.pop_front() else { break };
            let unneeded =
                self.entries.get(&guid).is_some_and(|e| e.exited_boot_ns.is_some() && e.live_children == 0);
            if unneeded {
                self.remove_entry(&guid);
                self.retired += 1;
            }
        }
    }

    /// Every file and network event stamped before `boot_ns` has been enriched: exited
    /// entries no child needs go once the mark is [`TableLimits::exit_settle_ns`] past their
    /// exit, before their grace period is over. Under a backlog the mark lags and they stay
    /// until the grace period ends, as without the mark.
    pub fn settle(&mut self, boot_ns: u64) {
        self.settled_boot_ns = self.settled_boot_ns.max(boot_ns);
        self.advance(self.now_boot_ns);
    }

    /// Inserts every process found in `proc_root` (normally `/proc`), then links parents.
    /// Processes that vanish while being read are skipped.
    pub fn seed_from_proc(&mut self, proc_root: &Path, clock: &BootClock) -> SeedStats {
        let (procs, skipped) = seed::read_all(proc_root, &self.guids, clock);
        let pid_guid: HashMap<u32, String> = procs.iter().map(|p| (p.pid, p.guid.clone())).collect();
        let seeded = procs.len();
        for p in procs {
            let parent = match p.ppid {
                0 => None,
                ppid => pid_guid
                    .get(&ppid)
                    .cloned()
                    .or_else(|| self.live_by_pid(ppid).map(|e| e.process.guid.clone())),
            };
            self.upsert_live(p, parent);
        }
        SeedStats { seeded, skipped }
    }

    /// A new process `child` (its `guid`, `pid`, `start_boot_ns` set) forked by the process
    /// `parent_pid` that started at `parent_start_boot_ns`. The parent need not be known yet.
    pub fn on_fork(&mut self, mut child: Process, parent_pid: u32, parent_start_boot_ns: u64) {
        if child.ppid == 0 {
            child.ppid = parent_pid;
        }
        let parent = self.guids.guid(parent_pid, parent_start_boot_ns);
        self.upsert_live(child, Some(parent));
    }

    /// A process executed a new program: replaces what the entry with `process.guid` knows
    /// (exe, argv, credentials, ...) and keeps its parent link; inserts it if unknown (the parent
    /// is then `process.parent_guid`, or the live process with pid `process.ppid`).
    pub fn on_exec(&mut self, process: Process) {
        let parent = if !process.parent_guid.is_empty() {
            Some(process.parent_guid.clone())
        } else {
            self.live_by_pid(process.ppid)
                .filter(|e| e.process.pid != process.pid)
                .map(|e| e.process.guid.clone())
        };
        self.upsert_live(process, parent);
    }

    /// The process `guid` exited at `boot_ns`. Its entry stays while it has children in the
    /// table.
    pub fn on_exit(&mut self, guid: &str, boot_ns: u64) {
        self.mark_exited(guid, boot_ns);
    }

    /// Records the SHA-256 of the executable of `guid` (computed off the hot path).
    pub fn set_exe_sha256(&mut self, guid: &str, sha256: String) {
        if let Some(e) = self.entries.get_mut(guid) {
            e.process.exe_sha256 = sha256;
        }
    }

    /// Live entries (for the session records of sessions that existed at start).
    pub fn live(&self) -> impl Iterator<Item = &ProcEntry> {
        self.by_pid.values().filter_map(|g| self.entries.get(g))
    }

    /// The entry of `guid`, live or exited.
    pub fn get(&self, guid: &str) -> Option<&ProcEntry> {
        self.entries.get(guid)
    }

    /// The live process with this pid.
    pub fn live_by_pid(&self, pid: u32) -> Option<&ProcEntry> {
        self.by_pid.get(&pid).and_then(|g| self.entries.get(g))
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The limits the table was made with.
    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// Counters and sizes.
    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.live_order.len(),
            exited: self.exited_order.len(),
            evicted: self.evicted,
            retired: self.retired,
        }
    }

    /// The ancestors of `guid` (see [`Self::ancestors`]), shared: built and encoded once, then
    /// handed to every record of the process until something changes an ancestry.
    pub fn ancestry(&mut self, guid: &str) -> Arc<Ancestry> {
        let generation = self.generation;
        if let Some((g, a)) = self.entries.get(guid).and_then(|e| e.ancestry.as_ref())
            && *g == generation
        {
            return Arc::clone(a);
        }
        let a = match self.built_from_parent(guid) {
            Some(a) => Arc::new(a),
            None => Ancestry::shared(self.ancestors(guid)),
        };
        let Some(e) = self.entries.get_mut(guid) else {
            return a;
        };
        let stale = e.ancestry.take().map_or(0, |(_, old)| old.encoded().len());
        self.cached_bytes -= stale;
        let size = a.encoded().len();
        if self.cached_bytes + size <= self.limits.ancestry_cache_bytes {
            e.ancestry = Some((generation, Arc::clone(&a)));
            self.cached_bytes += size;
        }
        a
    }

    /// The ancestry of `guid` as its parent plus the parent's current shared ancestry, when
    /// that is what [`Self::ancestors`] would give: same login session (the same stop rule),
    /// room for one more under `max_ancestors` (the parent's walk was not cut short), and no
    /// cycle through `guid`. A new process's first record then costs one ancestor, not a walk.
    fn built_from_parent(&self, guid: &str) -> Option<Ancestry> {
        let me = self.entries.get(guid)?;
        let parent = self.entries.get(me.parent_guid.as_deref()?)?;
        let (generation, rest) = parent.ancestry.as_ref()?;
        let usable = *generation == self.generation
            && me.process.pid != 1
            && parent.process.session_id == me.process.session_id
            && rest.len() < self.limits.max_ancestors
            && parent.process.guid != guid
            && rest.iter().all(|a| a.guid != guid);
        usable.then(|| Ancestry::prepend(ancestor_of(&parent.process), rest, self.limits.ancestor_argv_bytes))
    }

    /// Encoded bytes of the ancestries kept for reuse.
    pub fn cached_ancestry_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Ancestors of `guid`, parent first. Stops after pid 1, after `max_ancestors`, at an unknown
    /// parent, and, when the process has a login session, after the first ancestor outside
    /// that session (the service that started it, e.g. sshd). The parent's command line is
    /// whole, those above it cut to `ancestor_argv_bytes`.
    pub fn ancestors(&self, guid: &str) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let Some(me) = self.entries.get(guid) else {
            return out;
        };
        let session = me.process.session_id;
        let mut cur = me;
        while out.len() < self.limits.max_ancestors && cur.process.pid != 1 {
            let Some(pg) = cur.parent_guid.as_deref() else {
                break;
            };
            // Seen before: a cycle (inconsistent events): never loop. (At most `max_ancestors`
            // to compare with, cheaper than a set.)
            if pg == guid || out.iter().any(|a: &Ancestor| a.guid == pg) {
                break;
            }
            let Some(parent) = self.entries.get(pg) else {
                break;
            };
            out.push(ancestor_of(&parent.process));
            if session != UNSET && parent.process.session_id != session {
                break;
            }
            cur = parent;
        }
        cap_above_parent(&mut out, self.limits.ancestor_argv_bytes);
        out
    }

    /// Inserts a live process or updates the known entry with the same GUID (keeping its
    /// parent link when it has one).
    fn upsert_live(&mut self, mut process: Process, parent: Option<String>) {
        let guid = process.guid.clone();
        let parent = parent.filter(|p| *p != guid && !p.is_empty());
        if let Some(e) = self.entries.get_mut(&guid) {
            // What it is (exe, argv, ids) is part of its descendants' ancestries, and only
            // children lead to those. Its own ancestry changes only with a parent link or a new
            // login session (where the walk stops): an exec keeps it.
            let link_new = e.parent_guid.is_none() && parent.is_some();
            if link_new || e.process.session_id != process.session_id {
                self.cached_bytes -= e.ancestry.take().map_or(0, |(_, a)| a.encoded().len());
            }
            if e.live_children > 0 {
                self.generation += 1;
            }
            if link_new {
                e.parent_guid.clone_from(&parent);
            }
            process.parent_guid = e.parent_guid.clone().unwrap_or_default();
            if process.ppid == 0 {
                process.ppid = e.process.ppid;
            }
            if process.start_time.is_none() {
                process.start_time = e.process.start_time;
            }
            e.process = process;
            if let (true, Some(p)) = (link_new, parent) {
                self.link_child(p);
            }
            return;
        }
        let pid = process.pid;
        let start = process.start_boot_ns;
        let mut index = true;
        if let Some(old) = self.by_pid.get(&pid).cloned() {
            let old_start = self.entries.get(&old).map_or(0, |e| e.process.start_boot_ns);
            if old_start <= start {
                // pid reuse: the old process is gone even if its exit was never seen
                self.mark_exited(&old, start);
            } else {
                index = false; // a stale event about an older holder of the pid
            }
        }
        process.parent_guid = parent.clone().unwrap_or_default();
        let order = self.bump();
        let live_children = self.orphans.remove(&guid).unwrap_or(0);
        if live_children > 0 {
            // Children whose ancestry stopped at their unknown parent now reach it.
            self.generation += 1;
        }
        let entry = ProcEntry {
            process,
            parent_guid: parent.clone(),
            exited_boot_ns: None,
            live_children,
            order,
            ancestry: None,
        };
        self.entries.insert(guid.clone(), entry);
        self.live_order.insert(order, guid.clone());
        if let Some(p) = parent {
            self.link_child(p);
        }
        if index {
            self.by_pid.insert(pid, guid);
        } else {
            self.mark_exited(&guid, start);
        }
        self.enforce_cap();
    }

    /// Marks `guid` exited; queues it for retirement when no child needs it.
    fn mark_exited(&mut self, guid: &str, boot_ns: u64) {
        let order = self.bump();
        let Some(e) = self.entries.get_mut(guid) else {
            return;
        };
        if e.exited_boot_ns.is_some() {
            return;
        }
        e.exited_boot_ns = Some(boot_ns);
        self.live_order.remove(&e.order);
        e.order = order;
        self.exited_order.insert(order, guid.to_owned());
        let (pid, unneeded) = (e.process.pid, e.live_children == 0);
        if self.by_pid.get(&pid).is_some_and(|g| g == guid) {
            self.by_pid.remove(&pid);
        }
        if unneeded {
            self.retire_later(guid.to_owned(), boot_ns);
        }
    }

    fn retire_later(&mut self, guid: String, exited_boot_ns: u64) {
        self.retire_queue.push_back((exited_boot_ns, guid));
        self.advance(exited_boot_ns);
    }

    /// Counts one more child of `parent`.
    fn link_child(&mut self, parent: String) {
        match self.entries.get_mut(&parent) {
            Some(p) => p.live_children += 1,
            None => *self.orphans.entry(parent).or_insert(0) += 1,
        }
    }

    /// Removes an entry and releases its parent, retiring exited ancestors nothing needs.
    fn remove_entry(&mut self, guid: &str) {
        let Some(e) = self.entries.remove(guid) else {
            return;
        };
        // Ancestries that reached this process (through its children) now stop below it.
        if e.live_children > 0 {
            self.generation += 1;
        }
        self.cached_bytes -= e.ancestry.as_ref().map_or(0, |(_, a)| a.encoded().len());
        if e.exited_boot_ns.is_some() {
            self.exited_order.remove(&e.order);
        } else {
            self.live_order.remove(&e.order);
            if self.by_pid.get(&e.process.pid).is_some_and(|g| g == guid) {
                self.by_pid.remove(&e.process.pid);
            }
        }
        if e.live_children > 0 {
            *self.orphans.entry(guid.to_owned()).or_insert(0) += e.live_children;
        }
        let Some(pg) = e.parent_guid else {
            return;
        };
        let Some(p) = self.entries.get_mut(&pg) else {
            if let Some(n) = self.orphans.get_mut(&pg) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.orphans.remove(&pg);
                }
            }
            return;
        };
        p.live_children = p.live_children.saturating_sub(1);
        if p.live_children > 0 {
            return;
        }
        if let Some(exited) = p.exited_boot_ns {
            // Nothing needs it any more: it goes once its own grace has passed (at once when it
            // exited long ago), and so on up the tree.
            self.retire_queue.push_back((exited, pg));
        }
    }

    /// Evicts exited entries (oldest exit first), then live ones (oldest first), while over the
    /// limit.
    fn enforce_cap(&mut self) {
        while self.entries.len() > self.limits.max_entries {
            let victim = self
                .exited_order
                .first_key_value()
                .or_else(|| self.live_order.first_key_value())
                .map(|(_, g)| g.clone());
            let Some(victim) = victim else {
                break;
            };
            self.remove_entry(&victim);
            self.evicted += 1;
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }
}

/// Cuts the command lines of the ancestors above the parent (`list[0]`) to `argv_max_bytes`.
fn cap_above_parent(list: &mut [Ancestor], argv_max_bytes: usize) {
    for a in list.iter_mut().skip(1) {
        *a = capped(std::mem::take(a), argv_max_bytes);
    }
}

/// The ancestor view of a process.
pub fn ancestor_of(p: &Process) -> Ancestor {
    Ancestor {
        guid: p.guid.clone(),
        pid: p.pid,
        exe: p.exe.clone(),
        argv: p.argv.clone(),
        argv_truncated: p.argv_truncated,
        uid: p.uid,
        auid: p.auid,
        session_id: p.session_id,
        start_time: p.start_time,
    }
}

#[cfg(test)]
mod tests;
