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
}

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
    Ok(Micro { plain: read(&home, FUNCTION)?, detect: read(&home, FUNCTION_DETECT)? })
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
