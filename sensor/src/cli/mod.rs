//! Command line: `sensor run`, `sensor records cat|verify`, `sensor trace`, `sensor keygen`,
//! `sensor config check` and `sensor rules check|list|test|fields`.
//!
//! `run --config FILE` starts from the file; flags then add to it: repeatable flags add entries
//! (`--label` replaces a label of the same name), single-valued flags (`--args-max`,
//! `--metrics`) replace the file's value, switches turn a setting on.

mod records;
mod rules;
mod run;
mod trace;
mod watchdog;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::config;
pub use run::{DEFAULT_RECORD_DIR, RunArgs, run_options};
pub use trace::{TraceArgs, TraceTarget};

#[derive(Debug, Parser)]
#[command(
    name = "sensor",
    version,
    about = "eBPF kernel telemetry sensor: process, file and network audit records"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream audit records until SIGINT/SIGTERM or --duration, then flush every sink.
    Run(RunArgs),
    /// Work with record files written by `--output file:DIR`.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// From a suspicious record back to its source: the login session, the ancestors, the
    /// acting process and its descendants, and what each did. Reads record files (`file:DIR`).
    Trace(TraceArgs),
    /// Create an Ed25519 key pair for signing checkpoints: FILE (private, 0600) and FILE.pub.
    Keygen {
        #[arg(value_name = "FILE")]
        private_key: PathBuf,
    },
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Detection rules (Sigma): check, list, replay record files through them, field mapping.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Remove every pin (programs, links, maps) a sensor left under its pin directory, so its
    /// programs detach. Refuses while a sensor runs with that directory.
    Cleanup {
        /// The pin directory (`--pin-dir` / `[sensor] pin_dir` of the sensor).
        #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: print OK and the effective settings, or every problem (exit 1).
    Check {
        #[arg(value_name = "FILE")]
        path: PathBuf,
    },
}
#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Print record files (or directories of them) as canonical JSON lines.
    Cat {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Check the hash chain of record files: exit 0 when intact, 1 and the first bad record
    /// when records were altered, removed or reordered.
    Verify {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Also require every checkpoint to be signed by this Ed25519 key (SPKI PEM, the
        /// `.pub` file written by `sensor keygen`).
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args).await.map(|()| 0),
        Command::Records(RecordsCommand::Cat { paths }) => records::cat(&paths),
        Command::Keygen { private_key } => {
            let public = crate::recordbuild::signing::generate(&private_key)?;
            println!("private key: {} (keep it on the sensor host, 0600)", private_key.display());
            println!("public key:  {} (for `sensor records verify --public-key`)", public.display());
            Ok(0)
        }
        Command::Config(ConfigCommand::Check { path }) => Ok(check_config(&path)),
        Command::Records(RecordsCommand::Verify { paths, public_key }) => {
            records::verify(&paths, public_key.as_deref())
        }
        Command::Trace(args) => trace::trace(args),
        Command::Rules(cmd) => rules::dispatch(cmd),
        Command::Cleanup { pin_dir } => {
            let n = crate::pin::cleanup(&pin_dir)?;
            println!("removed {n} pin directories under {}", pin_dir.display());
            Ok(0)
        }
    }
}

/// `config check`: OK and a summary on stdout, or the problems on stderr and exit code 1.
fn check_config(path: &std::path::Path) -> i32 {
    match config::load(path) {
        Ok(opts) => match crate::detect::Detector::new(&opts.detection) {
            Ok(d) => {
                println!("OK: {}", path.display());
                print!("{}", config::summary(&opts));
                println!(
                    "rules: {} loaded, {} left out as unsupported",
                    d.rule_count(),
                    d.unsupported().len()
                );
                0
            }
            Err(e) => {
                eprintln!("{}: detection: {e}", path.display());
                1
            }
        },
        Err(config::ConfigError::Invalid { path, problems }) => {
            for p in problems {
                eprintln!("{}: {p}", path.display());
            }
            1
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
