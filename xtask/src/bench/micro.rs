//! The pipeline micro-benchmark (`sensor/benches/pipeline.rs`, criterion): runs it and reads
//! criterion's estimates back as records per second on one core.

use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::util;

const GROUP: &str = "pipeline";
const FUNCTION: &str = "decode_enrich_record_encode";
/// The same with the detection stage (built-in and SigmaHQ Linux rules).
const FUNCTION_DETECT: &str = "decode_enrich_record_encode_detect";

/// Both functions of the bench.
#[derive(Debug, Clone, Copy)]
pub struct Micro {
    pub plain: MicroResult,
    pub detect: MicroResult,
    /// The two in alternation (`PIPELINE_BENCH_INTERLEAVED`): the ratio the target is judged by.
    pub interleaved: Interleaved,
}

/// With ÷ without detection, per alternating round.
#[derive(Debug, Clone, Copy)]
pub struct Interleaved {
    pub rounds: usize,
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

/// Rounds of the interleaved run (about 0.3 s each), in a full and a quick bench.
const ROUNDS: usize = 30;
const QUICK_ROUNDS: usize = 6;

#[derive(Debug, Clone, Copy)]
pub struct MicroResult {
    /// Mean records per second, and the 95 % confidence bounds.
    pub records_per_sec: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Deserialize)]
struct Estimates {
    mean: Estimate,
}

#[derive(Debug, Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Debug, Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Debug, Deserialize)]
struct Benchmark {
    /// `{"Elements": N}` for this bench.
    #[serde(default)]
    throughput: serde_json::Value,
}

/// Builds the bench binary (so its build is not timed with the workloads).
pub fn build(ws: &Path) -> anyhow::Result<()> {
    util::run(util::cargo(ws).args(["bench", "--package", "sensor", "--bench", "pipeline", "--no-run"]))
}

pub fn run(ws: &Path, quick: bool) -> anyhow::Result<Micro> {
    let home = ws.join("target/criterion");
    let mut cmd = util::cargo(ws);
    cmd.args(["bench", "--package", "sensor", "--bench", "pipeline", "--"]).env("CRITERION_HOME", &home);
    if quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    util::run(&mut cmd)?;
    let rounds = if quick { QUICK_ROUNDS } else { ROUNDS };
    let out = util::output(
        util::cargo(ws)
            .args(["bench", "--package", "sensor", "--bench", "pipeline"])
            .env("PIPELINE_BENCH_INTERLEAVED", rounds.to_string()),
    )?;
    let interleaved = parse_interleaved(&out)
        .with_context(|| format!("the pipeline bench printed no interleaved result:\n{out}"))?;
    Ok(Micro { plain: read(&home, FUNCTION)?, detect: read(&home, FUNCTION_DETECT)?, interleaved })
}

/// `interleaved rounds=R plain=… detect=… ratio=… low=… high=…`
fn parse_interleaved(out: &str) -> Option<Interleaved> {
    let line = out.lines().find(|l| l.starts_with("interleaved "))?;
    Some(Interleaved {
        rounds: value(line, "rounds")?,
        ratio: value(line, "ratio")?,
        low: value(line, "low")?,
        high: value(line, "high")?,
    })
}

/// The value of `key=value` on a line of such pairs.
fn value<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?.parse().ok()
}

fn read(home: &Path, function: &str) -> anyhow::Result<MicroResult> {
    let dir = home.join(GROUP).join(function).join("new");
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let est: Estimates = serde_json::from_str(&read("estimates.json")?)?;
    let bench: Benchmark = serde_json::from_str(&read("benchmark.json")?)?;
    let Some(n) = bench.throughput.get("Elements").and_then(serde_json::Value::as_u64) else {
        anyhow::bail!("the pipeline bench reports no element throughput");
    };
    let per_sec = |ns: f64| n as f64 * 1e9 / ns;
    Ok(MicroResult {
        records_per_sec: per_sec(est.mean.point_estimate),
        // More time per iteration is fewer records per second.
        low: per_sec(est.mean.confidence_interval.upper_bound),
        high: per_sec(est.mean.confidence_interval.lower_bound),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_interleaved_line() {
        let out =
            "noise\ninterleaved rounds=20 plain=254123 detect=216699 ratio=0.8405 low=0.6679 high=1.0293\n";
        let i = super::parse_interleaved(out).expect("parsed");
        assert_eq!(i.rounds, 20);
        assert!(
            (i.ratio - 0.8405).abs() < 1e-9
                && (i.low - 0.6679).abs() < 1e-9
                && (i.high - 1.0293).abs() < 1e-9
        );
        assert!(super::parse_interleaved("interleaved rounds=20 plain=1").is_none());
    }
}
