//! `sensor trace`: its arguments and the command.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

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
    /// The alert record with this seq: the records that triggered it, their processes and
    /// the alert's process (the live view and `sensor rules test` print the seq).
    #[arg(long, value_name = "SEQ")]
    pub alert: Option<u64>,
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
            .or(self.session.map(Target::Session))
            .or(self.alert.map(|seq| Target::Alert { seq, triggers: std::collections::HashMap::new() }));
        t.context("one of --pid, --guid, --connect, --file, --session, --alert is required")
    }
}

pub(super) fn trace(args: TraceArgs) -> anyhow::Result<i32> {
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
