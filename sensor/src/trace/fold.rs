//! What a process did, folded: repetitive events become one line with a count ("renamed 1,204
//! files *.docx → *.locked under /srv/share"). Memory per process is bounded: at most
//! `MAX_GROUPS` lines and `MAX_DISTINCT` remembered items per line; the rest is only counted.

use std::{collections::BTreeSet, time::SystemTime};

use sensor_proto::v1::{FileEvent, NetworkEvent, audit_record::Event};

/// Folded lines kept per process; further kinds of activity are counted in `Activity::other`.
pub const MAX_GROUPS: usize = 64;
/// Distinct items (paths, renames) remembered per line.
pub const MAX_DISTINCT: usize = 8;
/// Items named in a line before it is summarised instead ("wrote a, b, c" vs "wrote 12 files").
const LISTED: usize = 3;

/// The kind of a folded line; the order is the order of importance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SensitiveRead,
    Privilege,
    Write,
    Rename,
    Delete,
    FileOther,
    DeniedOpen,
    /// A process outside the view that this one started (e.g. the downloader next to the script).
    Started,
    Connect,
    Accept,
    Listen,
    Send,
    Dns,
    Kernel,
}

/// One folded line.
#[derive(Debug, Clone)]
pub struct Group {
    pub kind: Kind,
    /// What makes events the same line (never shown).
    key: String,
    /// Verb phrase, e.g. "wrote", "renamed", "connected tcp to".
    verb: String,
    pub count: u64,
    pub first: Option<SystemTime>,
    pub last: Option<SystemTime>,
    /// Distinct items seen (paths, "a → b", addresses), at most `MAX_DISTINCT`.
    items: BTreeSet<String>,
    /// More distinct items than `items` holds.
    items_overflow: bool,
    /// Longest common directory of the paths (for "under DIR").
    common_dir: Option<String>,
    /// Summary template for many items, e.g. "files *.docx → *.locked".
    many: String,
    /// A record of this line matched the query.
    pub matched: bool,
}

impl Group {
    /// The line as text, e.g. "renamed 1,204 files *.docx → *.locked under /srv".
    pub fn text(&self) -> String {
        let listed = self.items.len() <= LISTED && !self.items_overflow;
        if !listed {
            let mut s = format!("{} {} {}", self.verb, thousands(self.count), self.many);
            if let Some(d) = self.common_dir.as_deref().filter(|d| !d.is_empty()) {
                s.push_str(&format!(" under {d}"));
            }
            return s;
        }
        let list: Vec<&str> = self.items.iter().map(String::as_str).collect();
        let mut s = format!("{} {}", self.verb, list.join(", "));
        if self.count > self.items.len() as u64 {
            s.push_str(&format!(" (×{})", thousands(self.count)));
        }
        s
    }

    fn absorb_time(&mut self, first: Option<SystemTime>, last: Option<SystemTime>) {
        if first.is_some() && (self.first.is_none() || first < self.first) {
            self.first = first;
        }
        if last > self.last {
            self.last = last;
        }
    }

    fn absorb_item(&mut self, item: String) {
        if !self.items.contains(&item) {
            if self.items.len() < MAX_DISTINCT {
                self.items.insert(item);
            } else {
                self.items_overflow = true;
            }
        }
    }

    fn absorb_dir(&mut self, dir: &str) {
        self.common_dir = Some(match self.common_dir.take() {
            None => dir.to_owned(),
            Some(c) => common_prefix_dir(&c, dir),
        });
    }

    /// Up to `MAX_DISTINCT` of the distinct items (for JSON).
    pub fn items(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(String::as_str)
    }
}

/// The folded activity of one process.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    groups: Vec<Group>,
    /// Events not given a line because `MAX_GROUPS` was reached.
    pub other: u64,
}

/// One event reduced to what folding needs.
pub struct Fact {
    pub kind: Kind,
    /// Events with the same kind and key fold into one line.
    pub key: String,
    pub verb: String,
    pub item: String,
    pub path: Option<String>,
    /// What a folded line counts ("times", "names", "files *.txt").
    pub many: String,
}

