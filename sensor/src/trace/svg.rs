//! `--format svg`: the incident graph as a picture, laid out here (no Graphviz needed on the
//! host). The view is a forest, so a layered tidy-tree layout suffices: one layer per depth,
//! each subtree as wide as its widest layer, parents centred over their children.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

use super::{Incident, dot::node_lines, graph::Role, tree::session_line};

/// Advance of one monospace character at font-size 11, with room for bold lines.
const CHAR_W: f64 = 7.2;
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
const HGAP: f64 = 24.0;
const VGAP: f64 = 44.0;
const MARGIN: f64 = 20.0;

struct Layout {
    w: Vec<f64>,
    h: Vec<f64>,
    x: Vec<f64>,
    y: Vec<f64>,
    width: f64,
    height: f64,
}

fn layout(inc: &Incident, lines: &[Vec<String>], top: f64) -> Layout {
    let n = inc.nodes.len();
    let w: Vec<f64> = lines
        .iter()
        .map(|l| l.iter().map(|s| s.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 2.0 * PAD)
        .collect();
    let h: Vec<f64> = lines.iter().map(|l| l.len() as f64 * LINE_H + 2.0 * PAD).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut is_child = vec![false; n];
    for &(p, c) in &inc.edges {
        children[p].push(c);
        is_child[c] = true;
    }
    // Nodes come parents first, so a reverse pass sees children before their parent.
    let mut sub = w.clone();
    for i in (0..n).rev() {
        let kids: f64 = children[i].iter().map(|&c| sub[c]).sum::<f64>()
            + HGAP * children[i].len().saturating_sub(1) as f64;
        sub[i] = sub[i].max(kids);
    }
    let depth_max = inc.depth.iter().copied().max().unwrap_or(0);
    let mut layer_h = vec![0.0f64; depth_max + 1];
    for i in 0..n {
        layer_h[inc.depth[i]] = layer_h[inc.depth[i]].max(h[i]);
    }
    let mut layer_y = vec![top; depth_max + 1];
    for d in 1..=depth_max {
        layer_y[d] = layer_y[d - 1] + layer_h[d - 1] + VGAP;
    }
    let mut left = vec![0.0f64; n];
    let mut cursor = MARGIN;
    for i in (0..n).filter(|&i| !is_child[i]) {
        left[i] = cursor;
        cursor += sub[i] + HGAP;
    }
    let mut x = vec![0.0f64; n];
    let mut y = vec![0.0f64; n];
    for i in 0..n {
        x[i] = left[i] + sub[i] / 2.0;
        y[i] = layer_y[inc.depth[i]];
        let kids: f64 = children[i].iter().map(|&c| sub[c]).sum::<f64>()
            + HGAP * children[i].len().saturating_sub(1) as f64;
        let mut l = left[i] + (sub[i] - kids) / 2.0;
        for &c in &children[i] {
            left[c] = l;
            l += sub[c] + HGAP;
        }
    }
    let width = (cursor - HGAP + MARGIN).max(400.0);
    let height = layer_y[depth_max] + layer_h[depth_max] + MARGIN;
    Layout { w, h, x, y, width, height }
}

/// Text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Not allowed in XML 1.0.
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

pub fn write(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    let mut header = vec![format!("sensor trace {}", inc.query)];
    if inc.nodes.is_empty() {
        header.push(format!("no record matches ({} records read)", inc.stats.records));
    }
    header.extend(inc.sessions.iter().map(session_line));
    let top = MARGIN + header.len() as f64 * LINE_H + 10.0;
    let lines: Vec<Vec<String>> = (0..inc.nodes.len()).map(|i| node_lines(inc, i)).collect();
    let l = layout(inc, &lines, top);
    let width = l
        .width
        .max(header.iter().map(|s| s.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 2.0 * MARGIN);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" viewBox="0 0 {width:.0} {:.0}" font-family="monospace" font-size="11">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>"##,
        l.height, l.height
    );
    for (k, h) in header.iter().enumerate() {
        let weight = if k == 0 { r#" font-weight="bold""# } else { "" };
        let _ = writeln!(
            s,
            r#"<text x="{MARGIN}" y="{:.1}"{weight}>{}</text>"#,
            MARGIN + (k as f64 + 0.8) * LINE_H,
            esc(h)
        );
    }
    for &(p, c) in &inc.edges {
        let (x1, y1) = (l.x[p], l.y[p] + l.h[p]);
        let (x2, y2) = (l.x[c], l.y[c]);
        let my = (y1 + y2) / 2.0;
        let _ = writeln!(
            s,
            r##"<path d="M{x1:.1},{y1:.1} C{x1:.1},{my:.1} {x2:.1},{my:.1} {x2:.1},{y2:.1}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>"##
        );
    }
    for (i, n) in inc.nodes.iter().enumerate() {
        let (fill, stroke, sw) = match n.role {
            Role::Acting => ("#f4cccc", "#cc0000", 2.5),
            Role::Ancestor => ("#eeeeee", "#666666", 1.0),
            Role::Descendant => ("#fce5cd", "#b45f06", 1.0),
        };
        let (x0, y0) = (l.x[i] - l.w[i] / 2.0, l.y[i]);
        let _ = writeln!(s, r#"<g id="node{i}"><title>{}</title>"#, esc(&n.guid));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>"#,
            l.w[i], l.h[i]
        );
        for (k, line) in lines[i].iter().enumerate() {
            let weight = if k == 0 { r#" font-weight="bold""# } else { "" };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}"{weight}>{}</text>"#,
                x0 + PAD,
                y0 + PAD + (k as f64 + 0.8) * LINE_H,
                esc(line)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    out.write_all(s.as_bytes())
}
