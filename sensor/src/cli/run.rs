//! `sensor run`: its flags, how they combine with the configuration file, and the run itself.

use std::{net::SocketAddr, path::PathBuf, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tracing::info;

use crate::{
    config,
    pipeline::{self, Options},
    sinks::OutputSpec,
};

pub use crate::config::DEFAULT_RECORD_DIR;

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
    /// Stop after this long: seconds (fractions allowed) or a duration such as `90s`, `15m`,
    /// `1h30m` (at most a year).
    #[arg(long, value_name = "DURATION", value_parser = parse_secs, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
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
    /// BTF of this kernel (raw BTF, e.g. BTFHub's `<release>.btf`), for kernels built without
    /// `/sys/kernel/btf/vmlinux`. Used even when the kernel has its own.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Sigma rule file or directory, added to the built-in rules and the configuration's.
    /// Repeatable. A broken rule stops the start with its file, rule id and problem.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Time between heartbeat records (the sensor's counters; a SIEM alerts on silence):
    /// seconds or a duration such as `30s`, `5m`. Default 30 s.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub heartbeat: Option<Duration>,
    /// Pin the programs, ring buffers and state maps under this bpffs directory (e.g.
    /// /sys/fs/bpf/sensor): they stay attached when the sensor ends, and the next start of the
    /// same version adopts them and reads what they kept, so a restart opens no hole.
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// With --pin-dir: remove the pins at a clean stop (the programs then detach).
    #[arg(long)]
    pub unpin_on_stop: bool,
}
/// Longest `--duration` accepted.
const MAX_DURATION_SECS: f64 = 366.0 * 86_400.0;

/// A positive duration up to [`MAX_DURATION_SECS`]: a number of seconds (fractions allowed), or
/// a duration with units as in the configuration file (`90s`, `15m`, `1h30m`), one grammar for
/// both.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = match s.trim().parse() {
        Ok(v) => v,
        Err(_) => crate::config::units::parse_duration(s)
            .map_err(|e| format!("{e}, or a number of seconds"))?
            .as_secs_f64(),
    };
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite number of seconds"));
    }
    if v <= 0.0 {
        return Err(format!("`{s}`: the duration must be more than 0 seconds"));
    }
    if v > MAX_DURATION_SECS {
        return Err(format!("`{s}` seconds is more than a year; leave --duration out to run until stopped"));
    }
    Ok(Duration::from_secs_f64(v))
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
/// The settings of `sensor run`: the configuration file (or the defaults), then the flags.
pub fn run_options(args: RunArgs) -> anyhow::Result<Options> {
    let mut opts = match &args.config {
        Some(path) => config::load(path)?,
        None => Options::default(),
    };
    opts.config_file = args.config.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
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
    if args.btf.is_some() {
        opts.btf = args.btf;
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
    if let Some(h) = args.heartbeat {
        opts.heartbeat = h;
    }
    if let Some(dir) = args.pin_dir {
        opts.pinning = Some(crate::pin::PinOptions { dir, unpin_on_stop: false });
    }
    if let Some(p) = opts.pinning.as_mut() {
        p.unpin_on_stop |= args.unpin_on_stop;
    }
    opts.detection.sources.paths.extend(args.rules);
    Ok(opts)
}
pub(super) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let duration = args.duration;
    let mut opts = run_options(args)?;
    let live_view = opts.outputs.is_empty();
    if live_view {
        opts.outputs.push(OutputSpec::File(DEFAULT_RECORD_DIR.into()).into());
    }
    info!(outputs = ?opts.outputs, metrics = ?opts.metrics_listen, "starting");
    // Handlers first: a SIGINT or SIGTERM during the start (which takes a second or two) is kept
    // and stops the sensor cleanly once it runs, instead of being lost or killing it half-started.
    let signals = Signals::install()?;
    let running = pipeline::start(opts).await?;
    info!("streaming records; stop with Ctrl-C");
    super::watchdog::ready();
    let watchdog = super::watchdog::spawn(running.stats.clone());

    let stats = running.stats.clone();
    let view = live_view.then(|| {
        tokio::spawn(async move {
            let mut shown = 0u32;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for line in stats.take_recent_alerts() {
                    eprintln!("{line}");
                }
                shown += 1;
                if !shown.is_multiple_of(5) {
                    continue;
                }
                eprintln!(
                    "records {} (alerts {}, loss records {}, sink errors {}) -> {DEFAULT_RECORD_DIR}",
                    stats.records.load(Ordering::Relaxed),
                    stats.alerts_total.load(Ordering::Relaxed),
                    stats.loss_records.load(Ordering::Relaxed),
                    stats.sink_errors.load(Ordering::Relaxed),
                );
            }
        })
    });

    let reason = signals.wait_for_stop(duration).await;
    running.set_stop_reason(reason);
    super::watchdog::stopping();
    if let Some(v) = view {
        v.abort();
    }
    // The pings go on while the sinks drain (a stop may take several seconds).
    let reports = running.stop().await?;
    if let Some(w) = watchdog {
        w.abort();
    }
    for r in reports.iter().filter(|r| r.errors > 0) {
        tracing::error!(sink = %r.name, errors = r.errors, "sink had write errors");
    }
    Ok(())
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
        })
    }

    async fn wait_for_stop(mut self, duration: Option<Duration>) -> pipeline::StopReason {
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = self.int.recv() => pipeline::StopReason::Signal("SIGINT"),
            _ = self.term.recv() => pipeline::StopReason::Signal("SIGTERM"),
            () = sleep => pipeline::StopReason::Duration,
        };
        info!(?reason, "stopping");
        reason
    }
}
#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn run_args(args: &[&str]) -> RunArgs {
        match Cli::try_parse_from(["sensor", "run"].iter().chain(args)).expect("parses").command {
            Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duration_must_be_a_sane_number_of_seconds() {
        assert_eq!(run_args(&["--duration", "2.5"]).duration, Some(Duration::from_millis(2500)));
        // The configuration file's grammar too.
        assert_eq!(run_args(&["--duration", "1m30s"]).duration, Some(Duration::from_secs(90)));
        assert_eq!(run_args(&["--heartbeat", "5m"]).heartbeat, Some(Duration::from_secs(300)));
        for bad in [
            "inf",
            "-inf",
            "NaN",
            "nan",
            "-1",
            "0",
            "1e30",
            "31708800.5",
            "",
            "ten",
            "0s",
            "400d",
            "5 parsecs",
        ] {
            let e = Cli::try_parse_from(["sensor", "run", "--duration", bad]).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
            assert!(e.to_string().contains("--duration"), "{bad}: {e}");
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
