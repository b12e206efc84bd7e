//! The configuration file's shape: one serde struct per table, field names are the TOML keys.
//! `Validator` (in the parent module) maps them onto `Options` with the checks serde cannot
//! express.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::Deserialize;

use super::{
    detection,
    dispatcher::{DispatcherSetting, FentrySetting},
    units::{HumanDuration, Size},
};
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub(super) sensor: SensorSection,
    #[serde(default)]
    pub(super) filters: FiltersSection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) output: Vec<OutputSection>,
    #[serde(default)]
    pub(super) metrics: MetricsSection,
    #[serde(default)]
    pub(super) integrity: IntegritySection,
    #[serde(default)]
    pub(super) detection: detection::DetectionSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SensorSection {
    pub(super) args_max: Option<u32>,
    /// BTF file of the kernel, for kernels without `/sys/kernel/btf/vmlinux`.
    pub(super) btf: Option<PathBuf>,
    pub(super) report_threads: Option<bool>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    /// Time between heartbeat records ("0s": none).
    pub(super) heartbeat: Option<HumanDuration>,
    /// bpffs directory to pin the programs in (see `sensor run --pin-dir`).
    pub(super) pin_dir: Option<PathBuf>,
    pub(super) unpin_on_stop: Option<bool>,
    /// Watch system calls through the raw `sys_enter`/`sys_exit` dispatcher (x86-64):
    /// `"auto"`, `true` or `false`.
    pub(super) syscall_dispatcher: Option<DispatcherSetting>,
    /// Watch system calls through fentry/fexit stubs on the syscall functions where the kernel
    /// allows it: `"auto"`, `true` or `false`.
    pub(super) syscall_fentry: Option<FentrySetting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FiltersSection {
    #[serde(default)]
    pub(super) sensitive: Vec<String>,
    pub(super) no_default_sensitive: Option<bool>,
    #[serde(default)]
    pub(super) exclude_paths: Vec<PathBuf>,
    #[serde(default)]
    pub(super) include_paths: Vec<PathBuf>,
    pub(super) refresh: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub(super) queue_capacity: Option<usize>,
    pub(super) process_table_entries: Option<usize>,
    pub(super) ancestry_depth: Option<usize>,
    pub(super) ancestor_argv_bytes: Option<Size>,
    pub(super) hash_max_file_size: Option<Size>,
    pub(super) proc_ring_buffer: Option<Size>,
    pub(super) file_ring_buffer: Option<Size>,
    pub(super) net_ring_buffer: Option<Size>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputSection {
    pub(super) url: String,
    pub(super) format: Option<Format>,
    pub(super) file: Option<FileSection>,
    pub(super) tls: Option<TlsSection>,
    pub(super) spool: Option<SpoolSection>,
    pub(super) kafka: Option<BTreeMap<String, KafkaValue>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    Json,
    Ocsf,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Fsync {
    Rotate,
    Batch,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum LowSpace {
    Rotate,
    Stop,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum SpoolFull {
    DropOldest,
    DropNewest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSection {
    pub(super) max_file_bytes: Option<Size>,
    pub(super) max_file_age: Option<HumanDuration>,
    pub(super) max_files: Option<usize>,
    pub(super) max_total_bytes: Option<Size>,
    pub(super) fsync: Option<Fsync>,
    pub(super) fsync_interval: Option<HumanDuration>,
    pub(super) reserve: Option<Size>,
    pub(super) reserve_percent: Option<u8>,
    pub(super) on_low_space: Option<LowSpace>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpoolSection {
    pub(super) dir: Option<PathBuf>,
    pub(super) max_bytes: Option<Size>,
    pub(super) full: Option<SpoolFull>,
    pub(super) reserve: Option<Size>,
    pub(super) reserve_percent: Option<u8>,
    pub(super) on_low_space: Option<LowSpace>,
}

/// librdkafka properties are strings; numbers and booleans are accepted and written as text.
#[derive(Debug)]
pub(super) struct KafkaValue(pub(super) String);

impl<'de> Deserialize<'de> for KafkaValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KafkaValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KafkaValue, E> {
                Ok(KafkaValue(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KafkaValue, E> {
                Ok(KafkaValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KafkaValue, E> {
                Ok(KafkaValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<KafkaValue, E> {
                Ok(KafkaValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsSection {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntegritySection {
    pub(super) signing_key: Option<PathBuf>,
}
