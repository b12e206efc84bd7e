//! `cargo xtask`: the project's tasks. Every task first runs `setup`, so a fresh clone needs
//! nothing else.

mod bench;
mod setup;
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
    /// Benchmarks: workload cost with and without the sensor (ratios), sensor memory.
    Bench {
        /// Length of the sustained exec storm (sensor RSS is sampled every second).
        #[arg(long, default_value_t = 60)]
        storm_secs: u64,
        /// Length of each round of the with/without comparison.
        #[arg(long, default_value_t = 5)]
        round_secs: u64,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
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
        /// Extra arguments for every test binary (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
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
        Task::VmTest { kernels, jobs, timeout_secs, args } => {
            setup::ensure_vm_packages()?;
            let timeout = std::time::Duration::from_secs(timeout_secs);
            vm::vm_test(&ws, &vm::VmOpts { kernels, jobs, timeout, args })
        }
        Task::Bench { storm_secs, round_secs, rounds } => {
            bench::bench(&ws, bench::BenchOpts { storm_secs, round_secs, rounds })
        }
    }
}
