//! `--format tree`: the incident as indented text, root cause first.

use std::io::{self, Write};

use super::{Incident, Session, fmt_time, fold::thousands, graph::Role};

/// Folded lines shown under ancestors (their activity is context, not the incident).
const ANCESTOR_LINES: usize = 6;

pub fn write(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    let s = &inc.stats;
    if inc.nodes.is_empty() {
        writeln!(
            out,
            "no record matches {} ({} records read from {} files)",
            inc.query,
            thousands(s.records),
            s.files
        )?;
        return notes(inc, out);
    }
    let acting = inc.acting().count();
    writeln!(
        out,
        "trace {}: {} matching record{} ({} … {}), {} acting process{}, {} processes shown",
        inc.query,
        thousands(inc.matched_records),
        if inc.matched_records == 1 { "" } else { "s" },
        fmt_time(inc.first_match),
        fmt_time(inc.last_match),
        acting,
        if acting == 1 { "" } else { "es" },
        inc.nodes.len()
    )?;
    for sess in &inc.sessions {
        writeln!(out, "{}", session_line(sess))?;
    }
    writeln!(out)?;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); inc.nodes.len()];
    for &(p, c) in &inc.edges {
        children[p].push(c);
    }
    let has_parent: Vec<bool> = {
        let mut v = vec![false; inc.nodes.len()];
        for &(_, c) in &inc.edges {
            v[c] = true;
        }
        v
    };
    for root in (0..inc.nodes.len()).filter(|&i| !has_parent[i]) {
        node(inc, &children, root, "", None, out)?;
    }
    notes(inc, out)
}

/// "session 3: alice (auid 1000) on pts/0 via sshd from 10.0.0.5:52211".
pub fn session_line(sess: &Session) -> String {
    let Some(e) = &sess.event else {
        return format!("session {} (no session record in these files)", sess.id);
    };
    let mut s =
        format!("session {}: {} (auid {})", sess.id, if e.user.is_empty() { "?" } else { &e.user }, e.auid);
    if !e.tty.is_empty() {
        s.push_str(&format!(" on {}", e.tty));
    }
    if !e.service.is_empty() {
        s.push_str(&format!(" via {}", e.service));
    }
    if !e.remote_address.is_empty() {
        s.push_str(&format!(" from {}", super::fold::endpoint(&e.remote_address, e.remote_port)));
    }
    if e.existing {
        s.push_str(", open before the sensor started");
    }
    s
}

/// One node and, below it, its activity and its children. `last` is None for roots.
fn node(
    inc: &Incident,
    children: &[Vec<usize>],
    i: usize,
    prefix: &str,
    last: Option<bool>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let n = &inc.nodes[i];
    let (branch, cont) = match last {
        None => ("", ""),
        Some(true) => ("└─ ", "   "),
        Some(false) => ("├─ ", "│  "),
    };
    let mark = if n.role == Role::Acting { "▶ " } else { "" };
    let mut tags = Vec::new();
    match n.role {
        Role::Acting => tags.push("ACTING".to_owned()),
        Role::Ancestor | Role::Descendant => {}
    }
    if n.from_ancestry {
        tags.push("seen only as an ancestor (e.g. started before the sensor)".into());
    }
    if let Some(e) = &n.exit {
        tags.push(e.clone());
    }
    for a in &n.alerts {
        tags.push(format!("ALERT {a}"));
    }
    let tags = if tags.is_empty() { String::new() } else { format!("  [{}]", tags.join(", ")) };
    writeln!(
        out,
        "{prefix}{branch}{mark}{}  {}  {}  {}{tags}",
        fmt_time(n.start_time),
        n.pid_label(),
        n.user_label(),
        n.command()
    )?;
    let inner = format!("{prefix}{cont}");
    let kids = &children[i];
    let bar = if kids.is_empty() { "   " } else { "│  " };
    if n.execs.len() > 1 {
        writeln!(out, "{inner}{bar}   · ran {}", n.execs.join(" → "))?;
    }
    let groups = n.activity.groups();
    let limit = if n.role == Role::Ancestor { ANCESTOR_LINES } else { usize::MAX };
    for g in groups.iter().take(limit) {
        let m = if g.matched { "   ◀ match" } else { "" };
        writeln!(out, "{inner}{bar}   · {}{m}", g.text())?;
    }
    let hidden: u64 = groups.iter().skip(limit).map(|g| g.count).sum::<u64>() + n.activity.other;
    if hidden > 0 {
        writeln!(out, "{inner}{bar}   · … and {} more events", thousands(hidden))?;
    }
    for (k, &c) in kids.iter().enumerate() {
        node(inc, children, c, &inner, Some(k + 1 == kids.len()), out)?;
    }
    Ok(())
}

fn notes(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    let s = &inc.stats;
    writeln!(out)?;
    let window = if s.in_window == s.records {
        String::new()
    } else {
        format!(", {} in the time window", thousands(s.in_window))
    };
    writeln!(out, "read {} records from {} files{window}", thousands(s.records), s.files)?;
    for d in &s.damaged {
        writeln!(out, "warning: damaged file, read up to the damage: {d}")?;
    }
    if s.not_indexed > 0 {
        writeln!(out, "warning: process index full, {} processes not indexed", thousands(s.not_indexed))?;
    }
    if s.descendants_more > 0 {
        writeln!(out, "note: {} more descendants not shown", thousands(s.descendants_more))?;
    }
    if inc.acting_more > 0 {
        writeln!(out, "note: {} more matching processes not followed", thousands(inc.acting_more))?;
    }
    Ok(())
}
