//! Command line: `sensor run`, `sensor records cat|verify`, `sensor trace`, `sensor keygen`
//! and `sensor config check`.
//!
//! `run --config FILE` starts from the file; flags then add to it: repeatable flags add entries
//! (`--label` replaces a label of the same name), single-valued flags (`--args-max`,
//! `--metrics`) replace the file's value, switches turn a setting on.

use std::{net::SocketAddr, path::PathBuf, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tracing::info;

use crate::{
    config,
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
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: print OK and the effective settings, or every problem (exit 1).
    Check {
        #[arg(value_name = "FILE")]
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Record files or directories of them (rotated sets are read oldest first).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TraceTarget,
    /// Only records at or after this time: RFC 3339 UTC (2026-11-23T12:00:00Z) or a duration
    /// before now (-1h, 30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records at or before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// tree (text), json (SIEM/SOAR), dot (Graphviz) or svg (a picture, drawn by the sensor).
    #[arg(long, value_enum, default_value = "tree")]
    pub format: crate::trace::Format,
}

/// What `sensor trace` starts from (exactly one).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TraceTarget {
    /// Processes with this pid (every process that had it, when it was reused).
    #[arg(long)]
    pub pid: Option<u32>,
    /// The process with this GUID.
    #[arg(long)]
    pub guid: Option<String>,
    /// Processes that connected to (or accepted from, or sent a datagram to) ADDR[:PORT], or
    /// that resolved the host name.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = crate::trace::Target::parse_connect)]
    pub connect: Option<crate::trace::Target>,
    /// Processes with a file event on this path (or below it).
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// Processes of this login (audit) session.
    #[arg(long, value_name = "ID")]
    pub session: Option<u32>,
}

impl TraceTarget {
    fn into_target(self) -> anyhow::Result<crate::trace::Target> {
        use crate::trace::Target;
        let t = self
            .pid
            .map(Target::Pid)
            .or(self.guid.map(Target::Guid))
            .or(self.connect)
            .or(self.file.map(|f| Target::File(f.trim_end_matches('/').to_owned())))
            .or(self.session.map(Target::Session));
        t.context("one of --pid, --guid, --connect, --file, --session is required")
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML, see docs/sensor.example.toml). Flags add to it: repeatable
    /// flags add entries, single-valued flags replace the file's value, switches turn it on.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where records go: `jsonl:PATH`, `jsonl:-` (stdout), `file:DIR`, `syslog+tls://HOST:PORT`,
    /// `syslog+tcp://HOST:PORT` or `kafka://BROKER[,BROKER...]/TOPIC`. Repeatable.
    /// Default: `file:/var/lib/sensor/records` plus a short live view on stderr.
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<OutputSpec>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Bytes of argv captured per exec (at most 32767; default 32767).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=32767))]
    pub args_max: Option<u32>,
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
    /// Render the jsonl/syslog/kafka outputs given with --output as canonical JSON (`json`) or
    /// OCSF 1.3 events (`ocsf`); outputs from the config file have their own `format`.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<crate::sinks::spec::Format>,
    /// Sign checkpoint records with this Ed25519 private key (PKCS#8 PEM; see `sensor keygen`).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. `--metrics 127.0.0.1:9464`.
    #[arg(long = "metrics", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
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

fn parse_format(s: &str) -> Result<crate::sinks::spec::Format, String> {
    match s {
        "json" => Ok(crate::sinks::spec::Format::Json),
        "ocsf" => Ok(crate::sinks::spec::Format::Ocsf),
        other => Err(format!("`{other}`: expected json or ocsf")),
    }
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
        Command::Keygen { private_key } => {
            let public = crate::record::signing::generate(&private_key)?;
            println!("private key: {} (keep it on the sensor host, 0600)", private_key.display());
            println!("public key:  {} (for `sensor records verify --public-key`)", public.display());
            Ok(0)
        }
        Command::Config(ConfigCommand::Check { path }) => Ok(check_config(&path)),
        Command::Records(RecordsCommand::Verify { paths, public_key }) => {
            let key = public_key.as_deref().map(crate::record::signing::load_public).transpose()?;
            let r = records::verify::verify_with(&paths, key.as_ref())?;
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
            if key.is_some() {
                println!(
                    "signatures: {} checkpoints verified; {} records after the last signed checkpoint",
                    r.signed_checkpoints, r.unsigned_tail
                );
            }
            Ok(0)
        }
        Command::Trace(args) => trace(args),
    }
}

