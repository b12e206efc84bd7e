//! `sensor trace`: from one suspicious record back to its source.
//!
//! Two streaming passes over the record files, memory bounded by the number of processes (not
//! of records):
//! 1. every record: parent links (GUID → parent GUID, from each record's process and ancestry),
//!    login sessions, and the records that match the query → the acting processes;
//! 2. records of the processes in the view — the acting processes, their ancestors and their
//!    descendants — fill in each process and fold what it did.
//!
//! The result, an [`Incident`], is rendered as a tree, JSON, DOT or SVG.

pub mod dot;
pub mod fold;
pub mod graph;
pub mod json;
mod progress;
pub mod svg;
pub mod tree;

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use sensor_proto::{
    AuditRecord, Timestamp,
    v1::{SessionEvent, audit_record::Event},
};

use crate::recordfile::{
    expand_paths,
    reader::{Frame, RecordReader},
};
use graph::{Key, Node, ParentIndex, Role, key};
use progress::Progress;

/// Processes in the view at most (ancestors and acting processes always; descendants fill the
/// rest).
pub const MAX_VIEW: usize = 500;
/// Acting processes followed at most (a query such as `--session` may match many).
pub const MAX_ACTING: usize = 64;
/// Characters of a command line kept for a process started outside the view.
const STARTED_CHARS: usize = 240;
/// Login sessions remembered from pass 1.
const MAX_SESSIONS: usize = 4096;
/// Activity of ancestors is shown from this long before the first acting process started: an
/// ancestor such as a web server or sshd does much that has nothing to do with the incident.
pub const ANCESTOR_LOOKBACK: Duration = Duration::from_secs(300);

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Guid(String),
    /// A connection to (or from, or a datagram to) an address, optionally a port; or a DNS
    /// query for a name.
    Connect {
        host: ConnectHost,
        port: Option<u32>,
    },
    /// A file event on this path (or below it, for a directory).
    File(String),
    /// Processes of a login session (audit session id).
    Session(u32),
    /// An alert record (its `seq`): the records that triggered it are the matches, their
    /// processes and the alert's own process the acting processes. Filled in by a first pass:
    /// the sensor instance and trigger seqs of every alert with that seq.
    Alert {
        seq: u64,
        triggers: HashMap<String, HashSet<u64>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectHost {
    Ip(IpAddr),
    Name(String),
}

/// A query: the target and an optional time window.
#[derive(Debug, Clone)]
pub struct Query {
    pub target: Target,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented text: session, ancestors, acting process, descendants, and what each did.
    Tree,
    /// One JSON document for SIEM/SOAR tooling.
    Json,
    /// Graphviz DOT.
    Dot,
    /// An SVG picture, laid out by the sensor itself (no Graphviz needed).
    Svg,
}

impl Target {
    /// Parses `ADDR[:PORT]`, `[V6]:PORT` or a host name (matched against DNS queries).
    pub fn parse_connect(s: &str) -> Result<Self, String> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self::Connect { host: ConnectHost::Ip(sa.ip()), port: Some(u32::from(sa.port())) });
        }
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self::Connect { host: ConnectHost::Ip(ip), port: None });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("`{s}`: bad port `{p}`"))?)),
            None => (s, None),
        };
        if host.is_empty() || host.contains(['/', ' ', '[', ']']) {
            return Err(format!("`{s}`: expected ADDR[:PORT] or a host name"));
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        Ok(Self::Connect { host: ConnectHost::Name(name), port: port.map(u32::from) })
    }

    /// The query as the user would write it.
    pub fn describe(&self) -> String {
        match self {
            Self::Pid(p) => format!("--pid {p}"),
            Self::Guid(g) => format!("--guid {g}"),
            Self::Connect { host, port } => {
                let h = match host {
                    ConnectHost::Ip(IpAddr::V6(ip)) if port.is_some() => format!("[{ip}]"),
                    ConnectHost::Ip(ip) => ip.to_string(),
                    ConnectHost::Name(n) => n.clone(),
                };
                match port {
                    Some(p) => format!("--connect {h}:{p}"),
                    None => format!("--connect {h}"),
                }
            }
            Self::File(p) => format!("--file {p}"),
            Self::Session(s) => format!("--session {s}"),
            Self::Alert { seq, .. } => format!("--alert {seq}"),
        }
    }

    /// The process a record points at, if it matches: the acting process, or for `--pid` and
    /// `--guid` also an ancestor. The flag says the record's event itself is the match.
    fn matches(&self, rec: &AuditRecord) -> Option<(Key, bool)> {
        let p = rec.process.as_ref()?;
        let me = key(&p.guid)?;
        match self {
            Self::Pid(pid) if p.pid == *pid => Some((me, false)),
            Self::Pid(pid) => {
                rec.ancestors.iter().find(|a| a.pid == *pid).and_then(|a| key(&a.guid)).map(|k| (k, false))
            }
            Self::Guid(g) if p.guid == *g => Some((me, false)),
            Self::Guid(g) => {
                rec.ancestors.iter().find(|a| a.guid == *g).and_then(|a| key(&a.guid)).map(|k| (k, false))
            }
            Self::Session(s) => (p.session_id == *s).then_some((me, false)),
            Self::Alert { seq, .. } if is_alert(rec) && rec.seq == *seq => Some((me, false)),
            Self::Connect { .. } | Self::File(_) | Self::Alert { .. } => {
                self.event_matches(rec).then_some((me, true))
            }
        }
    }

    fn event_matches(&self, rec: &AuditRecord) -> bool {
        match (self, &rec.event) {
            (Self::Connect { host: ConnectHost::Ip(ip), port }, Some(Event::Network(n))) => {
                matches!(n.op.as_str(), "connect" | "send" | "accept")
                    && n.remote_address.parse::<IpAddr>().is_ok_and(|a| same_ip(a, *ip))
                    && port.is_none_or(|p| n.remote_port == p)
            }
            (Self::Connect { host: ConnectHost::Name(name), .. }, Some(Event::Dns(d))) => {
                d.name.trim_end_matches('.').eq_ignore_ascii_case(name)
            }
            (Self::Alert { triggers, .. }, _) => rec
                .host
                .as_ref()
                .and_then(|h| triggers.get(&h.instance_id))
                .is_some_and(|seqs| seqs.contains(&rec.seq)),
            (Self::File(path), Some(Event::File(f))) => {
                let under =
                    |p: &str| p == path || p.strip_prefix(path.as_str()).is_some_and(|r| r.starts_with('/'));
                under(&f.path) || (!f.path2.is_empty() && under(&f.path2))
            }
            _ => false,
        }
    }
}

