//! A self-contained SVG bar chart of the cost ratios (tracer vs no tracer), one group of bars
//! per workload, with the sensor's target marked.

use std::fmt::Write as _;

use super::{Results, report::target, tracer::Mode};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 56.0;
const BAR: f64 = 16.0;
const GAP: f64 = 18.0;

fn color(mode: Mode) -> &'static str {
    match mode {
        Mode::Auditd => "#c0504d",
        Mode::Sensor => "#4f81bd",
        Mode::SensorNoRules => "#9bbb59",
        Mode::None => "#999999",
        Mode::Floor => "#f79646",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn chart(r: &Results) -> String {
    let tracers: Vec<Mode> = r.modes.iter().copied().filter(|m| *m != Mode::None).collect();
    let ratios: Vec<f64> = r
        .storms
        .iter()
        .flat_map(|(s, _)| tracers.iter().filter_map(|m| r.ratio(*s, *m)))
        .filter(|v| v.is_finite())
        .collect();
    let lo = ratios.iter().copied().fold(0.9_f64, f64::min).min(0.9);
    let hi = ratios.iter().copied().fold(1.3_f64, f64::max) * 1.08;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + (v - lo) / (hi - lo) * plot_w;
    let group_h = tracers.len() as f64 * BAR + GAP;
    let height = TOP + r.storms.len() as f64 * group_h + 64.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">Cost of tracing: median time per op, ratio to no tracer (lower is better)</text>"#,
        12
    );
    // Legend.
    let mut lx = 12.0;
    for m in &tracers {
        let _ = writeln!(s, r#"<rect x="{lx}" y="34" width="12" height="12" fill="{}"/>"#, color(*m));
        let _ = writeln!(s, r#"<text x="{}" y="44">{}</text>"#, lx + 16.0, m.name());
        lx += 90.0;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{lx}" y1="40" x2="{}" y2="40" stroke="black" stroke-dasharray="3,2"/>"#,
        lx + 14.0
    );
    let _ = writeln!(s, r#"<text x="{}" y="44">sensor target</text>"#, lx + 18.0);

    // Grid: ticks every 0.1 (every 0.5 when the range is wide).
    let step = if hi - lo > 2.0 { 0.5 } else { 0.1 };
    let bottom = height - 44.0;
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        let gx = x(t);
        let (stroke, w) = if (t - 1.0).abs() < 1e-9 { ("black", 1.5) } else { ("#dddddd", 1.0) };
        let _ = writeln!(
            s,
            r#"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom:.1}" stroke="{stroke}" stroke-width="{w}"/>"#
        );
        let _ =
            writeln!(s, r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{t:.1}×</text>"#, bottom + 16.0);
        t += step;
    }

    for (gi, (storm, _)) in r.storms.iter().enumerate() {
        let gy = TOP + gi as f64 * group_h + GAP / 2.0;
        let mid = gy + tracers.len() as f64 * BAR / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            mid + 4.0,
            esc(storm.name())
        );
        for (ti, m) in tracers.iter().enumerate() {
            let Some(v) = r.ratio(*storm, *m).filter(|v| v.is_finite()) else { continue };
            let y = gy + ti as f64 * BAR;
            let (a, b) = (x(1.0).min(x(v)), x(1.0).max(x(v)));
            let _ = writeln!(
                s,
                r#"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {v:.3}</title></rect>"#,
                y + 1.0,
                (b - a).max(1.0),
                BAR - 2.0,
                color(*m),
                m.name()
            );
            // The value beside the bar's far end.
            let (lx, anchor) = if v < 1.0 { (a - 4.0, "end") } else { (b + 4.0, "start") };
            let _ = writeln!(
                s,
                r#"<text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}">{v:.2}</text>"#,
                y + BAR - 4.0
            );
        }
        let tx = x(target(*storm));
        let _ = writeln!(
            s,
            r#"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="black" stroke-dasharray="3,2"/>"#,
            gy - 2.0,
            gy + tracers.len() as f64 * BAR + 2.0
        );
    }
    let _ = writeln!(s, r##"<text x="12" y="{:.1}" fill="#444">{}</text>"##, height - 8.0, esc(&footer(r)));
    let _ = writeln!(s, "</svg>");
    s
}

/// One line under the chart: loss under the mixed load and the pipeline's rate.
fn footer(r: &Results) -> String {
    let mut parts = Vec::new();
    for m in r.mixed.iter().filter(|m| m.mode != Mode::None) {
        if let Some(d) = m.delivered {
            let lost = m.load.expected().saturating_sub(d.matched);
            parts.push(format!("{}: {lost} of {} lost", m.mode.name(), m.load.expected()));
        }
    }
    let mut line = String::new();
    if !parts.is_empty() {
        let _ = write!(line, "Mixed load at {} events/s: {}.", r.mixed_rate, parts.join(", "));
    }
    if let Some(m) = r.micro {
        let _ = write!(
            line,
            " Pipeline: {:.0}k records/s on one core ({:.0}k with detection).",
            m.plain.records_per_sec / 1000.0,
            m.detect.records_per_sec / 1000.0
        );
    }
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::{Cell, MixedRun, workloads::MixedResult};
    use super::*;
    use crate::bench::{count::Delivered, workloads::Storm};

    #[test]
    fn chart_has_a_bar_per_tracer_and_workload() {
        let cell = |ns: f64| Cell { ns_per_op: vec![ns], ..Cell::default() };
        let r = Results {
            modes: vec![Mode::None, Mode::Auditd, Mode::Sensor],
            storms: Storm::ALL.iter().map(|s| (*s, vec![cell(100.0), cell(140.0), cell(95.0)])).collect(),
            mixed: vec![MixedRun {
                mode: Mode::Sensor,
                load: MixedResult { file_events: 1000, ..MixedResult::default() },
                delivered: Some(Delivered { matched: 1000, loss_reported: 0 }),
                cpu_secs: 0.1,
                rss_kib: vec![],
            }],
            mixed_rate: 50_000,
            ..Results::default()
        };
        let svg = chart(&r);
        if let Some(path) = std::env::var_os("XTASK_SVG_OUT") {
            std::fs::write(path, &svg).expect("writing the chart");
        }
        assert_eq!(svg.matches("<title>").count(), 8);
        assert!(svg.contains("sensor: 0 of 1000 lost"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
