//! The soak's samples as a self-contained SVG: one panel per measure over time, bursts shaded.

use std::fmt::Write as _;

use super::{Sample, SoakResult};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 110.0;
const GAP: f64 = 34.0;
const TOP: f64 = 40.0;

type Measure = (&'static str, &'static str, fn(&Sample) -> f64);

const MEASURES: [Measure; 5] = [
    ("resident memory (MiB)", "#4f81bd", |s| s.rss_kib as f64 / 1024.0),
    ("open file descriptors", "#9bbb59", |s| s.fds as f64),
    ("threads", "#8064a2", |s| s.threads as f64),
    ("queue depth (events waiting)", "#f79646", |s| s.queue as f64),
    ("events lost (total, from loss records)", "#c0504d", |s| s.lost as f64),
];

pub fn chart(r: &SoakResult) -> String {
    let s = &r.samples;
    let t_max = s.iter().map(|x| x.secs).fold(1.0_f64, f64::max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + t / t_max * plot_w;
    let height = TOP + MEASURES.len() as f64 * (PANEL + GAP) + 20.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="12" y="22" font-size="14" font-weight="bold">Soak: the sensor over {:.0} minutes ({})</text>"#,
        t_max / 60.0,
        r.opts_line.replace('&', "&amp;")
    );
    for (i, (title, color, f)) in MEASURES.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP) + 16.0;
        let bottom = top + PANEL;
        let hi = s.iter().map(f).fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let y = |v: f64| bottom - v / hi * PANEL;
        // Bursts.
        let mut burst_start = None;
        for w in s.windows(2) {
            match (w[0].burst || w[1].burst, burst_start) {
                (true, None) => burst_start = Some(w[0].secs),
                (false, Some(b)) => {
                    let _ = writeln!(
                        o,
                        r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{PANEL}" fill="#eeeeee"/>"##,
                        x(b),
                        (x(w[0].secs) - x(b)).max(1.0)
                    );
                    burst_start = None;
                }
                _ => {}
            }
        }
        let _ = writeln!(o, r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{title}</text>"#, top - 4.0);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#888"/>"##,
            WIDTH - RIGHT
        );
        let _ =
            writeln!(o, r##"<line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{bottom:.1}" stroke="#888"/>"##);
        for frac in [0.0, 0.5, 1.0] {
            let v = hi / 1.1 * frac;
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y(v) + 4.0,
                if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
            );
        }
        let points: Vec<String> = s.iter().map(|p| format!("{:.1},{:.1}", x(p.secs), y(f(p)))).collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        if i + 1 == MEASURES.len() {
            for m in 0..=((t_max / 600.0) as u64) {
                let t = m as f64 * 600.0;
                let _ = writeln!(
                    o,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} min</text>"#,
                    x(t),
                    bottom + 14.0,
                    m * 10
                );
            }
        }
    }
    let _ = writeln!(o, "</svg>");
    o
}
