//! `cargo xtask fuzz [--secs N] [TARGET]`: the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer,
//! the nightly toolchain), each for N seconds, starting from the corpus kept in the repository
//! (`fuzz/corpus/<target>/`, read-only) plus what earlier local runs found
//! (`target/fuzz/corpus/<target>/`, where new inputs go). Prints executions and coverage per
//! target and writes them to `target/fuzz/report.md`; a crash, a timeout or running out of
//! memory fails the task and leaves the input in `target/fuzz/artifacts/<target>/`.
//!
//! `--minimize` merges what was found into the repository's corpus, minimized (libFuzzer's
//! `-merge=1`), to be committed; inputs named `regression-*` (past findings) are always kept. cargo-fuzz is installed into `target/tools/cargo-fuzz` by the
//! task itself (once, pinned).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{setup::NIGHTLY, util};

/// The targets, in the order they run.
pub const TARGETS: [&str; 8] =
    ["decode_event", "record_file", "trace_input", "spool", "config", "output_spec", "dns", "rules"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What one target's run did.
#[derive(Debug, Default, Clone)]
pub struct TargetRun {
    pub name: String,
    pub secs: f64,
    pub execs: u64,
    /// Coverage: edges (libFuzzer's `cov:`) and features (`ft:`) at the end.
    pub cov: u64,
    pub features: u64,
    pub corpus: u64,
    pub ok: bool,
    pub artifact: Option<String>,
}

pub fn fuzz(ws: &Path, secs: u64, target: Option<&str>, minimize: bool) -> anyhow::Result<()> {
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target `{t}` (targets: {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    let cargo_fuzz = ensure_cargo_fuzz(ws)?;
    let build_dir = ws.join("target/fuzz/build");
    let started = Instant::now();
    let mut build = fuzz_cmd(ws, &cargo_fuzz, "build");
    build.arg("--target-dir").arg(&build_dir);
    util::run(&mut build).context("building the fuzz targets")?;
    eprintln!("xtask fuzz: built in {:.0} s", started.elapsed().as_secs_f64());
    let mut runs = Vec::new();
    for t in &targets {
        let run = run_target(ws, &cargo_fuzz, &build_dir, t, secs)?;
        eprintln!(
            "xtask fuzz: {t}: {} execs in {:.0} s, cov {} ft {}, corpus {}{}",
            run.execs,
            run.secs,
            run.cov,
            run.features,
            run.corpus,
            if run.ok {
                String::new()
            } else {
                format!(", FAILED ({})", run.artifact.as_deref().unwrap_or("?"))
            }
        );
        if minimize && run.ok {
            merge_corpus(ws, &cargo_fuzz, &build_dir, t)?;
        }
        runs.push(run);
    }
    let report = report(&runs, started.elapsed().as_secs_f64());
    let path = ws.join("target/fuzz/report.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    print!("{report}");
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} ({})", r.name, r.artifact.as_deref().unwrap_or("no artifact")))
        .collect();
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}; reproduce with `cargo fuzz run TARGET ARTIFACT`", failed.join(", "));
    }
    Ok(())
}

/// `rustup run nightly cargo-fuzz fuzz SUBCOMMAND -s none --debug-assertions` in the workspace.
/// No sanitizer: the parsers are safe Rust, and twice the executions find more; debug
/// assertions catch arithmetic overflow.
fn fuzz_cmd(ws: &Path, cargo_fuzz: &Path, sub: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(ws)
        .args(["run", NIGHTLY])
        .arg(cargo_fuzz)
        .args(["fuzz", sub, "--sanitizer", "none", "--debug-assertions"])
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR");
    util::with_tools_path(&mut cmd, ws);
    cmd
}

fn run_target(
    ws: &Path,
    cargo_fuzz: &Path,
    build_dir: &Path,
    t: &str,
    secs: u64,
) -> anyhow::Result<TargetRun> {
    let scratch = ws.join("target/fuzz/corpus").join(t);
    let seeds = ws.join("fuzz/corpus").join(t);
    let artifacts = ws.join("target/fuzz/artifacts").join(t);
    for d in [&scratch, &seeds, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut cmd = fuzz_cmd(ws, cargo_fuzz, "run");
    cmd.arg("--target-dir")
        .arg(build_dir)
        .arg(t)
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=262144")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running fuzz target {t}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    std::fs::write(ws.join("target/fuzz").join(format!("{t}.log")), log.as_bytes())?;
    let mut run = parse_log(&log);
    run.name = t.to_owned();
    run.secs = started.elapsed().as_secs_f64();
    run.ok = out.status.success();
    if !run.ok && run.artifact.is_none() {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(run)
}

/// Execs, coverage and corpus size from libFuzzer's output; the artifact of a failure.
pub fn parse_log(log: &str) -> TargetRun {
    let mut run = TargetRun::default();
    let field = |line: &str, key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        let num: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
        num.parse().ok()
    };
    for line in log.lines() {
        if line.starts_with('#') && line.contains(" cov: ") {
            run.cov = field(line, " cov:").unwrap_or(run.cov);
            run.features = field(line, " ft:").unwrap_or(run.features);
            run.corpus = field(line, " corp:").unwrap_or(run.corpus);
            run.execs = field(line, "#").unwrap_or(run.execs);
        }
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            run.execs = n.trim().parse().unwrap_or(run.execs);
        }
        if let Some(a) = line.split("Test unit written to ").nth(1) {
            run.artifact = Some(a.trim().to_owned());
        }
    }
    run
}

/// Merges the local finds into the repository's corpus, minimized (only inputs that add
/// coverage are kept).
fn merge_corpus(ws: &Path, cargo_fuzz: &Path, build_dir: &Path, t: &str) -> anyhow::Result<()> {
    let seeds = ws.join("fuzz/corpus").join(t);
    let merged: PathBuf = ws.join("target/fuzz/merged").join(t);
    let _ = std::fs::remove_dir_all(&merged);
    std::fs::create_dir_all(&merged)?;
    let mut cmd = fuzz_cmd(ws, cargo_fuzz, "run");
    cmd.arg("--target-dir")
        .arg(build_dir)
        .arg(t)
        .arg(&merged)
        .arg(&seeds)
        .arg(ws.join("target/fuzz/corpus").join(t))
        .args(["--", "-merge=1", "-max_len=262144"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    util::run(&mut cmd).with_context(|| format!("merging the corpus of {t}"))?;
    // Inputs of past findings stay, whether or not they add coverage now.
    let keep: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(&seeds)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("regression-"))
        .filter_map(|e| Some((e.file_name(), std::fs::read(e.path()).ok()?)))
        .collect();
    std::fs::remove_dir_all(&seeds)?;
    std::fs::rename(&merged, &seeds)?;
    for (name, data) in keep {
        std::fs::write(seeds.join(name), data)?;
    }
    Ok(())
}

fn report(runs: &[TargetRun], total_secs: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n| fuzz target | seconds | executions | exec/s | coverage (edges) | features | corpus | result |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for r in runs {
        let _ = writeln!(
            o,
            "| {} | {:.0} | {} | {:.0} | {} | {} | {} | {} |",
            r.name,
            r.secs,
            r.execs,
            r.execs as f64 / r.secs.max(1e-9),
            r.cov,
            r.features,
            r.corpus,
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    let _ = writeln!(o, "\nTotal {total_secs:.0} s (build included).");
    o
}

/// cargo-fuzz in `target/tools/cargo-fuzz`, installed when missing.
fn ensure_cargo_fuzz(ws: &Path) -> anyhow::Result<PathBuf> {
    let root = util::tools_dir(ws).join("cargo-fuzz");
    let bin = root.join("bin/cargo-fuzz");
    let stamp = root.join("version");
    if bin.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == CARGO_FUZZ_VERSION) {
        return Ok(bin);
    }
    eprintln!("xtask fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION} (once)");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", "--locked", "--force", &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"), "--root"])
        .arg(&root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    util::run(&mut cmd).context("installing cargo-fuzz")?;
    std::fs::write(&stamp, CARGO_FUZZ_VERSION)?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 120 ft: 130 corp: 5/1Kb exec/s: 0 rss: 40Mb\n\
                   #65536\tpulse  cov: 410 ft: 900 corp: 80/9Kb lim: 4096 exec/s: 21845 rss: 60Mb\n\
                   #700000\tDONE   cov: 433 ft: 1021 corp: 91/12Kb lim: 4096 exec/s: 23333 rss: 61Mb\n\
                   stat::number_of_executed_units: 700123\nstat::peak_rss_mb: 61\n";
        let r = parse_log(log);
        assert_eq!((r.execs, r.cov, r.features, r.corpus), (700_123, 433, 1021, 91));
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='x/'; Test unit written to x/crash-abc\n";
        assert_eq!(parse_log(crash).artifact.as_deref(), Some("x/crash-abc"));
    }
}
