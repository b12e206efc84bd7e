//! The settings of one sensor run ([`Options`]): built by the command line and the
//! configuration file (`cli/run.rs`, `config/`), read by the pipeline that starts the run, by
//! `lifecycle` (the `sensor_start` record) and here (the paths the run protects).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

pub use crate::loader::{SyscallDispatcher, SyscallFentry};
use crate::{
    detect::DetectConfig,
    enrich::EnrichConfig,
    protect::ProtectedPaths,
    sinks::{Output, Sink},
};

/// Default interval of heartbeat records.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Settings of one sensor run.
pub struct Options {
    pub outputs: Vec<Output>,
    /// Sinks built by the caller (tests, embedding programs).
    pub extra_sinks: Vec<Box<dyn Sink>>,
    pub labels: BTreeMap<String, String>,
    pub args_max: u32,
    pub queue_capacity: usize,
    pub drain_interval: Duration,
    pub loss_poll_interval: Duration,
    /// Size of the process-event ring buffer in bytes (a power-of-two multiple of the page
    /// size); `None`: scaled to the online CPUs (`loader::rings::default_bytes`).
    pub proc_ring_bytes: Option<u32>,
    /// Size of the file-event ring buffer in bytes; `None`: scaled to the online CPUs.
    pub file_ring_bytes: Option<u32>,
    /// Size of the network-event ring buffer in bytes; `None`: scaled to the online CPUs.
    pub net_ring_bytes: Option<u32>,
    /// Report new threads as fork events too.
    pub report_threads: bool,
    /// How system calls reach the programs (`[sensor] syscall_dispatcher`).
    pub syscall_dispatcher: SyscallDispatcher,
    /// Whether the fentry path is used where the kernel allows it (`[sensor] syscall_fentry`).
    pub syscall_fentry: SyscallFentry,
    /// Process table and hashing limits.
    pub enrich: EnrichConfig,
    /// Sensitive paths (in addition to the defaults unless `no_default_sensitive`).
    pub sensitive_paths: Vec<String>,
    pub no_default_sensitive: bool,
    /// Directories (or files) whose file activity is not reported. The outputs are always excluded.
    pub exclude_paths: Vec<std::path::PathBuf>,
    /// When not empty, only file activity at or below these (or on sensitive paths) is reported.
    pub include_paths: Vec<std::path::PathBuf>,
    /// How often the sensitive/excluded paths are re-resolved to inodes.
    pub filter_refresh: Duration,
    /// Ignore the sensor's own process (default). Tests that observe their own syscalls in
    /// process turn it off.
    pub ignore_self: bool,
    /// Serve Prometheus metrics on this address (`GET /metrics`); `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Ed25519 key that signs checkpoint records (`[integrity] signing_key`); `None`: unsigned.
    pub signing_key: Option<std::path::PathBuf>,
    /// BTF file of the kernel (`--btf`, `[sensor] btf`); `None`: the kernel's own.
    pub btf: Option<std::path::PathBuf>,
    /// Detection rules and their settings (`[detection]`).
    pub detection: DetectConfig,
    /// The configuration file the options came from (`--config`): protected like the binary.
    pub config_file: Option<std::path::PathBuf>,
    /// Interval of heartbeat records (zero: none).
    pub heartbeat: Duration,
    /// Pin the programs and maps in bpffs (see `crate::pin`); `None`: off.
    pub pinning: Option<crate::pin::PinOptions>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("outputs", &self.outputs)
            .field("extra_sinks", &self.extra_sinks.len())
            .field("labels", &self.labels)
            .field("args_max", &self.args_max)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            outputs: Vec::new(),
            extra_sinks: Vec::new(),
            labels: BTreeMap::new(),
            args_max: sensor_common::exec::CaptureConfig::DEFAULT.args_max,
            queue_capacity: 16 * 1024,
            drain_interval: Duration::from_millis(20),
            loss_poll_interval: Duration::from_secs(1),
            proc_ring_bytes: None,
            file_ring_bytes: None,
            net_ring_bytes: None,
            report_threads: false,
            syscall_dispatcher: SyscallDispatcher::Auto,
            syscall_fentry: SyscallFentry::Auto,
            enrich: EnrichConfig::default(),
            sensitive_paths: Vec::new(),
            no_default_sensitive: false,
            exclude_paths: Vec::new(),
            include_paths: Vec::new(),
            filter_refresh: Duration::from_secs(30),
            ignore_self: true,
            metrics_listen: None,
            signing_key: None,
            btf: None,
            detection: DetectConfig::default(),
            config_file: None,
            heartbeat: DEFAULT_HEARTBEAT,
            pinning: None,
        }
    }
}

impl Options {
    /// Everything a running sensor with these options protects.
    pub fn protected_paths(&self) -> ProtectedPaths {
        let opts = self;
        let mut e: Vec<(PathBuf, &'static str)> = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            e.push((exe, "binary"));
        }
        if let Some(c) = &opts.config_file {
            e.push((c.clone(), "config"));
        }
        if let Some(k) = &opts.signing_key {
            e.push((k.clone(), "key"));
            let mut public = k.clone().into_os_string();
            public.push(".pub");
            e.push((public.into(), "key"));
        }
        if let Some(b) = &opts.btf {
            e.push((b.clone(), "btf"));
        }
        let rules = &opts.detection.sources;
        e.extend(rules.paths.iter().chain(&rules.optional_dir).map(|p| (p.clone(), "rules")));
        for out in &opts.outputs {
            if let Some(p) = out.spec.local_path() {
                e.push((p, "records"));
            }
            if let Some(p) = crate::sinks::spool::output_spool_dir(out) {
                e.push((p, "spool"));
            }
            let tls = &out.options.tls;
            e.extend(
                [&tls.ca_file, &tls.cert_file, &tls.key_file]
                    .into_iter()
                    .flatten()
                    .map(|p| (p.clone(), "key")),
            );
        }
        if let Some(p) = &opts.pinning {
            e.push((p.dir.clone(), "pins"));
        }
        e.extend(crate::protect::cgroup_controls().into_iter().map(|p| (p, "cgroup")));
        ProtectedPaths::new(e)
    }
}