fn is_alert(rec: &AuditRecord) -> bool {
    matches!(rec.event, Some(Event::Alert(_)))
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.to_canonical() == b.to_canonical()
}

/// `--since`/`--until`: RFC 3339 in UTC (`2026-11-23T12:00:00Z`), or a duration before now
/// (`-1h`, `90m`, `2h ago`).
pub fn parse_time(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let rel = s.trim().trim_start_matches('-').trim_end_matches("ago").trim();
    if let Ok(d) = humantime::parse_duration(rel) {
        return now.checked_sub(d).ok_or_else(|| format!("`{s}`: before the epoch"));
    }
    let abs = s.trim().strip_suffix("+00:00").map_or_else(|| s.trim().to_owned(), |t| format!("{t}Z"));
    humantime::parse_rfc3339_weak(&abs).map_err(|e| {
        format!("`{s}`: expected RFC 3339 UTC time (2026-11-23T12:00:00Z) or a duration (-1h): {e}")
    })
}

/// A protobuf timestamp as `SystemTime` (`None` when unset).
pub fn time(ts: Option<&Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds <= 0 && ts.nanos <= 0 {
        return None;
    }
    let secs = u64::try_from(ts.seconds).ok().filter(|s| *s <= MAX_SECS)?;
    let nanos = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// 9999-12-31T23:59:59Z, the last time RFC 3339 (and the proto3 JSON mapping) can show.
const MAX_SECS: u64 = 253_402_300_799;

/// RFC 3339 UTC with milliseconds, or "?" (no time, or one RFC 3339 cannot show).
pub fn fmt_time(t: Option<SystemTime>) -> String {
    use std::fmt::Write as _;
    let Some(t) = t else { return "?".into() };
    let mut s = String::new();
    match write!(s, "{}", humantime::format_rfc3339_millis(t)) {
        Ok(()) => s,
        Err(_) => "?".into(),
    }
}

/// A login session that processes of the view belong to.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u32,
    /// The session record, when the files hold one.
    pub event: Option<SessionEvent>,
    /// Index of the session's first process in `Incident::nodes`, when in the view.
    pub leader: Option<usize>,
}

