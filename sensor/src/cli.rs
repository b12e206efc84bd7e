//! Command line: `sensor run` and `sensor records cat`.

use std::{collections::BTreeMap, path::PathBuf, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tracing::info;

use crate::{
    pipeline::{self, Options},
    records,
    sinks::OutputSpec,
};

/// Default directory for record files when no `--output` is given.
pub const DEFAULT_RECORD_DIR: &str = "/var/lib/sensor/records";

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
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where records go: `jsonl:PATH`, `jsonl:-` (stdout), `file:DIR`, `syslog+tls://HOST:PORT`,
    /// `syslog+tcp://HOST:PORT` or `kafka://BROKER[,BROKER...]/TOPIC`. Repeatable.
    /// Default: `file:/var/lib/sensor/records` plus a short live view on stderr.
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<OutputSpec>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Bytes of argv captured per exec (at most 32767).
    #[arg(long, value_name = "BYTES", default_value_t = 32767, value_parser = clap::value_parser!(u32).range(1..=32767))]
    pub args_max: u32,
    /// Also report new threads (clone with CLONE_THREAD) as fork records.
    #[arg(long)]
    pub report_threads: bool,
    /// A sensitive file or directory (reads are reported, records marked). `*` matches within a
    /// path component. Repeatable; added to the defaults (shadow files, sudoers, SSH keys).
    #[arg(long = "sensitive", value_name = "PATH")]
    pub sensitive: Vec<String>,
    /// Do not use the default sensitive paths.
    #[arg(long)]
    pub no_default_sensitive: bool,
    /// A directory whose file activity is not reported. Repeatable. Outputs are always excluded.
    #[arg(long = "exclude-path", value_name = "PATH")]
    pub exclude_paths: Vec<PathBuf>,
    /// Report only file activity at or below this directory (and on sensitive paths). Repeatable.
    #[arg(long = "include-path", value_name = "PATH")]
    pub include_paths: Vec<PathBuf>,
    /// A label added to every record's host, e.g. `--label site=north-ward`. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
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
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}`: empty label key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run(args).await.map(|()| 0),
        Command::Records(RecordsCommand::Cat { paths }) => {
            let summary = records::cat(&paths, &mut std::io::stdout().lock())?;
            Ok(if summary.damaged.is_empty() { 0 } else { 1 })
        }
        Command::Records(RecordsCommand::Verify { paths }) => {
            let r = records::verify::verify(&paths)?;
            for t in &r.torn {
                eprintln!("warning: torn record (a crash mid-write): {t}");
            }
            if let Some(p) = &r.problem {
                println!("FAILED: {p}");
                return Ok(1);
            }
            let end = if r.complete {
                "ends with a final checkpoint"
            } else {
                "does not end with a final checkpoint (still running, crashed, or cut short)"
            };
            println!(
                "OK: {} records in {} files from {} sensor runs; chain intact; {end}",
                r.records, r.files, r.runs
            );
            Ok(0)
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let live_view = args.outputs.is_empty();
    let outputs: Vec<crate::sinks::Output> = if live_view {
        vec![OutputSpec::File(DEFAULT_RECORD_DIR.into()).into()]
    } else {
        args.outputs.into_iter().map(Into::into).collect()
    };
    info!(?outputs, "starting");
    let opts = Options {
        outputs,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        args_max: args.args_max,
        report_threads: args.report_threads,
        sensitive_paths: args.sensitive,
        no_default_sensitive: args.no_default_sensitive,
        exclude_paths: args.exclude_paths,
        include_paths: args.include_paths,
        ..Options::default()
    };
    let running = pipeline::start(opts).await?;
    info!("streaming records; stop with Ctrl-C");

    let stats = running.stats.clone();
    let view = live_view.then(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "records {} (loss records {}, sink errors {}) -> {DEFAULT_RECORD_DIR}",
                    stats.records.load(Ordering::Relaxed),
                    stats.loss_records.load(Ordering::Relaxed),
                    stats.sink_errors.load(Ordering::Relaxed),
                );
            }
        })
    });

    wait_for_stop(args.duration).await?;
    if let Some(v) = view {
        v.abort();
    }
    let reports = running.stop().await?;
    for r in reports.iter().filter(|r| r.errors > 0) {
        tracing::error!(sink = %r.name, errors = r.errors, "sink had write errors");
    }
    Ok(())
}

async fn wait_for_stop(duration: Option<f64>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let sleep = async {
        match duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = int.recv() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
        () = sleep => info!("duration reached: stopping"),
    }
    Ok(())
}
