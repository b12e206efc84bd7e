//! `--format json`: one JSON document for SIEM/SOAR tooling. Times are RFC 3339 UTC strings;
//! `parent` and edges refer to processes by GUID.

use std::io::{self, Write};

use serde::Serialize;

use super::{Incident, fmt_time, fold::Kind, graph::Role};

#[derive(Serialize)]
struct Doc<'a> {
    query: &'a str,
    matched_records: u64,
    first_match: Option<String>,
    last_match: Option<String>,
    acting: Vec<&'a str>,
    sessions: Vec<SessionJ<'a>>,
    processes: Vec<ProcessJ<'a>>,
    /// [parent GUID, child GUID]
    edges: Vec<[&'a str; 2]>,
    stats: StatsJ<'a>,
}

#[derive(Serialize)]
struct SessionJ<'a> {
    id: u32,
    user: Option<&'a str>,
    auid: Option<u32>,
    tty: Option<&'a str>,
    service: Option<&'a str>,
    remote_address: Option<&'a str>,
    remote_port: Option<u32>,
    leader_guid: Option<&'a str>,
    existing: Option<bool>,
}

#[derive(Serialize)]
struct ProcessJ<'a> {
    guid: &'a str,
    parent_guid: Option<&'a str>,
    role: Role,
    depth: usize,
    pid: u32,
    ppid: u32,
    /// Further sibling processes (same program) folded into this entry, and some of their pids.
    folded_processes: u64,
    folded_pids: &'a [u32],
    exe: &'a str,
    argv: &'a [String],
    execs: &'a [String],
    user: &'a str,
    uid: Option<u32>,
    auid: Option<u32>,
    session_id: Option<u32>,
    tty: &'a str,
    start_time: Option<String>,
    exit: Option<&'a str>,
    /// Alerts raised on this process ("LEVEL: title (rule id)").
    alerts: &'a [String],
    records: u64,
    seen_only_as_ancestor: bool,
    activity: Vec<ActivityJ<'a>>,
    other_events: u64,
}

#[derive(Serialize)]
struct ActivityJ<'a> {
    kind: Kind,
    text: String,
    count: u64,
    first: Option<String>,
    last: Option<String>,
    /// Up to 8 distinct items (paths, "a → b", addresses).
    items: Vec<&'a str>,
    matched: bool,
}

#[derive(Serialize)]
struct StatsJ<'a> {
    files: usize,
    records: u64,
    records_in_window: u64,
    damaged: &'a [String],
    not_indexed: u64,
    descendants_not_shown: u64,
    acting_not_followed: u64,
}

fn set(v: u32) -> Option<u32> {
    (v != u32::MAX).then_some(v)
}

fn opt_time(t: Option<std::time::SystemTime>) -> Option<String> {
    t.map(|t| fmt_time(Some(t)))
}

pub fn write(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    let guid_of = |i: usize| inc.nodes[i].guid.as_str();
    let doc = Doc {
        query: &inc.query,
        matched_records: inc.matched_records,
        first_match: opt_time(inc.first_match),
        last_match: opt_time(inc.last_match),
        acting: inc.acting().map(guid_of).collect(),
        sessions: inc
            .sessions
            .iter()
            .map(|s| {
                let e = s.event.as_ref();
                SessionJ {
                    id: s.id,
                    user: e.map(|e| e.user.as_str()),
                    auid: e.map(|e| e.auid),
                    tty: e.map(|e| e.tty.as_str()),
                    service: e.map(|e| e.service.as_str()),
                    remote_address: e.map(|e| e.remote_address.as_str()),
                    remote_port: e.map(|e| e.remote_port),
                    leader_guid: e.map(|e| e.leader_guid.as_str()),
                    existing: e.map(|e| e.existing),
                }
            })
            .collect(),
        processes: inc
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ProcessJ {
                guid: &n.guid,
                parent_guid: inc.edges.iter().find(|e| e.1 == i).map(|e| guid_of(e.0)),
                role: n.role,
                depth: inc.depth[i],
                pid: n.pid,
                ppid: n.ppid,
                folded_processes: n.folded,
                folded_pids: &n.folded_pids,
                exe: &n.exe,
                argv: &n.argv,
                execs: &n.execs,
                user: &n.user,
                uid: set(n.uid),
                auid: set(n.auid),
                session_id: set(n.session_id),
                tty: &n.tty,
                start_time: opt_time(n.start_time),
                exit: n.exit.as_deref(),
                alerts: &n.alerts,
                records: n.records,
                seen_only_as_ancestor: n.from_ancestry,
                activity: n
                    .activity
                    .groups()
                    .into_iter()
                    .map(|g| ActivityJ {
                        kind: g.kind,
                        text: g.text(),
                        count: g.count,
                        first: opt_time(g.first),
                        last: opt_time(g.last),
                        items: g.items().collect(),
                        matched: g.matched,
                    })
                    .collect(),
                other_events: n.activity.other,
            })
            .collect(),
        edges: inc.edges.iter().map(|&(p, c)| [guid_of(p), guid_of(c)]).collect(),
        stats: StatsJ {
            files: inc.stats.files,
            records: inc.stats.records,
            records_in_window: inc.stats.in_window,
            damaged: &inc.stats.damaged,
            not_indexed: inc.stats.not_indexed,
            descendants_not_shown: inc.stats.descendants_more,
            acting_not_followed: inc.acting_more,
        },
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