/// What the trace found.
#[derive(Debug, Default)]
pub struct Incident {
    pub query: String,
    /// Records that matched the query.
    pub matched_records: u64,
    pub first_match: Option<SystemTime>,
    pub last_match: Option<SystemTime>,
    /// Acting processes not followed (more than `MAX_ACTING`).
    pub acting_more: u64,
    /// Processes in view order: each root, then its subtree depth first (children by start).
    pub nodes: Vec<Node>,
    /// Depth of each node in the tree (0 for roots).
    pub depth: Vec<usize>,
    /// (parent index, child index).
    pub edges: Vec<(usize, usize)>,
    pub sessions: Vec<Session>,
    pub stats: Stats,
}

/// How much was read, and what was left out.
#[derive(Debug, Default)]
pub struct Stats {
    pub files: usize,
    pub records: u64,
    /// Records within --since/--until.
    pub in_window: u64,
    /// Files that ended in a torn or undecodable frame.
    pub damaged: Vec<String>,
    /// Processes not indexed in pass 1 (index full).
    pub not_indexed: u64,
    /// Descendants left out of the view (more than `MAX_VIEW`).
    pub descendants_more: u64,
}

impl Incident {
    /// Indices of the acting processes.
    pub fn acting(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Acting).map(|(i, _)| i)
    }
}

/// Runs a query over record files (directories are expanded to their rotated files).
pub fn trace(paths: &[PathBuf], q: &Query) -> anyhow::Result<Incident> {
    let files = expand_paths(paths)?;
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let mut progress = Progress::new(total);
    let mut inc = Incident { query: q.target.describe(), ..Incident::default() };
    inc.stats.files = files.len();
    let resolved;
    let q = match &q.target {
        Target::Alert { seq, .. } => {
            resolved = Query { target: alert_triggers(&files, *seq)?, since: q.since, until: q.until };
            &resolved
        }
        _ => q,
    };

    let found = find_acting(&files, q, &mut progress, &mut inc)?;
    progress.next_pass();
    if found.acting.is_empty() {
        progress.finish();
        return Ok(inc);
    }
    let mut nodes = view(&found, &mut inc.stats);
    let ancestor_from = found.first_start.and_then(|t| t.checked_sub(ANCESTOR_LOOKBACK));
    // Pass 2: details and activity of the processes in the view.
    scan(&files, q, &mut progress, None, |rec, in_window| {
        absorb(&mut nodes, rec, in_window, ancestor_from, &q.target);
    })?;
    progress.finish();

    let tree = graph::tree_order(nodes, &found.index);
    (inc.nodes, inc.depth, inc.edges) = (tree.nodes, tree.depth, tree.edges);
    attach_sessions(&mut inc, &found.sessions);
    Ok(inc)
}

/// What pass 1 finds.
#[derive(Default)]
struct Found {
    /// Parent links of every process seen.
    index: ParentIndex,
    sessions: HashMap<u32, SessionEvent>,
    /// The acting processes: those of matching records, in order of first match.
    acting: Vec<Key>,
    /// When the first acting process started.
    first_start: Option<SystemTime>,
}