/// `config check`: OK and a summary on stdout, or the problems on stderr and exit code 1.
fn check_config(path: &std::path::Path) -> i32 {
    match config::load(path) {
        Ok(opts) => {
            println!("OK: {}", path.display());
            print!("{}", config::summary(&opts));
            0
        }
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

/// The settings of `sensor run`: the configuration file (or the defaults), then the flags.
pub fn run_options(args: RunArgs) -> anyhow::Result<Options> {
    let mut opts = match &args.config {
        Some(path) => config::load(path)?,
        None => Options::default(),
    };
    for spec in args.outputs {
        if opts.outputs.iter().any(|o| o.spec == spec) {
            anyhow::bail!("--output {spec}: already an output in the configuration file");
        }
        let mut out: crate::sinks::Output = spec.into();
        if let Some(format) = args.format {
            out.options.format = format;
        }
        opts.outputs.push(out);
    }
    if args.signing_key.is_some() {
        opts.signing_key = args.signing_key;
    }
    opts.labels.extend(args.labels);
    if let Some(n) = args.args_max {
        opts.args_max = n;
    }
    opts.report_threads |= args.report_threads;
    opts.sensitive_paths.extend(args.sensitive);
    opts.no_default_sensitive |= args.no_default_sensitive;
    opts.exclude_paths.extend(args.exclude_paths);
    opts.include_paths.extend(args.include_paths);
    if args.metrics.is_some() {
        opts.metrics_listen = args.metrics;
    }
    Ok(opts)
}

fn trace(args: TraceArgs) -> anyhow::Result<i32> {
    let now = std::time::SystemTime::now();
    let time = |t: Option<String>| {
        t.map(|t| crate::trace::parse_time(&t, now)).transpose().map_err(anyhow::Error::msg)
    };
    let query = crate::trace::Query {
        target: args.target.into_target()?,
        since: time(args.since)?,
        until: time(args.until)?,
    };
    let incident = crate::trace::trace(&args.paths, &query)?;
    for d in &incident.stats.damaged {
        eprintln!("warning: damaged record file, read up to the damage: {d}");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written =
        crate::trace::render(&incident, args.format, &mut out).and_then(|()| std::io::Write::flush(&mut out));
    match written {
        // `sensor trace … | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
        other => other?,
    }
    // 0: found; 2: nothing matched (like grep's "no match" but distinct from errors).
    Ok(if incident.nodes.is_empty() { 2 } else { 0 })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let duration = args.duration;
    let mut opts = run_options(args)?;
    let live_view = opts.outputs.is_empty();
    if live_view {
        opts.outputs.push(OutputSpec::File(DEFAULT_RECORD_DIR.into()).into());
    }
    info!(outputs = ?opts.outputs, metrics = ?opts.metrics_listen, "starting");
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

    wait_for_stop(duration).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        match Cli::try_parse_from(["sensor", "run"].iter().chain(args)).expect("parses").command {
            Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_add_to_or_replace_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sensor.toml");
        std::fs::write(
            &file,
            "[sensor]\nargs_max = 100\nlabels = { site = \"a\", ward = \"3\" }\n\
             [filters]\nsensitive = [\"/srv/x\"]\n[[output]]\nurl = \"jsonl:-\"\n\
             [metrics]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .expect("write");
        let cfg = file.to_str().expect("utf8");
        let o = run_options(run_args(&["--config", cfg])).expect("options");
        assert_eq!((o.args_max, o.outputs.len()), (100, 1));

        let o = run_options(run_args(&[
            "--config",
            cfg,
            "--args-max",
            "200",
            "--label",
            "site=b",
            "--sensitive",
            "/srv/y",
            "--output",
            "file:/r",
            "--metrics",
            "127.0.0.1:9999",
        ]))
        .expect("options");
        assert_eq!(o.args_max, 200);
        assert_eq!(o.labels.get("site").map(String::as_str), Some("b"));
        assert_eq!(o.labels.get("ward").map(String::as_str), Some("3"));
        assert_eq!(o.sensitive_paths, ["/srv/x", "/srv/y"]);
        assert_eq!(o.outputs.len(), 2);
        assert_eq!(o.metrics_listen, Some("127.0.0.1:9999".parse().expect("addr")));

        let dup = run_options(run_args(&["--config", cfg, "--output", "jsonl:-"])).expect_err("dup");
        assert!(dup.to_string().contains("already an output"), "{dup}");
        let bad = run_options(run_args(&["--config", "/nonexistent.toml"])).expect_err("missing");
        assert!(bad.to_string().contains("reading /nonexistent.toml"), "{bad}");
    }
}