impl Fact {
    /// A fact keyed by `key`, counted in "times".
    pub fn simple(kind: Kind, key: String, verb: &str, item: String) -> Self {
        Self { kind, key, verb: verb.to_owned(), item, path: None, many: "times".into() }
    }
}

/// How a record kind folds into a process's activity in `sensor trace`. Every record kind
/// implements it in its module under `crate::kinds`; `None` for what is not activity of a
/// process (the tree's own nodes and edges, alerts, the sensor's own records).
pub trait Traced {
    fn fact(&self) -> Option<Fact>;
}

impl Activity {
    /// Folds one event; events that are not activity (exec, fork, exit, ...) are ignored.
    pub fn add(&mut self, event: &Event, time: Option<SystemTime>, matched: bool) {
        if let Some(f) = fact(event) {
            self.add_fact(f, time, matched);
        }
    }

    fn add_fact(&mut self, f: Fact, time: Option<SystemTime>, matched: bool) {
        let g = match self.groups.iter_mut().position(|g| g.kind == f.kind && g.key == f.key) {
            Some(i) => &mut self.groups[i],
            None if self.groups.len() >= MAX_GROUPS => {
                self.other += 1;
                return;
            }
            None => {
                self.groups.push(Group {
                    kind: f.kind,
                    key: f.key,
                    verb: f.verb,
                    count: 0,
                    first: time,
                    last: time,
                    items: BTreeSet::new(),
                    items_overflow: false,
                    common_dir: None,
                    many: f.many,
                    matched: false,
                });
                let last = self.groups.len() - 1;
                &mut self.groups[last]
            }
        };
        g.count += 1;
        g.matched |= matched;
        g.absorb_time(time, time);
        g.absorb_item(f.item);
        if let Some(p) = f.path {
            g.absorb_dir(parent_dir(&p));
        }
    }

    /// Notes a process this one started that is not in the view.
    pub fn add_started(&mut self, exe: &str, command: &str, time: Option<SystemTime>) {
        let ev = Fact {
            kind: Kind::Started,
            key: exe.to_owned(),
            verb: "started".into(),
            item: command.to_owned(),
            path: None,
            many: format!("processes {exe}"),
        };
        self.add_fact(ev, time, false);
    }

    /// Adds another process's activity (folded sibling processes).
    pub fn merge(&mut self, other: &Activity) {
        for og in &other.groups {
            let full = self.groups.len() >= MAX_GROUPS;
            match self.groups.iter_mut().find(|g| g.kind == og.kind && g.key == og.key) {
                Some(g) => {
                    g.count += og.count;
                    g.matched |= og.matched;
                    g.absorb_time(og.first, og.last);
                    for item in &og.items {
                        g.absorb_item(item.clone());
                    }
                    g.items_overflow |= og.items_overflow;
                    if let Some(d) = &og.common_dir {
                        g.absorb_dir(d);
                    }
                }
                None if full => self.other += og.count,
                None => self.groups.push(og.clone()),
            }
        }
        self.other += other.other;
    }

    /// The lines, oldest first.
    pub fn groups(&self) -> Vec<&Group> {
        let mut v: Vec<&Group> = self.groups.iter().collect();
        v.sort_by_key(|g| (g.first, g.kind));
        v
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.other == 0
    }
}

fn fact(event: &Event) -> Option<Fact> {
    sensor_proto::match_event!(event, x => Traced::fact(x))
}

