//! The configuration file (TOML): outputs, filters, limits, metrics and integrity, mapped onto
//! [`Options`](crate::options::Options). The schema is documented in `docs/sensor.example.toml`.
//!
//! Every problem is reported with the full dotted name of the key (`output[1].spool.max_bytes`)
//! and the reason; problems found while reading the file (unknown keys, wrong types, bad units)
//! also carry the line and column. Paths must be absolute: a daemon's working directory is not
//! something an operator should have to think about.

mod detection;
mod dispatcher;
mod schema;
pub mod summary;
pub mod units;

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use dispatcher::{DispatcherSetting, FentrySetting};
use schema::{
    ConfigFile, FileSection, Format, Fsync, LimitsSection, LowSpace, OutputSection, SpoolFull, TlsSection,
};
use units::{HumanDuration, Size};

use crate::{
    options::Options,
    sinks::{Output, OutputOptions, OutputSpec, spec},
};

pub use summary::summary;

/// Default directory for record files when no output is configured.
pub const DEFAULT_RECORD_DIR: &str = "/var/lib/sensor/records";

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Full dotted name of the key, e.g. `output[1].spool.max_bytes`; empty for syntax errors.
    pub key: String,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, col)) = self.at {
            write!(f, "line {line}, column {col}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// Reads and checks a configuration file; the result is the defaults with the file's settings.
pub fn load(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(&text).map_err(|problems| ConfigError::Invalid { path: path.to_owned(), problems })
}

/// Parses and checks configuration text.
pub fn parse(text: &str) -> Result<Options, Vec<Problem>> {
    let raw = read(text).map_err(|p| vec![p])?;
    let mut v = Validator::default();
    let opts = v.options(raw);
    if v.problems.is_empty() { Ok(opts) } else { Err(v.problems) }
}

/// Deserializes, tracking the key path for errors.
fn read(text: &str) -> Result<ConfigFile, Problem> {
    let at = |span: Option<std::ops::Range<usize>>| span.map(|s| line_col(text, s.start));
    let de = toml::de::Deserializer::parse(text).map_err(|e| Problem {
        key: String::new(),
        at: at(e.span()),
        reason: e.message().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        Problem {
            key: if key == "." { String::new() } else { key },
            at: at(inner.span()),
            reason: inner.message().to_owned(),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

// ---- Checks that serde cannot express, each naming its key. ----

#[derive(Debug, Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), at: None, reason: reason.into() });
    }

    fn absolute(&mut self, key: &str, path: &Path) {
        if !path.is_absolute() {
            self.problem(key, format!("`{}` is relative; an absolute path is required", path.display()));
        }
    }

    fn at_least<T: PartialOrd + fmt::Display + Copy>(&mut self, key: &str, v: T, min: T) -> T {
        if v < min {
            self.problem(key, format!("{v} is too small (at least {min})"));
        }
        v
    }

    fn at_least_secs(&mut self, key: &str, d: std::time::Duration, min_secs: u64) -> std::time::Duration {
        if d < std::time::Duration::from_secs(min_secs) {
            self.problem(key, format!("{} is too small (at least {min_secs}s)", units::format_duration(d)));
        }
        d
    }

    fn options(&mut self, f: ConfigFile) -> Options {
        let mut o = Options::default();
        let s = f.sensor;
        if let Some(n) = s.args_max {
            if !(1..=32767).contains(&n) {
                self.problem("sensor.args_max", format!("{n} is out of range (1 to 32767)"));
            }
            o.args_max = n;
        }
        o.report_threads = s.report_threads.unwrap_or(o.report_threads);
        if let Some(DispatcherSetting(d)) = s.syscall_dispatcher {
            o.syscall_dispatcher = d;
        }
        if let Some(FentrySetting(f)) = s.syscall_fentry {
            o.syscall_fentry = f;
        }
        if let Some(btf) = s.btf {
            self.absolute("sensor.btf", &btf);
            o.btf = Some(btf);
        }
        if let Some(HumanDuration(d)) = s.heartbeat {
            o.heartbeat = if d.is_zero() { d } else { self.at_least_secs("sensor.heartbeat", d, 1) };
        }
        if let Some(dir) = s.pin_dir {
            self.absolute("sensor.pin_dir", &dir);
            o.pinning = Some(crate::pin::PinOptions { dir, unpin_on_stop: s.unpin_on_stop.unwrap_or(false) });
        }
        for k in s.labels.keys().filter(|k| k.is_empty()) {
            self.problem(format!("sensor.labels.\"{k}\""), "empty label name");
        }
        o.labels = s.labels;

        let fl = f.filters;
        for (i, p) in fl.sensitive.iter().enumerate() {
            self.absolute(&format!("filters.sensitive[{i}]"), Path::new(p));
        }
        for (i, p) in fl.exclude_paths.iter().enumerate() {
            self.absolute(&format!("filters.exclude_paths[{i}]"), p);
        }
        for (i, p) in fl.include_paths.iter().enumerate() {
            self.absolute(&format!("filters.include_paths[{i}]"), p);
        }
        o.sensitive_paths = fl.sensitive;
        o.no_default_sensitive = fl.no_default_sensitive.unwrap_or(false);
        o.exclude_paths = fl.exclude_paths;
        o.include_paths = fl.include_paths;
        if let Some(HumanDuration(d)) = fl.refresh {
            o.filter_refresh = self.at_least_secs("filters.refresh", d, 1);
        }

        self.limits(&f.limits, &mut o);
        for (i, out) in f.output.into_iter().enumerate() {
            if let Some(out) = self.output(i, out) {
                if let Some(j) = o.outputs.iter().position(|p| p.spec == out.spec) {
                    self.problem(format!("output[{i}].url"), format!("same destination as output[{j}]"));
                }
                o.outputs.push(out);
            }
        }
        if let Some(listen) = f.metrics.listen {
            match listen.parse::<SocketAddr>() {
                Ok(a) if a.port() == 0 => self.problem("metrics.listen", "port 0"),
                Ok(a) => o.metrics_listen = Some(a),
                Err(_) => self.problem(
                    "metrics.listen",
                    format!("`{listen}` is not an IP address and port, e.g. \"127.0.0.1:9464\""),
                ),
            }
        }
        if let Some(key) = f.integrity.signing_key {
            self.absolute("integrity.signing_key", &key);
            o.signing_key = Some(key);
        }
        o.detection = self.detection(f.detection);
        o
    }

    fn limits(&mut self, l: &LimitsSection, o: &mut Options) {
        if let Some(n) = l.queue_capacity {
            o.queue_capacity = self.at_least("limits.queue_capacity", n, 1);
        }
        if let Some(n) = l.process_table_entries {
            o.enrich.table.max_entries = self.at_least("limits.process_table_entries", n, 64);
        }
        if let Some(n) = l.ancestry_depth {
            o.enrich.table.max_ancestors = self.at_least("limits.ancestry_depth", n, 1);
        }
        if let Some(Size(n)) = l.ancestor_argv_bytes {
            o.enrich.table.ancestor_argv_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(Size(n)) = l.hash_max_file_size {
            o.enrich.hash_max_bytes = Some(n);
        }
        o.proc_ring_bytes = l.proc_ring_buffer.and_then(|s| self.ring("limits.proc_ring_buffer", s));
        o.file_ring_bytes = l.file_ring_buffer.and_then(|s| self.ring("limits.file_ring_buffer", s));
        o.net_ring_bytes = l.net_ring_buffer.and_then(|s| self.ring("limits.net_ring_buffer", s));
    }

    /// A BPF ring buffer size: a power of two and a multiple of the page size.
    fn ring(&mut self, key: &str, Size(n): Size) -> Option<u32> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(4096);
        match u32::try_from(n) {
            Ok(v) if n.is_power_of_two() && n >= page => Some(v),
            _ => {
                self.problem(
                    key,
                    format!(
                        "{} must be a power of two, at least the page size ({}) and below 4GiB",
                        units::format_size(n),
                        units::format_size(page)
                    ),
                );
                None
            }
        }
    }

    fn output(&mut self, i: usize, s: OutputSection) -> Option<Output> {
        let key = |k: &str| format!("output[{i}].{k}");
        let spec = match s.url.parse::<OutputSpec>() {
            Ok(spec) => spec,
            Err(e) => {
                self.problem(key("url"), e);
                return None;
            }
        };
        if let Some(p) = spec.local_path() {
            self.absolute(&key("url"), &p);
        }
        let kind = match &spec {
            OutputSpec::Jsonl(_) => "jsonl",
            OutputSpec::File(_) => "file",
            OutputSpec::Syslog { tls: false, .. } => "syslog+tcp",
            OutputSpec::Syslog { tls: true, .. } => "syslog+tls",
            OutputSpec::Kafka { .. } => "kafka",
        };
        let network = matches!(spec, OutputSpec::Syslog { .. } | OutputSpec::Kafka { .. });
        let mut applies = |k: &str, present: bool, ok: bool, which: &str| {
            if present && !ok {
                self.problem(key(k), format!("does not apply to {kind} outputs (only to {which})"));
            }
        };
        applies(
            "format",
            s.format.is_some(),
            !matches!(spec, OutputSpec::File(_)),
            "jsonl, syslog and kafka",
        );
        applies("file", s.file.is_some(), matches!(spec, OutputSpec::File(_)), "file");
        applies("tls", s.tls.is_some(), kind == "syslog+tls", "syslog+tls");
        applies("spool", s.spool.is_some(), network, "syslog and kafka");
        applies("kafka", s.kafka.is_some(), kind == "kafka", "kafka");

        let mut options = OutputOptions::default();
        if let Some(f) = s.format {
            options.format = match f {
                Format::Json => spec::Format::Json,
                Format::Ocsf => spec::Format::Ocsf,
            };
        }
        if let Some(f) = s.file {
            self.file_options(i, &f, &mut options.file);
        }
        if let Some(t) = s.tls {
            self.tls_options(i, t, &mut options.tls);
        }
        if let Some(sp) = s.spool {
            if let Some(d) = &sp.dir {
                self.absolute(&key("spool.dir"), d);
            }
            options.spool.dir = sp.dir;
            if let Some(Size(n)) = sp.max_bytes {
                options.spool.max_bytes = self.at_least(&key("spool.max_bytes"), n, 1 << 20);
            }
            if let Some(full) = sp.full {
                options.spool.full = match full {
                    SpoolFull::DropOldest => spec::SpoolFull::DropOldest,
                    SpoolFull::DropNewest => spec::SpoolFull::DropNewest,
                };
            }
            let disk = (sp.reserve, sp.reserve_percent, sp.on_low_space);
            self.disk_options(&key("spool"), disk, &mut options.spool.disk);
        }
        for (k, v) in s.kafka.unwrap_or_default() {
            if k.is_empty() || k == "bootstrap.servers" {
                let why = if k.is_empty() { "empty property name" } else { "the brokers come from the url" };
                self.problem(key(&format!("kafka.\"{k}\"")), why);
            }
            options.kafka.insert(k, v.0);
        }
        Some(Output { spec, options })
    }

    fn file_options(&mut self, i: usize, f: &FileSection, o: &mut spec::FileOptions) {
        let key = |k: &str| format!("output[{i}].file.{k}");
        if let Some(Size(n)) = f.max_file_bytes {
            o.max_file_bytes = self.at_least(&key("max_file_bytes"), n, 4096);
        }
        if let Some(HumanDuration(d)) = f.max_file_age {
            o.max_file_age = self.at_least_secs(&key("max_file_age"), d, 1);
        }
        if let Some(n) = f.max_files {
            o.max_files = self.at_least(&key("max_files"), n, 1);
        }
        if let Some(Size(n)) = f.max_total_bytes {
            o.max_total_bytes = n;
        }
        if o.max_total_bytes < o.max_file_bytes {
            self.problem(
                key("max_total_bytes"),
                format!(
                    "{} is less than max_file_bytes ({})",
                    units::format_size(o.max_total_bytes),
                    units::format_size(o.max_file_bytes)
                ),
            );
        }
        if let Some(fsync) = f.fsync {
            o.fsync = match fsync {
                Fsync::Rotate => spec::Fsync::Rotate,
                Fsync::Batch => spec::Fsync::Batch,
                Fsync::Never => spec::Fsync::Never,
            };
        }
        if let Some(HumanDuration(d)) = f.fsync_interval {
            if d > std::time::Duration::from_secs(60) {
                self.problem(
                    key("fsync_interval"),
                    format!(
                        "{} is too large (at most 1m; \"rotate\" syncs only at rotation)",
                        units::format_duration(d)
                    ),
                );
            }
            o.fsync_interval = d;
        }
        self.disk_options(
            &format!("output[{i}].file"),
            (f.reserve, f.reserve_percent, f.on_low_space),
            &mut o.disk,
        );
    }

    /// `reserve`, `reserve_percent` and `on_low_space` of a file output or a spool.
    fn disk_options(
        &mut self,
        table: &str,
        (reserve, percent, low): (Option<Size>, Option<u8>, Option<LowSpace>),
        o: &mut spec::DiskOptions,
    ) {
        if let Some(Size(n)) = reserve {
            o.reserve_bytes = n;
        }
        if let Some(p) = percent {
            if p > 99 {
                self.problem(format!("{table}.reserve_percent"), format!("{p} is out of range (0 to 99)"));
            }
            o.reserve_percent = p.min(99);
        }
        if let Some(l) = low {
            o.on_low_space = match l {
                LowSpace::Rotate => spec::LowSpace::Rotate,
                LowSpace::Stop => spec::LowSpace::Stop,
            };
        }
    }

    fn tls_options(&mut self, i: usize, t: TlsSection, o: &mut spec::TlsOptions) {
        let key = |k: &str| format!("output[{i}].tls.{k}");
        for (k, p) in [("ca_file", &t.ca_file), ("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
            if let Some(p) = p {
                self.absolute(&key(k), p);
            }
        }
        match (&t.cert_file, &t.key_file) {
            (Some(_), None) => self.problem(key("cert_file"), "set without key_file (both are needed)"),
            (None, Some(_)) => self.problem(key("key_file"), "set without cert_file (both are needed)"),
            _ => {}
        }
        if t.server_name.as_deref().is_some_and(str::is_empty) {
            self.problem(key("server_name"), "empty");
        }
        *o = spec::TlsOptions {
            ca_file: t.ca_file,
            cert_file: t.cert_file,
            key_file: t.key_file,
            server_name: t.server_name,
        };
    }
}

#[cfg(test)]
mod tests;