/// Pass 1: parent links, sessions and the records that match `q` (counted in `inc`).
fn find_acting(
    files: &[PathBuf],
    q: &Query,
    progress: &mut Progress,
    inc: &mut Incident,
) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let mut not_followed: HashSet<Key> = HashSet::new();
    (inc.stats.records, inc.stats.in_window) =
        scan(files, q, progress, Some(&mut inc.stats.damaged), |rec, in_window| {
            // Lineage comes from every record: an ancestor may have started long before --since.
            found.index.observe(rec);
            match &rec.event {
                Some(Event::Session(s))
                    if found.sessions.len() < MAX_SESSIONS || found.sessions.contains_key(&s.session_id) =>
                {
                    found.sessions.insert(s.session_id, s.clone());
                }
                _ => {}
            }
            if !in_window {
                return;
            }
            let Some((k, _)) = q.target.matches(rec) else { return };
            inc.matched_records += 1;
            let t = time(rec.time.as_ref());
            inc.first_match = min_time(inc.first_match, t);
            inc.last_match = inc.last_match.max(t);
            if found.acting.contains(&k) {
                return;
            }
            if found.acting.len() >= MAX_ACTING {
                not_followed.insert(k);
                return;
            }
            found.acting.push(k);
            // The match may be an ancestor of the record's process (--pid, --guid).
            let own = rec.process.as_ref().filter(|p| key(&p.guid) == Some(k)).map(|p| p.start_time.as_ref());
            let anc =
                || rec.ancestors.iter().find(|a| key(&a.guid) == Some(k)).map(|a| a.start_time.as_ref());
            let started = own.or_else(anc).and_then(time).or(t);
            found.first_start = min_time(found.first_start, started);
        })?;
    inc.stats.not_indexed = found.index.dropped;
    inc.acting_more = not_followed.len() as u64;
    Ok(found)
}

/// The view: ancestors of every acting process, the acting processes, their descendants (as
/// many as fit in [`MAX_VIEW`]; the rest are counted in `stats`).
fn view(found: &Found, stats: &mut Stats) -> HashMap<Key, Node> {
    let mut nodes: HashMap<Key, Node> = HashMap::new();
    for &k in &found.acting {
        nodes.insert(k, Node::new(k, Role::Acting));
    }
    for &k in &found.acting {
        for a in found.index.chain(k) {
            nodes.entry(a).or_insert_with(|| Node::new(a, Role::Ancestor));
        }
    }
    let acting_set: HashSet<Key> = found.acting.iter().copied().collect();
    let room = MAX_VIEW.saturating_sub(nodes.len());
    let (desc, more) = found.index.descendants(&acting_set, room);
    stats.descendants_more = more;
    for d in desc {
        nodes.entry(d).or_insert_with(|| Node::new(d, Role::Descendant));
    }
    nodes
}

/// Pass 2, one record: fills in the processes of the view it names and folds what it did into
/// its process (or, for a process started outside the view, into its parent). Ancestors' own
/// activity counts from `ancestor_from` on.
fn absorb(
    nodes: &mut HashMap<Key, Node>,
    rec: &AuditRecord,
    in_window: bool,
    ancestor_from: Option<SystemTime>,
    target: &Target,
) {
    let t = time(rec.time.as_ref());
    // Ancestry first: it names a parent that has no records of its own.
    for (i, a) in rec.ancestors.iter().enumerate() {
        if let Some(n) = key(&a.guid).and_then(|k| nodes.get_mut(&k)) {
            let parent = rec.ancestors.get(i + 1).and_then(|p| key(&p.guid));
            n.absorb_ancestor(a, parent);
        }
    }
    // init and kthreadd (pids 1 and 2) are ancestors of everything: what they did is noise.
    let shown = |n: &Node| match n.role {
        _ if !in_window => false,
        Role::Ancestor => n.pid > 2 && ancestor_from.is_none_or(|from| t.is_none_or(|t| t >= from)),
        Role::Acting | Role::Descendant => true,
    };
    let Some(p) = &rec.process else { return };
    if let Some(n) = key(&p.guid).and_then(|k| nodes.get_mut(&k)) {
        n.absorb_process(p, rec.event.as_ref());
        match &rec.event {
            // Alerts mark the process (in every window: they are the verdicts).
            Some(Event::Alert(a)) => n.add_alert(a),
            Some(ev) if shown(n) => n.activity.add(ev, t, target.event_matches(rec)),
            _ => {}
        }
    } else if let (Some(Event::Exec(_)), Some(parent)) =
        (&rec.event, key(&p.parent_guid).and_then(|k| nodes.get_mut(&k)))
    {
        // Started by a process in the view but not in it (e.g. the downloader beside the
        // script): part of what the parent did.
        if shown(parent) {
            let cmd = dot::clip_to(&graph::command_line(&p.exe, &p.argv), STARTED_CHARS);
            parent.activity.add_started(&p.exe, &cmd, t);
        }
    }
}