/// The fact of a file record.
pub fn file_fact(f: &FileEvent) -> Fact {
    let write = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"].iter().any(|w| f.flags.contains(w));
    let failed = f.result < 0;
    let err = result_note(f.result, &f.error);
    let sens = if f.sensitive { " sensitive" } else { "" };
    let (kind, verb) = match f.op.as_str() {
        "open" if failed => (Kind::DeniedOpen, format!("failed to open{sens}")),
        "open" if write => (Kind::Write, format!("wrote{sens}")),
        "open" if f.sensitive => (Kind::SensitiveRead, "read sensitive".to_owned()),
        "open" => (Kind::FileOther, "read".to_owned()),
        "unlink" | "rmdir" => (Kind::Delete, format!("deleted{sens}")),
        "rename" => (Kind::Rename, format!("renamed{sens}")),
        "truncate" => (Kind::Write, format!("truncated{sens}")),
        op => (Kind::FileOther, format!("{op}{sens}")),
    };
    let verb = if failed && kind != Kind::DeniedOpen { format!("{verb} (failed)") } else { verb };
    if kind == Kind::Rename {
        let (from, to) = (ext(&f.path), ext(&f.path2));
        return Fact {
            kind,
            key: format!("{verb}|{from}|{to}|{err}"),
            verb,
            item: format!("{} → {}{err}", f.path, f.path2),
            path: Some(f.path.clone()),
            many: format!("files {} → {}", pattern(from), pattern(to)),
        };
    }
    let e = ext(&f.path);
    // Sensitive files, denied opens and rare operations are listed by path, the rest by type.
    let by_path = f.sensitive || matches!(kind, Kind::DeniedOpen | Kind::FileOther | Kind::SensitiveRead);
    Fact {
        kind,
        key: if by_path { format!("{verb}|{}|{err}", f.path) } else { format!("{verb}|{e}|{err}") },
        item: format!("{}{err}", f.path),
        path: Some(f.path.clone()),
        many: format!("files {}", pattern(e)),
        verb,
    }
}

/// The fact of a network record.
pub fn net_fact(n: &NetworkEvent) -> Fact {
    let remote = endpoint(&n.remote_address, n.remote_port);
    let err = match n.result {
        -115 => String::new(), // EINPROGRESS: a non-blocking connect under way
        r => result_note(r, &n.error),
    };
    let p = &n.protocol;
    let (kind, verb, key, item, many) = match n.op.as_str() {
        "connect" => {
            (Kind::Connect, format!("connected {p} to"), remote.clone(), format!("{remote}{err}"), "times")
        }
        // Peers of an accepting socket differ by source port: fold by address and local port.
        "accept" => (
            Kind::Accept,
            format!("accepted {p} on port {} from", n.local_port),
            n.remote_address.clone(),
            format!("{}{err}", n.remote_address),
            "connections",
        ),
        "bind" | "listen" => {
            let local = endpoint(&n.local_address, n.local_port);
            let verb = if n.op == "bind" { "bound" } else { "listened on" };
            (Kind::Listen, format!("{verb} {p}"), local.clone(), format!("{local}{err}"), "times")
        }
        op => (Kind::Send, format!("{op} {p} to"), remote.clone(), format!("{remote}{err}"), "times"),
    };
    Fact { kind, key: format!("{verb}|{key}|{err}"), verb, item, path: None, many: many.into() }
}

/// "1.2.3.4:80" or "[::1]:80".
pub fn endpoint(addr: &str, port: u32) -> String {
    if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") }
}

/// " (EPERM)" after a failed call's item, "" after a successful one.
pub fn result_note(result: i64, error: &str) -> String {
    match (result < 0, error.is_empty()) {
        (false, _) => String::new(),
        (true, false) => format!(" ({error})"),
        (true, true) => format!(" (error {result})"),
    }
}

/// The extension of a path's last component, with its dot ("" when none).
fn ext(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[i..],
        _ => "",
    }
}

