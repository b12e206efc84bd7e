//! The process graph: parent links collected in pass 1 (compact, for every process seen), and
//! the nodes of the incident view filled in pass 2 (only the processes in the view).
//!
//! Processes are keyed by GUID, never by pid: the same pid after reuse, or after a sensor
//! restart, is a different process with a different GUID.

use std::{
    collections::{HashMap, HashSet},
    time::SystemTime,
};

use sensor_proto::{
    AuditRecord,
    v1::{Ancestor, Process, audit_record::Event},
};
use sha2::Digest as _;

use super::fold::Activity;

/// A compact process key: the GUID as a 128-bit number (a hash for non-UUID GUIDs).
pub type Key = u128;

/// Processes indexed in pass 1 at most (about 50 bytes each); more are counted, not indexed.
pub const MAX_INDEXED: usize = 2_000_000;
/// Depth at which a parent walk stops (a cycle in damaged data must not loop).
const MAX_DEPTH: usize = 128;
/// Arguments kept per node, and characters per argument.
const MAX_ARGS: usize = 24;
const MAX_ARG_CHARS: usize = 200;
/// Distinct programs remembered per node (a process may exec several times).
const MAX_EXECS: usize = 8;
/// Sibling processes running the same program fold into one node from this many on.
pub const FOLD_SIBLINGS: usize = 3;
/// Pids named in a node that stands for several folded sibling processes.
const MAX_FOLDED_PIDS: usize = 8;

