//! A short, human-readable account of effective settings (`sensor config check`).

use std::fmt::Write as _;

use super::units::{format_duration, format_size};
use crate::{
    options::Options,
    sinks::{Output, OutputSpec, spec},
};

/// The settings a run with `opts` would use, one topic per line.
pub fn summary(opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "outputs:");
    if opts.outputs.is_empty() {
        let _ = writeln!(s, "  (none: file:{} and a live view)", super::DEFAULT_RECORD_DIR);
    }
    for o in &opts.outputs {
        let _ = writeln!(s, "  {}", output(o));
    }
    let labels: Vec<String> = opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(s, "labels: {}", if labels.is_empty() { "(none)".into() } else { labels.join(", ") });
    let _ = writeln!(
        s,
        "capture: args_max {}B, report_threads {}, syscall_dispatcher {}, syscall_fentry {}",
        opts.args_max,
        if opts.report_threads { "yes" } else { "no" },
        opts.syscall_dispatcher.name(),
        opts.syscall_fentry.name()
    );
    if let Some(p) = &opts.pinning {
        let _ = writeln!(
            s,
            "pinning: {} ({})",
            p.dir.display(),
            if p.unpin_on_stop { "removed at a clean stop" } else { "kept across restarts" }
        );
    }
    if let Some(btf) = &opts.btf {
        let _ = writeln!(s, "kernel BTF: {} (instead of {})", btf.display(), crate::btf::VMLINUX_BTF);
    }
    let list = |v: &[std::path::PathBuf]| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        }
    };
    let _ = writeln!(
        s,
        "filters: sensitive {} (+{} configured), exclude {}, include {}, refresh every {}",
        if opts.no_default_sensitive { "without defaults" } else { "defaults" },
        opts.sensitive_paths.len(),
        list(&opts.exclude_paths),
        list(&opts.include_paths),
        format_duration(opts.filter_refresh)
    );
    let ring = |b: Option<u32>| b.map_or_else(|| "per CPU".to_owned(), |b| format_size(u64::from(b)));
    let _ = writeln!(
        s,
        "limits: queue {} events, process table {} entries, ancestry depth {} (command lines above \
         the parent cut to {}), hash files up to {}, ring buffers proc {} file {} net {}",
        opts.queue_capacity,
        opts.enrich.table.max_entries,
        opts.enrich.table.max_ancestors,
        format_size(u64::try_from(opts.enrich.table.ancestor_argv_bytes).unwrap_or(u64::MAX)),
        format_size(opts.enrich.hash_max_bytes.unwrap_or(crate::enrich::hasher::DEFAULT_MAX_FILE_BYTES)),
        ring(opts.proc_ring_bytes),
        ring(opts.file_ring_bytes),
        ring(opts.net_ring_bytes),
    );
    let _ = writeln!(
        s,
        "metrics: {}",
        opts.metrics_listen.map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"))
    );
    let _ = writeln!(
        s,
        "integrity: checkpoint signing {}",
        opts.signing_key.as_ref().map_or_else(|| "off".to_owned(), |k| format!("key {}", k.display()))
    );
    let d = &opts.detection;
    if d.enabled {
        let _ = writeln!(
            s,
            "detection: built-in rules {}, rule paths {}, alerts from level {}, {} disabled, {} exceptions, \
             suppress repeats for {}s",
            if d.sources.builtin { "on" } else { "off" },
            list(&d.sources.paths),
            d.min_level,
            d.disable.len(),
            d.exceptions.len(),
            d.suppress_secs,
        );
    } else {
        let _ = writeln!(s, "detection: off");
    }
    s
}

/// The disk-space policy in words.
fn disk(d: &spec::DiskOptions) -> String {
    let low = if d.on_low_space == spec::LowSpace::Rotate { "rotate" } else { "stop" };
    format!("keep {} or {}% free (on low space: {low})", format_size(d.reserve_bytes), d.reserve_percent)
}

fn output(o: &Output) -> String {
    let opts = &o.options;
    let mut parts = Vec::new();
    match &o.spec {
        OutputSpec::File(_) => {
            let f = &opts.file;
            let fsync = match f.fsync {
                spec::Fsync::Rotate => "rotate".to_owned(),
                spec::Fsync::Batch if f.fsync_interval.is_zero() => "batch".to_owned(),
                spec::Fsync::Batch => format!("batch (at most every {})", format_duration(f.fsync_interval)),
                spec::Fsync::Never => "never".to_owned(),
            };
            parts.push(format!(
                "rotate at {} or {}, keep {} files / {}, fsync {fsync}, {}",
                format_size(f.max_file_bytes),
                format_duration(f.max_file_age),
                f.max_files,
                format_size(f.max_total_bytes),
                disk(&f.disk)
            ));
        }
        OutputSpec::Jsonl(_) | OutputSpec::Syslog { .. } | OutputSpec::Kafka { .. } => {
            parts.push(format!("format {}", if opts.format == spec::Format::Ocsf { "ocsf" } else { "json" }));
        }
    }
    if let OutputSpec::Syslog { tls: true, host, .. } = &o.spec {
        let t = &opts.tls;
        let show = |p: &Option<std::path::PathBuf>, dflt: &str| {
            p.as_ref().map_or_else(|| dflt.to_owned(), |p| p.display().to_string())
        };
        parts.push(format!(
            "tls ca {}, client cert {}, server name {}",
            show(&t.ca_file, "system roots"),
            show(&t.cert_file, "none"),
            t.server_name.as_deref().unwrap_or(host)
        ));
    }
    if matches!(o.spec, OutputSpec::Syslog { .. } | OutputSpec::Kafka { .. }) {
        let sp = &opts.spool;
        parts.push(format!(
            "spool {} up to {}, when full {}, {}",
            sp.dir
                .as_ref()
                .map_or_else(|| "/var/lib/sensor/spool/<sink>".to_owned(), |d| d.display().to_string()),
            format_size(sp.max_bytes),
            if sp.full == spec::SpoolFull::DropOldest { "drop-oldest" } else { "drop-newest" },
            disk(&sp.disk)
        ));
    }
    if !opts.kafka.is_empty() {
        let props: Vec<String> = opts.kafka.keys().cloned().collect();
        parts.push(format!("kafka properties {}", props.join(", ")));
    }
    format!("{} ({})", o.spec, parts.join("; "))
}