fn pattern(ext: &str) -> String {
    if ext.is_empty() { "*".into() } else { format!("*{ext}") }
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Longest common directory of two directories ("/a/b", "/a/c" → "/a").
fn common_prefix_dir(a: &str, b: &str) -> String {
    let mut out = Vec::new();
    for (x, y) in a.split('/').zip(b.split('/')) {
        if x != y {
            break;
        }
        out.push(x);
    }
    let s = out.join("/");
    if s.is_empty() && a.starts_with('/') && b.starts_with('/') { "/".into() } else { s }
}

/// 1204 → "1,204".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_proto::v1::DnsEvent;

    fn file(op: &str, path: &str, path2: &str, flags: &str) -> Event {
        Event::File(FileEvent {
            op: op.into(),
            path: path.into(),
            path2: path2.into(),
            flags: flags.into(),
            result: 3,
            ..Default::default()
        })
    }

    fn texts(a: &Activity) -> Vec<String> {
        a.groups().iter().map(|g| g.text()).collect()
    }

    #[test]
    fn many_renames_fold_into_one_line_with_a_count() {
        let mut a = Activity::default();
        for i in 0..1204 {
            let dir = if i % 2 == 0 { "/srv/share/a" } else { "/srv/share/b/c" };
            a.add(
                &file("rename", &format!("{dir}/f{i}.docx"), &format!("{dir}/f{i}.locked"), ""),
                None,
                false,
            );
        }
        assert_eq!(texts(&a), vec!["renamed 1,204 files *.docx → *.locked under /srv/share"]);
    }

    #[test]
    fn few_items_are_listed_and_repeats_counted() {
        let mut a = Activity::default();
        a.add(&file("rename", "/t/a.txt", "/t/a.bak", ""), None, false);
        a.add(&file("rename", "/t/b.txt", "/t/b.bak", ""), None, false);
        for _ in 0..3 {
            a.add(&file("open", "/var/log/app.log", "", "O_WRONLY|O_APPEND"), None, false);
        }
        let t = texts(&a);
        assert!(t.contains(&"renamed /t/a.txt → /t/a.bak, /t/b.txt → /t/b.bak".to_owned()), "{t:?}");
        assert!(t.contains(&"wrote /var/log/app.log (×3)".to_owned()), "{t:?}");
    }

    #[test]
    fn sensitive_reads_are_listed_by_path() {
        let mut a = Activity::default();
        let mut ev = file("open", "/etc/shadow", "", "O_RDONLY");
        if let Event::File(f) = &mut ev {
            f.sensitive = true;
        }
        a.add(&ev, None, true);
        let g = a.groups();
        assert_eq!(g[0].kind, Kind::SensitiveRead);
        assert_eq!(g[0].text(), "read sensitive /etc/shadow");
        assert!(g[0].matched);
    }

    #[test]
    fn connections_and_dns_fold_by_peer() {
        let mut a = Activity::default();
        let conn = |port, result| {
            Event::Network(NetworkEvent {
                op: "connect".into(),
                protocol: "tcp".into(),
                remote_address: "127.0.0.1".into(),
                remote_port: port,
                result,
                error: if result == -111 { "ECONNREFUSED".into() } else { String::new() },
                ..Default::default()
            })
        };
        a.add(&conn(4444, 0), None, false);
        a.add(&conn(4444, -115), None, false);
        a.add(&conn(5555, -111), None, false);
        let dns = Event::Dns(DnsEvent { name: "x.example".into(), r#type: "A".into(), ..Default::default() });
        a.add(&dns, None, false);
        a.add(&dns, None, false);
        let t = texts(&a);
        assert!(t.contains(&"connected tcp to 127.0.0.1:4444 (×2)".to_owned()), "{t:?}");
        assert!(t.contains(&"connected tcp to 127.0.0.1:5555 (ECONNREFUSED)".to_owned()), "{t:?}");
        assert!(t.contains(&"resolved x.example (A) (×2)".to_owned()), "{t:?}");
    }

    #[test]
    fn groups_and_items_are_bounded() {
        let mut a = Activity::default();
        for i in 0..(MAX_GROUPS + 10) {
            a.add(&file("chmod", &format!("/x/{i}"), "", ""), None, false);
        }
        assert_eq!(a.groups().len(), MAX_GROUPS);
        assert_eq!(a.other, 10);
        let mut b = Activity::default();
        for i in 0..100 {
            b.add(&file("open", &format!("/d/{i}.txt"), "", "O_WRONLY|O_CREAT"), None, false);
        }
        let g = b.groups();
        assert_eq!(g[0].items().count(), MAX_DISTINCT);
        assert_eq!(g[0].text(), "wrote 100 files *.txt under /d");
    }

    #[test]
    fn helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(ext("/a/b.tar.gz"), ".gz");
        assert_eq!(ext("/a/.bashrc"), "");
        assert_eq!(common_prefix_dir("/a/b", "/a/c/d"), "/a");
        assert_eq!(common_prefix_dir("/a", "/b"), "/");
        assert_eq!(endpoint("::1", 80), "[::1]:80");
    }
}
