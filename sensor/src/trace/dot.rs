//! `--format dot`: the incident graph for Graphviz (`sensor trace … --format dot | dot -Tpng`).
//! Process nodes are named `p<pid>_<first 8 characters of the GUID>`, sessions `s<id>`.

use std::io::{self, Write};

use super::{Incident, fmt_time, graph::Role, tree::session_line};

/// Folded activity lines shown in a node; characters per line.
pub const NODE_LINES: usize = 6;
pub const LINE_CHARS: usize = 72;

/// The DOT id of node `i`.
pub fn node_id(inc: &Incident, i: usize) -> String {
    let n = &inc.nodes[i];
    let g: String = n.guid.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    if g.is_empty() { format!("n{i}") } else { format!("p{}_{g}", n.pid) }
}

/// The lines shown for node `i` (shared with the SVG renderer).
pub fn node_lines(inc: &Incident, i: usize) -> Vec<String> {
    let n = &inc.nodes[i];
    let role = match n.role {
        Role::Acting => "  ACTING",
        Role::Ancestor | Role::Descendant => "",
    };
    let mut lines = vec![
        format!("{} · {}{role}", n.pid_label(), n.user_label()),
        clip(&n.command()),
        format!("started {}", fmt_time(n.start_time)),
    ];
    if n.from_ancestry {
        lines.push("(seen only as an ancestor)".into());
    }
    if let Some(e) = &n.exit {
        lines.push(e.clone());
    }
    for a in &n.alerts {
        lines.push(clip(&format!("⚠ ALERT {a}")));
    }
    let groups = n.activity.groups();
    for g in groups.iter().take(NODE_LINES) {
        lines.push(clip(&format!("{}{}", if g.matched { "▶ " } else { "· " }, g.text())));
    }
    let hidden = groups.len().saturating_sub(NODE_LINES) as u64 + u64::from(n.activity.other > 0);
    if hidden > 0 {
        lines.push(format!("· … {} more", super::fold::thousands(hidden)));
    }
    lines
}

/// Cuts a line at `LINE_CHARS` characters.
pub fn clip(s: &str) -> String {
    clip_to(s, LINE_CHARS)
}

/// Cuts a line at `max` characters (the last one becomes `…`).
pub fn clip_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A DOT double-quoted string's content.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

pub fn write(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "digraph incident {{")?;
    writeln!(
        out,
        "  graph [rankdir=TB, fontname=\"monospace\", label=\"{}\", labelloc=t];",
        esc(&format!("sensor trace {}", inc.query))
    )?;
    writeln!(out, "  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\", fontsize=10];")?;
    writeln!(out, "  edge [color=\"#555555\"];")?;
    for i in 0..inc.nodes.len() {
        let n = &inc.nodes[i];
        let (fill, pen) = match n.role {
            Role::Acting => ("#f4cccc", 2),
            Role::Ancestor => ("#eeeeee", 1),
            Role::Descendant => ("#fce5cd", 1),
        };
        let label: String = node_lines(inc, i).iter().map(|l| format!("{}\\l", esc(l))).collect();
        writeln!(
            out,
            "  \"{}\" [label=\"{label}\", fillcolor=\"{fill}\", penwidth={pen}, tooltip=\"{}\"];",
            node_id(inc, i),
            esc(&n.guid)
        )?;
    }
    for s in &inc.sessions {
        writeln!(
            out,
            "  \"s{}\" [shape=note, fillcolor=\"#cfe2f3\", label=\"{}\"];",
            s.id,
            esc(&session_line(s))
        )?;
        if let Some(l) = s.leader {
            writeln!(out, "  \"s{}\" -> \"{}\" [style=dashed];", s.id, node_id(inc, l))?;
        }
    }
    for &(p, c) in &inc.edges {
        writeln!(out, "  \"{}\" -> \"{}\";", node_id(inc, p), node_id(inc, c))?;
    }
    writeln!(out, "}}")
}
