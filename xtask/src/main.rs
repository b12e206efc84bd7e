//! `cargo xtask`: the project's tasks. Every task first runs `setup`, so a fresh clone needs
//! nothing else.

mod bench;
mod fuzz;
mod package;
mod setup;
mod soak;
mod tasks;
mod util;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Project tasks for the sensor")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what the build needs (rust-src, bpf-linker) and mount tracefs/bpffs. Idempotent.
    Setup,
    /// Build the workspace (the eBPF object is built and embedded by sensor/build.rs).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build (release) and run `sensor run ARGS` as root.
    Run {
        /// Arguments for `sensor run`, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Unit tests, then integration tests that load real eBPF programs (root).
    Test {
        /// Extra arguments for the test binaries (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Clippy with -D warnings: host crates, then the eBPF crate for bpfel-unknown-none.
    Clippy,
    /// Benchmarks: workload cost with no tracer, the floor (empty programs on the sensor's
    /// tracepoints), auditd and the sensor (ratios, CPU, delivery), a fixed-rate mixed load
    /// (loss), sensor memory, start-up and stop, and the pipeline micro-benchmark.
    Bench {
        /// Interleaved rounds of the storms.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Seconds of each storm run.
        #[arg(long, default_value_t = 5.0)]
        round_secs: f64,
        /// Seconds of the fixed-rate mixed load, per tracer.
        #[arg(long, default_value_t = 60.0)]
        mixed_secs: f64,
        /// Events per second of the mixed load.
        #[arg(long, default_value_t = 50_000)]
        mixed_rate: u64,
        /// Compare with no tracer only (do not install or run auditd).
        #[arg(long)]
        no_auditd: bool,
        /// Do not run the floor (empty eBPF programs on the sensor's tracepoints).
        #[arg(long)]
        no_floor: bool,
        /// Also run the sensor with detection turned off (what the rules cost).
        #[arg(long)]
        compare_rules: bool,
        /// Skip the criterion pipeline micro-benchmark.
        #[arg(long)]
        no_micro: bool,
        /// Smoke test: one 1 s round, 3 s mixed load, short criterion run; results go to
        /// target/bench-quick unless --out is given.
        #[arg(long)]
        quick: bool,
        /// Directory for results.md and overhead.svg (default: docs/bench).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Keep each run's records and tracer logs in target/bench-tmp.
        #[arg(long)]
        keep_tmp: bool,
    },
    /// The content-asserting integration tests in QEMU guests on a matrix of kernels (5.10, 6.1,
    /// 6.12, the host's series, 7.2); prints kernel × test pass/fail, logs in target/vm/logs/.
    VmTest {
        /// A kernel of the matrix by series ("5.10", "host"); repeat for several. Default: all.
        #[arg(long = "kernel", value_name = "VERSION")]
        kernels: Vec<String>,
        /// Guests booted at the same time.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Per-boot limit, in seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
        /// Instead of the tests, the storms of the system call paths (tests/benches/paths.rs):
        /// no sensor, the fentry path and its fallback, as ratios within each guest's run.
        #[arg(long)]
        bench: bool,
        /// Extra arguments for every test binary (e.g. a test name filter; with --bench:
        /// seconds per storm and rounds).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The Debian package target/package/sensor_VERSION_ARCH.deb: the binary (glibc 2.31 symbol
    /// versions, OpenSSL and zlib static), the systemd unit, the configuration, man pages and
    /// shell completions.
    Package {
        /// Then install it on this machine, check it, run the unit's command, purge (as root;
        /// the install test `cargo xtask test` ends with).
        #[arg(long)]
        install_test: bool,
    },
    /// A long run at a ward terminal's rate with bursts: the sensor's memory, fds, threads,
    /// loss and queue depth over time (docs/soak/results.md and soak.svg).
    Soak {
        /// Length of the run.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Events per second of the steady load (a busy ward terminal).
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Events per second during a burst.
        #[arg(long, default_value_t = 5000)]
        burst_rate: u64,
        /// Seconds of each burst.
        #[arg(long, default_value_t = 15)]
        burst_secs: u64,
        /// A burst starts every this many seconds.
        #[arg(long, default_value_t = 300)]
        burst_every_secs: u64,
        /// Directory for results.md and soak.svg (default: docs/soak).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// The fuzz targets of fuzz/ (cargo-fuzz, nightly), each for --secs, from the corpus kept in
    /// fuzz/corpus; prints executions and coverage per target (target/fuzz/report.md).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// Merge what was found into fuzz/corpus, minimized (to commit).
        #[arg(long)]
        minimize: bool,
        /// One target (default: all).
        target: Option<String>,
    },
    /// Format all crates (`--check` to only check).
    Fmt {
        #[arg(long)]
        check: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ws = util::workspace_root()?;
    setup::setup(&ws)?;
    match cli.task {
        Task::Setup => setup::ensure_vm_packages(),
        Task::Build { release } => tasks::build(&ws, release),
        Task::Run { args } => tasks::run(&ws, &args),
        Task::Test { args } => tasks::test(&ws, &args),
        Task::Clippy => tasks::clippy(&ws),
        Task::Fmt { check } => tasks::fmt(&ws, check),
        Task::Package { install_test } => {
            let deb = package::package(&ws)?;
            if install_test {
                package::install_test::install_test(&ws, &deb)?;
            }
            Ok(())
        }
        Task::VmTest { kernels, jobs, timeout_secs, bench, args } => {
            setup::ensure_vm_packages()?;
            let timeout = std::time::Duration::from_secs(timeout_secs);
            vm::vm_test(&ws, &vm::VmOpts { kernels, jobs, timeout, bench, args })
        }
        Task::Fuzz { secs, minimize, target } => fuzz::fuzz(&ws, secs, target.as_deref(), minimize),
        Task::Soak { minutes, rate, burst_rate, burst_secs, burst_every_secs, out } => {
            soak::soak(&ws, &soak::SoakOpts { minutes, rate, burst_rate, burst_secs, burst_every_secs, out })
        }
        Task::Bench {
            rounds,
            round_secs,
            mixed_secs,
            mixed_rate,
            no_auditd,
            no_floor,
            compare_rules,
            no_micro,
            quick,
            out,
            keep_tmp,
        } => {
            let opts = bench::BenchOpts {
                rounds,
                round_secs,
                mixed_secs,
                mixed_rate,
                no_auditd,
                no_floor,
                compare_rules,
                no_micro,
                quick,
                keep_tmp,
                out,
            };
            bench::bench(&ws, &opts)
        }
    }
}