/// The key of a GUID string; `None` when empty.
pub fn key(guid: &str) -> Option<Key> {
    if guid.is_empty() {
        return None;
    }
    if let Ok(u) = uuid::Uuid::parse_str(guid) {
        return Some(u.as_u128());
    }
    let h = sha2::Sha256::digest(guid.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Some(u128::from_be_bytes(b))
}

/// Pass 1: child → parent for every process seen, from each record's process and its ancestors.
#[derive(Debug, Default)]
pub struct ParentIndex {
    parents: HashMap<Key, Key>,
    /// Processes not indexed because the index was full.
    pub dropped: u64,
}

impl ParentIndex {
    /// Learns the parent links a record carries.
    pub fn observe(&mut self, rec: &AuditRecord) {
        let Some(p) = &rec.process else { return };
        let Some(me) = key(&p.guid) else { return };
        let parent = key(&p.parent_guid).or_else(|| match &rec.event {
            Some(Event::Fork(f)) => key(&f.parent_guid),
            _ => None,
        });
        if let Some(parent) = parent {
            self.link(me, parent);
        }
        let mut child = me;
        for a in &rec.ancestors {
            let Some(k) = key(&a.guid) else { break };
            self.link(child, k);
            child = k;
        }
    }

    fn link(&mut self, child: Key, parent: Key) {
        if child == parent || self.parents.contains_key(&child) {
            return;
        }
        if self.parents.len() >= MAX_INDEXED {
            self.dropped += 1;
            return;
        }
        self.parents.insert(child, parent);
    }

    pub fn parent(&self, k: Key) -> Option<Key> {
        self.parents.get(&k).copied()
    }

    /// Ancestors of `k`, nearest first.
    pub fn chain(&self, k: Key) -> Vec<Key> {
        let mut out = Vec::new();
        let mut cur = k;
        while let Some(p) = self.parent(cur) {
            if out.len() >= MAX_DEPTH || p == k || out.contains(&p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    /// Descendants of `roots` (not the roots themselves), at most `cap`, nearest generations
    /// first; also how many more there were. One scan of the index per generation, so no child
    /// index is built.
    pub fn descendants(&self, roots: &HashSet<Key>, cap: usize) -> (Vec<Key>, u64) {
        let mut seen: HashSet<Key> = roots.clone();
        let mut frontier: HashSet<Key> = roots.clone();
        let mut out = Vec::new();
        let mut more = 0u64;
        for _ in 0..MAX_DEPTH {
            let mut next = HashSet::new();
            for (&child, parent) in &self.parents {
                if frontier.contains(parent) && !seen.contains(&child) {
                    seen.insert(child);
                    next.insert(child);
                    if out.len() < cap {
                        out.push(child);
                    } else {
                        more += 1;
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        (out, more)
    }
}

/// Where a node stands relative to what the query matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// On the chain above an acting process.
    Ancestor,
    /// A process whose record matched the query.
    Acting,
    /// Started (directly or not) by an acting process.
    Descendant,
}

/// One process of the incident view.
#[derive(Debug)]
pub struct Node {
    pub key: Key,
    pub guid: String,
    pub parent: Option<Key>,
    pub role: Role,
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    /// `argv` came from an ancestry entry that was cut (a later whole one replaces it).
    argv_cut: bool,
    pub user: String,
    pub uid: u32,
    pub auid: u32,
    pub login_user: String,
    pub session_id: u32,
    pub tty: String,
    pub start_time: Option<SystemTime>,
    /// Programs this process ran (exec records), in order.
    pub execs: Vec<String>,
    /// "exit 0", "killed by signal 9", ...
    pub exit: Option<String>,
    /// Records whose acting process this is.
    pub records: u64,
    /// Known only from other processes' ancestry (e.g. started before the sensor, `/proc` seed).
    pub from_ancestry: bool,
    pub activity: Activity,
    /// Further sibling processes folded into this node (same program, no children of their
    /// own), e.g. one `mv` per encrypted file; a few of their pids.
    pub folded: u64,
    pub folded_pids: Vec<u32>,
    /// Alerts raised on this process: "LEVEL: title (rule id)", at most [`MAX_ALERTS`].
    pub alerts: Vec<String>,
}

/// Alerts remembered per process in a trace.
pub const MAX_ALERTS: usize = 8;

impl Node {
    pub fn new(key: Key, role: Role) -> Self {
        Self {
            key,
            guid: String::new(),
            parent: None,
            role,
            pid: 0,
            ppid: 0,
            exe: String::new(),
            argv: Vec::new(),
            argv_cut: false,
            user: String::new(),
            uid: u32::MAX,
            auid: u32::MAX,
            login_user: String::new(),
            session_id: u32::MAX,
            tty: String::new(),
            start_time: None,
            execs: Vec::new(),
            exit: None,
            records: 0,
            from_ancestry: true,
            activity: Activity::default(),
            folded: 0,
            folded_pids: Vec::new(),
            alerts: Vec::new(),
        }
    }

    /// Remembers an alert raised on this process (once per rule).
    pub fn add_alert(&mut self, a: &sensor_proto::v1::AlertEvent) {
        let line = format!("{}: {} ({})", a.level, a.title, a.rule_id);
        if self.alerts.len() < MAX_ALERTS && !self.alerts.contains(&line) {
            self.alerts.push(line);
        }
    }

    /// Takes what a record of this process says about it. Records queued after the process
    /// exited may carry only its GUIDs, so empty fields never overwrite known ones.
    pub fn absorb_process(&mut self, p: &Process, event: Option<&Event>) {
        self.records += 1;
        self.from_ancestry = false;
        set_str(&mut self.guid, &p.guid);
        if let Some(k) = key(&p.parent_guid) {
            self.parent = Some(k);
        }
        set_num(&mut self.pid, p.pid);
        set_num(&mut self.ppid, p.ppid);
        let exec = matches!(event, Some(Event::Exec(_)));
        if !p.exe.is_empty() && (exec || self.exe.is_empty()) {
            self.exe.clone_from(&p.exe);
            self.argv = short_argv(&p.argv);
        }
        // The same image twice in a row is one program (e.g. a record file read twice).
        if exec && !p.exe.is_empty() && self.execs.len() < MAX_EXECS && self.execs.last() != Some(&p.exe) {
            self.execs.push(p.exe.clone());
        }
        // A record with an empty exe carries only ids: its credentials are not known.
        if !p.exe.is_empty() {
            self.uid = p.uid;
            set_str(&mut self.user, &p.user);
            self.auid = p.auid;
            set_str(&mut self.login_user, &p.login_user);
            if p.session_id != 0 {
                self.session_id = p.session_id;
            }
            set_str(&mut self.tty, &p.tty);
        }
        if self.start_time.is_none() {
            self.start_time = super::time(p.start_time.as_ref());
        }
        if let Some(Event::Exit(e)) = event {
            self.exit = Some(if e.signal != 0 {
                format!("killed by signal {}{}", e.signal, if e.core_dumped { " (core dumped)" } else { "" })
            } else {
                format!("exit {}", e.code)
            });
        }
    }

    /// Fills a node that has no records of its own from another record's ancestry entry.
    pub fn absorb_ancestor(&mut self, a: &Ancestor, parent: Option<Key>) {
        if !self.from_ancestry {
            return;
        }
        set_str(&mut self.guid, &a.guid);
        if self.parent.is_none() {
            self.parent = parent;
        }
        set_num(&mut self.pid, a.pid);
        // Above the parent, a record's ancestors carry cut command lines; the entry of a record
        // whose parent this process is has it whole.
        let whole_now = self.argv_cut && !a.argv_truncated;
        if !a.exe.is_empty() && (self.exe.is_empty() || whole_now) {
            self.exe.clone_from(&a.exe);
            self.argv = short_argv(&a.argv);
            self.argv_cut = a.argv_truncated;
        }
        if self.uid == u32::MAX {
            self.uid = a.uid;
        }
        if a.auid != u32::MAX {
            self.auid = a.auid;
        }
        if a.session_id != u32::MAX && a.session_id != 0 {
            self.session_id = a.session_id;
        }
        if self.start_time.is_none() {
            self.start_time = super::time(a.start_time.as_ref());
        }
    }

    /// Folds a sibling process running the same program into this node.
    pub fn absorb_sibling(&mut self, o: Node) {
        self.folded += 1 + o.folded;
        for pid in std::iter::once(o.pid).chain(o.folded_pids) {
            if self.folded_pids.len() < MAX_FOLDED_PIDS {
                self.folded_pids.push(pid);
            }
        }
        self.activity.merge(&o.activity);
        self.records += o.records;
        if o.start_time.is_some() && (self.start_time.is_none() || o.start_time < self.start_time) {
            self.start_time = o.start_time;
        }
        if o.exit != self.exit {
            self.exit = Some("exit statuses differ".into());
        }
    }

    /// "pid 42", or "6 processes (pids 42, 43, 44, …)" for folded siblings.
    pub fn pid_label(&self) -> String {
        if self.folded == 0 {
            return format!("pid {}", self.pid);
        }
        let pids: Vec<String> = std::iter::once(self.pid)
            .chain(self.folded_pids.iter().copied())
            .map(|p| p.to_string())
            .collect();
        let more = if self.folded as usize + 1 > pids.len() { ", …" } else { "" };
        format!("{} processes (pids {}{more})", self.folded + 1, pids.join(", "))
    }

    /// "alice" or "uid 1000" (or "?" when unknown).
    pub fn user_label(&self) -> String {
        if !self.user.is_empty() {
            self.user.clone()
        } else if self.uid == u32::MAX {
            "?".into()
        } else {
            format!("uid {}", self.uid)
        }
    }

    /// The command line, shell-like, for display.
    pub fn command(&self) -> String {
        command_line(&self.exe, &self.argv)
    }
}

/// "exe (argv…)" for display, or just argv when argv[0] is the exe; arguments cut as in nodes.
pub fn command_line(exe: &str, argv: &[String]) -> String {
    if argv.is_empty() {
        return if exe.is_empty() { "(exe unknown)".into() } else { one_line(exe) };
    }
    let args: Vec<String> = short_argv(argv).iter().map(|a| quote(&one_line(a))).collect();
    let cmd = args.join(" ");
    match argv.first() {
        Some(a0) if a0 == exe || exe.is_empty() => cmd,
        _ => format!("{} ({cmd})", one_line(exe)),
    }
}

/// Control characters (a newline in `python3 -c '…'`) shown as escapes, so a line stays a line.
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn set_str(dst: &mut String, src: &str) {
    if !src.is_empty() {
        src.clone_into(dst);
    }
}

fn set_num(dst: &mut u32, src: u32) {
    if src != 0 {
        *dst = src;
    }
}

fn short_argv(argv: &[String]) -> Vec<String> {
    let mut out: Vec<String> = argv
        .iter()
        .take(MAX_ARGS)
        .map(|a| {
            if a.chars().count() > MAX_ARG_CHARS {
                let mut s: String = a.chars().take(MAX_ARG_CHARS).collect();
                s.push('…');
                s
            } else {
                a.clone()
            }
        })
        .collect();
    if argv.len() > MAX_ARGS {
        out.push(format!("… ({} more)", argv.len() - MAX_ARGS));
    }
    out
}

/// Quotes an argument for display when it has spaces or shell metacharacters.
fn quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_alphanumeric() || "-_./=:,@+%".contains(c)) {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The view's processes in tree order.
#[derive(Debug, Default)]
pub struct Tree {
    /// Each root, then its subtree depth first (children by start time).
    pub nodes: Vec<Node>,
    /// Depth of each node (0 for roots).
    pub depth: Vec<usize>,
    /// (parent index, child index).
    pub edges: Vec<(usize, usize)>,
}

/// Puts the nodes in tree order (roots first, children by start time), folding sibling
/// processes, and makes the edges.
pub fn tree_order(mut nodes: HashMap<Key, Node>, index: &ParentIndex) -> Tree {
    let mut tree = Tree::default();
    for n in nodes.values_mut() {
        if let Some(p) = index.parent(n.key) {
            n.parent = Some(p);
        }
    }
    let mut children: HashMap<Key, Vec<Key>> = HashMap::new();
    let mut roots = Vec::new();
    for n in nodes.values() {
        match n.parent.filter(|p| nodes.contains_key(p)) {
            Some(p) => children.entry(p).or_default().push(n.key),
            None => roots.push(n.key),
        }
    }
    let sort_key = |k: &Key| nodes.get(k).map(|n| (n.start_time, n.pid, n.key));
    roots.sort_by_key(sort_key);
    for c in children.values_mut() {
        c.sort_by_key(sort_key);
    }
    fold_siblings(&mut nodes, &mut children);
    // Depth-first, with an explicit stack (chains can be deep).
    let mut stack: Vec<(Key, usize, Option<usize>)> = roots.iter().rev().map(|&k| (k, 0, None)).collect();
    while let Some((k, depth, parent_idx)) = stack.pop() {
        let Some(n) = nodes.remove(&k) else { continue };
        let idx = tree.nodes.len();
        tree.nodes.push(n);
        tree.depth.push(depth);
        if let Some(p) = parent_idx {
            tree.edges.push((p, idx));
        }
        for &c in children.get(&k).into_iter().flatten().rev() {
            stack.push((c, depth + 1, Some(idx)));
        }
    }
    tree
}

/// Leaf siblings (no children in the view, not acting) that ran the same program fold into
/// the first of them when there are at least `FOLD_SIBLINGS`: a script that runs one `mv` per
/// file shows as one node "1,204 processes … renamed 1,204 files".
fn fold_siblings(nodes: &mut HashMap<Key, Node>, children: &mut HashMap<Key, Vec<Key>>) {
    let has_children: HashSet<Key> =
        children.iter().filter(|(_, c)| !c.is_empty()).map(|(&k, _)| k).collect();
    for kids in children.values_mut() {
        let mut by_exe: HashMap<String, Vec<Key>> = HashMap::new();
        for k in kids.iter() {
            if let Some(n) = nodes.get(k).filter(|n| n.role != Role::Acting && !has_children.contains(k)) {
                by_exe.entry(n.exe.clone()).or_default().push(*k);
            }
        }
        for (_, same) in by_exe.into_iter().filter(|(exe, v)| !exe.is_empty() && v.len() >= FOLD_SIBLINGS) {
            let Some(mut first) = nodes.remove(&same[0]) else { continue };
            for o in same[1..].iter().filter_map(|k| nodes.remove(k)) {
                first.absorb_sibling(o);
            }
            nodes.insert(same[0], first);
        }
        kids.retain(|k| nodes.contains_key(k));
    }
}

#[cfg(test)]
mod tests;