/// `--alert SEQ`: finds the alert records with that seq (one per sensor run that wrote one) and
/// the records that triggered them.
fn alert_triggers(files: &[PathBuf], seq: u64) -> anyhow::Result<Target> {
    let mut triggers: HashMap<String, HashSet<u64>> = HashMap::new();
    for path in files {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for frame in RecordReader::new(std::io::BufReader::with_capacity(1 << 16, file)) {
            let Frame::Record { record, .. } = frame else { break };
            if let (true, Some(Event::Alert(a))) = (record.seq == seq, &record.event) {
                let instance = record.host.as_ref().map(|h| h.instance_id.clone()).unwrap_or_default();
                triggers.entry(instance).or_default().extend(a.trigger_seqs.iter().copied());
            }
        }
    }
    Ok(Target::Alert { seq, triggers })
}

fn min_time(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Streams every record of `files` to `f`, saying whether it lies in the query's time window;
/// returns how many records there were, and how many in the window.
fn scan(
    files: &[PathBuf],
    q: &Query,
    progress: &mut Progress,
    mut damaged: Option<&mut Vec<String>>,
    mut f: impl FnMut(&AuditRecord, bool),
) -> anyhow::Result<(u64, u64)> {
    let (mut all, mut n) = (0, 0);
    for path in files {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        for frame in RecordReader::new(std::io::BufReader::with_capacity(1 << 16, file)) {
            match frame {
                Frame::Record { offset, record, bytes } => {
                    progress.at(offset + bytes.len() as u64);
                    let t = time(record.time.as_ref());
                    let before = q.since.is_some_and(|s| t.is_some_and(|t| t < s));
                    let after = q.until.is_some_and(|u| t.is_some_and(|t| t > u));
                    all += 1;
                    n += u64::from(!before && !after);
                    f(&record, !before && !after);
                }
                Frame::Damaged { offset, reason } => {
                    if let Some(d) = damaged.as_deref_mut() {
                        d.push(format!("{}: at byte {offset}: {reason}", path.display()));
                    }
                    break;
                }
            }
        }
        progress.file_done(len);
    }
    Ok((all, n))
}

fn attach_sessions(inc: &mut Incident, sessions: &HashMap<u32, SessionEvent>) {
    let mut ids: Vec<u32> =
        inc.nodes.iter().map(|n| n.session_id).filter(|&s| s != u32::MAX && s != 0).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let event = sessions.get(&id).cloned();
        let leader = event.as_ref().and_then(|e| inc.nodes.iter().position(|n| n.guid == e.leader_guid));
        inc.sessions.push(Session { id, event, leader });
    }
}

/// Renders an incident.
pub fn render(inc: &Incident, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Tree => tree::write(inc, out),
        Format::Json => json::write(inc, out),
        Format::Dot => dot::write(inc, out),
        Format::Svg => svg::write(inc, out),
    }
}

#[cfg(test)]
pub(crate) mod tests;
