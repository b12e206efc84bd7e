//! `sensor` binary: parses the command line, sets up logging, runs the command.

use clap::Parser as _;
use sensor::cli::{Cli, dispatch};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sensor: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sensor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout may carry `jsonl:-` records). Level from `SENSOR_LOG` (default
/// `info`); the eBPF programs' aya-log output arrives through the `log` bridge.
fn init_logging() {
    // rsigma warns each time the correlation groups reach their cap (every 2,000 new groups
    // under a flood of them); the cap is by design (`detect::MAX_CORRELATION_GROUPS`) and the
    // count is in the stop log.
    let filter = EnvFilter::try_from_env("SENSOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rsigma_eval::correlation_engine=error"));
    let _ = tracing_log::LogTracer::init();
    // Colours only on a terminal: under systemd, stderr is the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
