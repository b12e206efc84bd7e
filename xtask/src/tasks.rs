//! The tasks other than setup.

use std::{os::unix::process::CommandExt as _, path::Path, process::Command};

use anyhow::bail;

use crate::{
    setup::NIGHTLY,
    util::{self, cargo},
};

pub fn build(ws: &Path, release: bool) -> anyhow::Result<()> {
    let mut cmd = cargo(ws);
    cmd.args(["build", "--workspace", "--exclude", "sensor-ebpf"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)
}

pub fn run(ws: &Path, args: &[String]) -> anyhow::Result<()> {
    build_sensor_release(ws)?;
    if !util::is_root() {
        bail!(
            "the sensor loads eBPF programs and must run as root (or with CAP_BPF, CAP_PERFMON and \
             CAP_SYS_ADMIN); try: sudo {}/target/release/sensor run {}",
            ws.display(),
            args.join(" ")
        );
    }
    let bin = ws.join("target/release/sensor");
    let err = Command::new(&bin).arg("run").args(args).exec();
    bail!("running {}: {err}", bin.display())
}

fn build_sensor_release(ws: &Path) -> anyhow::Result<()> {
    util::run(cargo(ws).args(["build", "--release", "--package", "sensor"]))
}

pub fn test(ws: &Path, args: &[String]) -> anyhow::Result<()> {
    // Formatting and lints are part of the test: main stays clean.
    fmt(ws, true)?;
    clippy(ws)?;
    // Build everything first: the CLI tests run the sensor binary.
    util::run(cargo(ws).args(["build", "--workspace", "--exclude", "sensor-ebpf", "--all-targets"]))?;
    eprintln!("xtask test: unit tests");
    util::run(
        cargo(ws)
            .args(["test", "--workspace", "--exclude", "sensor-ebpf", "--exclude", "sensor-tests", "--"])
            .args(args),
    )?;
    if !util::is_root() {
        bail!("the integration tests load eBPF programs and must run as root (sudo -E cargo xtask test)");
    }
    eprintln!("xtask test: integration tests (real eBPF programs, one at a time)");
    util::run(cargo(ws).args(["test", "--package", "sensor-tests", "--", "--test-threads=1"]).args(args))?;
    eprintln!("xtask test: the Debian package, installed on this machine and purged");
    let deb = crate::package::package(ws)?;
    crate::package::install_test::install_test(ws, &deb)
}

pub fn clippy(ws: &Path) -> anyhow::Result<()> {
    util::run(cargo(ws).args([
        "clippy",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate, for its own target (it cannot build for the host).
    let mut cmd = Command::new("rustup");
    cmd.current_dir(ws)
        .args(["run", NIGHTLY, "cargo", "clippy", "--package", "sensor-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core", "--", "-D", "warnings"])
        .env("CARGO_CFG_BPF_TARGET_ARCH", std::env::consts::ARCH)
        .env("RUSTFLAGS", format!("--cfg bpf_target_arch=\"{}\"", std::env::consts::ARCH))
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    util::with_tools_path(&mut cmd, ws);
    util::run(&mut cmd)
}

pub fn fmt(ws: &Path, check: bool) -> anyhow::Result<()> {
    let mut cmd = cargo(ws);
    cmd.args(["fmt", "--all"]);
    if check {
        cmd.args(["--", "--check"]);
    }
    util::run(&mut cmd)?;
    // Files `cargo fmt` cannot reach through a `mod` line: the fuzz targets (their own
    // workspace, nightly only) and the record-kind modules (declared by a macro generated from
    // the schema, `sensor/src/kinds/mod.rs`). Format them directly.
    let rs_files = |dir: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(ws.join(dir))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut targets = rs_files("fuzz/fuzz_targets");
    targets.extend(rs_files("sensor/src/kinds"));
    if targets.is_empty() {
        return Ok(());
    }
    targets.sort();
    let mut rustfmt = Command::new("rustfmt");
    rustfmt.current_dir(ws).args(["--edition", "2024"]).args(&targets);
    if check {
        rustfmt.arg("--check");
    }
    util::run(&mut rustfmt)
}
