//! `sensor rules check|list|test|fields`: validate, list and replay detection rules offline.

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::{
    detect::{self, DetectConfig, Detector, Level, RuleKind, Severity, Sources, fields::command_line},
    enrich::Enriched,
    recordfile::{
        expand_paths,
        reader::{Frame, RecordReader},
    },
};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files or directories: every error and every construct the sensor cannot
    /// evaluate, with file, rule id and reason. Exit 1 when there is an error.
    Check {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List the rules that would be loaded: id, level, category, ATT&CK techniques, title.
    List(ListArgs),
    /// Replay record files (`file:DIR` output) through rules and print the alerts they raise.
    Test(TestArgs),
    /// The field mapping: which fields rules can use on which log source categories.
    Fields,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Rule files or directories, in addition to the built-in set.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in rule set.
    #[arg(long)]
    pub no_builtin: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Rule files or directories to replay the records through (repeatable).
    #[arg(long = "rules", value_name = "PATH", required_unless_present = "builtin")]
    pub rules: Vec<PathBuf>,
    /// Also use the built-in rule set.
    #[arg(long)]
    pub builtin: bool,
    /// Alerts below this level are not shown (default: all).
    #[arg(long, value_name = "LEVEL", value_parser = parse_level, default_value = "informational")]
    pub min_level: Level,
    /// Print each alert as a canonical JSON record instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Record files or directories of them, replayed in order.
    #[arg(required = true, value_name = "RECORD_FILES")]
    pub records: Vec<PathBuf>,
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| format!("`{s}`: expected informational, low, medium, high or critical"))
}

pub fn dispatch(cmd: RulesCommand) -> anyhow::Result<i32> {
    match cmd {
        RulesCommand::Check { paths } => Ok(check(&paths)),
        RulesCommand::List(a) => list(&a),
        RulesCommand::Test(a) => test(&a),
        RulesCommand::Fields => {
            print!("{}", detect::fields::markdown_table());
            Ok(0)
        }
    }
}

/// `rules check`: problems on stderr, a summary on stdout; exit 1 on errors.
fn check(paths: &[PathBuf]) -> i32 {
    let set = detect::read_rules(&Sources { builtin: false, paths: paths.to_vec(), optional_dir: None });
    for p in &set.problems {
        eprintln!("{p}");
    }
    let errors = set.errors().count();
    let unsupported = set.problems.iter().filter(|p| p.severity == Severity::Unsupported).count();
    println!(
        "{}: {} rules and {} correlation rules from {} files; {errors} errors; {unsupported} unsupported (left out)",
        if errors == 0 { "OK" } else { "FAILED" },
        set.rules.len(),
        set.correlations.len(),
        set.files,
    );
    i32::from(errors > 0)
}

fn list(a: &ListArgs) -> anyhow::Result<i32> {
    let set = detect::read_rules(&Sources {
        builtin: !a.no_builtin,
        paths: a.rules.clone(),
        optional_dir: Some(detect::load::SITE_RULES.into()),
    });
    for p in &set.problems {
        eprintln!("{p}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<48} {:<13} {:<18} {:<22} TITLE", "ID", "LEVEL", "CATEGORY", "TECHNIQUES")?;
    for m in detect::list(&set) {
        let category = match &m.kind {
            RuleKind::Detection { category: Some(c) } => c.name().to_owned(),
            RuleKind::Detection { category: None } => "(any)".to_owned(),
            RuleKind::Correlation { correlation_type, .. } => format!("corr:{correlation_type}"),
        };
        writeln!(
            out,
            "{:<48} {:<13} {:<18} {:<22} {}",
            m.id,
            m.level.as_str(),
            category,
            m.techniques.join(","),
            m.title
        )?;
    }
    Ok(i32::from(set.has_errors()))
}

/// `rules test`: the alerts the records raise, one per line (or JSON); exit 1 when the rules
/// do not load, 0 otherwise (whether or not anything fired).
fn test(a: &TestArgs) -> anyhow::Result<i32> {
    let cfg = DetectConfig {
        sources: Sources { builtin: a.builtin, paths: a.rules.clone(), optional_dir: None },
        min_level: a.min_level,
        // Offline replay shows every match.
        suppress_secs: 0,
        ..DetectConfig::default()
    };
    let mut detector = match Detector::new(&cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    for p in detector.unsupported() {
        eprintln!("{p}");
    }
    let mut out = std::io::stdout().lock();
    let mut alerts = Vec::new();
    let (mut records, mut fired) = (0u64, 0u64);
    for path in expand_paths(&a.records)? {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        for frame in RecordReader::new(std::io::BufReader::new(file)) {
            let record = match frame {
                Frame::Record { record, .. } => record,
                Frame::Damaged { offset, reason } => {
                    eprintln!("warning: {}: at byte {offset}: {reason}; next file", path.display());
                    break;
                }
            };
            records += 1;
            detector.evaluate(&record, &mut alerts);
            for alert in alerts.drain(..) {
                fired += 1;
                print_alert(&mut out, &record, &alert, a.json)?;
            }
        }
    }
    eprintln!("{records} records replayed through {} rules: {fired} alerts", detector.rule_count());
    Ok(0)
}

fn print_alert(
    out: &mut impl std::io::Write,
    trigger: &sensor_proto::AuditRecord,
    alert: &Enriched,
    json: bool,
) -> anyhow::Result<()> {
    let sensor_proto::v1::audit_record::Event::Alert(a) = &alert.event else { return Ok(()) };
    if json {
        let record = sensor_proto::AuditRecord {
            schema_version: sensor_proto::SCHEMA_VERSION,
            time: trigger.time,
            boot_ns: trigger.boot_ns,
            host: trigger.host.clone(),
            process: alert.process.clone(),
            ancestors: alert.ancestors.to_vec(),
            event: Some(alert.event.clone()),
            ..Default::default()
        };
        writeln!(out, "{}", sensor_proto::to_json(&record)?)?;
        return Ok(());
    }
    let (pid, exe, cmd) = alert
        .process
        .as_ref()
        .map_or((0, "", String::new()), |p| (p.pid, p.exe.as_str(), command_line(&p.argv)));
    let what = if a.correlation_type.is_empty() {
        String::new()
    } else {
        format!(" [{} {} in {}s]", a.correlation_type, a.count, a.window_secs)
    };
    writeln!(
        out,
        "seq {:<8} {:<13} {:<44} {}{what}\n    pid {pid} {exe} ({cmd}); triggers: {:?}; {}",
        trigger.seq,
        a.level,
        a.rule_id,
        a.title,
        a.trigger_seqs,
        a.techniques.join(","),
    )?;
    Ok(())
}
