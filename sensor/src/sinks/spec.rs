//! Output specifications: where records go (`--output SPEC` or `[[output]]` in the config file)
//! and the per-output options.

use std::{path::PathBuf, str::FromStr, time::Duration};

/// Where `jsonl` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlTarget {
    Stdout,
    Path(PathBuf),
}

/// One output destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `jsonl:PATH` or `jsonl:-`
    Jsonl(JsonlTarget),
    /// `file:DIR`
    File(PathBuf),
    /// `syslog+tcp://HOST:PORT` or `syslog+tls://HOST:PORT`
    Syslog { tls: bool, host: String, port: u16 },
    /// `kafka://BROKER[,BROKER...]/TOPIC`
    Kafka { brokers: String, topic: String },
}

/// An output and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub spec: OutputSpec,
    pub options: OutputOptions,
}

impl From<OutputSpec> for Output {
    fn from(spec: OutputSpec) -> Self {
        Self { spec, options: OutputOptions::default() }
    }
}

/// How a record is rendered by the text sinks (jsonl, syslog, kafka).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The canonical JSON of the protobuf record.
    #[default]
    Json,
    /// OCSF 1.x classes (process, file system, network activity).
    Ocsf,
}

/// When the `file:` sink forces data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Only when a file is closed at rotation or shutdown.
    Rotate,
    /// Whenever the pipeline has caught up (a batch), at most once per
    /// [`FileOptions::fsync_interval`]; the default.
    #[default]
    Batch,
    /// Never call fsync (the page cache decides).
    Never,
}

/// What a sink that writes local files does when free space falls below its reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LowSpace {
    /// Delete the oldest kept files (record files; spool segments, whose records are counted as
    /// lost) until the reserve is free again; stop writing only when nothing is left to delete.
    #[default]
    Rotate,
    /// Stop writing (the records not written are counted and reported) until the reserve is
    /// free again.
    Stop,
}

/// Free space a sink leaves on its file system for the rest of the machine: the larger of
/// `bytes` and `percent` of the file system's size (auditd's `space_left`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskOptions {
    pub reserve_bytes: u64,
    pub reserve_percent: u8,
    pub on_low_space: LowSpace,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self { reserve_bytes: 256 * 1024 * 1024, reserve_percent: 5, on_low_space: LowSpace::default() }
    }
}

impl DiskOptions {
    /// No reserve: write until the disk is full (tests, which must not depend on how full the
    /// machine's disk is).
    pub const NONE: Self = Self { reserve_bytes: 0, reserve_percent: 0, on_low_space: LowSpace::Rotate };

    /// The reserve in bytes on a file system of `fs_bytes`.
    pub fn reserve(&self, fs_bytes: u64) -> u64 {
        let pct = u128::from(fs_bytes) * u128::from(self.reserve_percent) / 100;
        self.reserve_bytes.max(u64::try_from(pct).unwrap_or(u64::MAX))
    }
}

/// `file:` sink rotation, retention and durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOptions {
    pub max_file_bytes: u64,
    /// Start a new file when the current one is older than this.
    pub max_file_age: Duration,
    /// Keep at most this many record files (oldest deleted first).
    pub max_files: usize,
    /// Keep at most this many bytes of record files (oldest deleted first).
    pub max_total_bytes: u64,
    pub fsync: Fsync,
    /// With [`Fsync::Batch`]: the least time between two syncs (zero: at every catch-up). Bytes
    /// are handed to the kernel at every catch-up whatever this is (they survive the sensor
    /// being killed); urgent records (tamper and critical alerts) are synced at once.
    pub fsync_interval: Duration,
    /// Free space kept, and what happens below it.
    pub disk: DiskOptions,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 * 1024 * 1024,
            max_file_age: Duration::from_secs(3600),
            max_files: 64,
            max_total_bytes: 4 * 1024 * 1024 * 1024,
            fsync: Fsync::default(),
            fsync_interval: Duration::from_millis(200),
            disk: DiskOptions::default(),
        }
    }
}

/// TLS settings of `syslog+tls`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// PEM CA bundle that signs the server; default: the system trust store (rustls-native-certs,
    /// e.g. /etc/ssl/certs, where an internal CA is usually installed).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for servers that require client authentication.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify in the server certificate; default: the host of the URL.
    pub server_name: Option<String>,
}

/// What a full spool gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolFull {
    /// Delete the oldest spooled records (counted in a loss record), keep the newest.
    #[default]
    DropOldest,
    /// Refuse new records (counted in a loss record), keep the oldest.
    DropNewest,
}

/// The on-disk spool of a network sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Default: `/var/lib/sensor/spool/<sink>`.
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
    pub full: SpoolFull,
    /// Free space kept on the spool's file system, and what happens below it.
    pub disk: DiskOptions,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: 1024 * 1024 * 1024,
            full: SpoolFull::default(),
            disk: DiskOptions::default(),
        }
    }
}

/// Per-output options; each sink reads the part that applies to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputOptions {
    pub format: Format,
    pub file: FileOptions,
    pub tls: TlsOptions,
    pub spool: SpoolOptions,
    /// Extra librdkafka producer properties (`kafka:` only), e.g. `security.protocol`.
    pub kafka: std::collections::BTreeMap<String, String>,
}

impl OutputSpec {
    /// The local file or directory this output writes to, if any.
    pub fn local_path(&self) -> Option<PathBuf> {
        match self {
            Self::Jsonl(JsonlTarget::Path(p)) | Self::File(p) => Some(p.clone()),
            Self::Jsonl(JsonlTarget::Stdout) | Self::Syslog { .. } | Self::Kafka { .. } => None,
        }
    }
}

impl std::fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jsonl(JsonlTarget::Stdout) => write!(f, "jsonl:-"),
            Self::Jsonl(JsonlTarget::Path(p)) => write!(f, "jsonl:{}", p.display()),
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Syslog { tls, host, port } => {
                let scheme = if *tls { "tls" } else { "tcp" };
                if host.contains(':') {
                    write!(f, "syslog+{scheme}://[{host}]:{port}")
                } else {
                    write!(f, "syslog+{scheme}://{host}:{port}")
                }
            }
            Self::Kafka { brokers, topic } => write!(f, "kafka://{brokers}/{topic}"),
        }
    }
}

/// An IP address, or a DNS name: dot-separated labels of letters, digits, `-` and `_`.
fn valid_host(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    h.len() <= 253
        && h.trim_end_matches('.').split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Splits `HOST:PORT` or `[V6]:PORT`.
fn host_port(s: &str, whole: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(|| format!("`{whole}`: expected [IPV6]:PORT"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{whole}`: `[{}]` is not a host name or IP address", h.escape_debug()));
        }
        (h, p)
    } else {
        s.rsplit_once(':').ok_or_else(|| format!("`{whole}`: expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(format!("`{whole}`: empty host"));
    }
    if !valid_host(host) {
        return Err(format!("`{whole}`: `{}` is not a host name or IP address", host.escape_debug()));
    }
    let port = port.parse::<u16>().map_err(|_| format!("`{whole}`: `{port}` is not a port number"))?;
    if port == 0 {
        return Err(format!("`{whole}`: port 0"));
    }
    Ok((host.to_owned(), port))
}

impl FromStr for OutputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((scheme, rest)) = s.split_once("://") {
            return match scheme {
                "syslog+tcp" | "syslog+tls" => {
                    let (host, port) = host_port(rest.trim_end_matches('/'), s)?;
                    Ok(Self::Syslog { tls: scheme == "syslog+tls", host, port })
                }
                "kafka" => {
                    let (brokers, topic) = rest
                        .split_once('/')
                        .ok_or_else(|| format!("`{s}`: expected kafka://BROKERS/TOPIC"))?;
                    if brokers.is_empty() || topic.is_empty() || topic.contains('/') {
                        return Err(format!("`{s}`: expected kafka://BROKER[,BROKER...]/TOPIC"));
                    }
                    for b in brokers.split(',') {
                        host_port(b, s)?;
                    }
                    Ok(Self::Kafka { brokers: brokers.to_owned(), topic: topic.to_owned() })
                }
                other => Err(format!(
                    "`{s}`: unknown output `{other}://` (supported: syslog+tcp://, syslog+tls://, kafka://)"
                )),
            };
        }
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected SCHEME:TARGET, e.g. jsonl:- or file:/var/lib/sensor"))?;
        if rest.is_empty() {
            return Err(format!("`{s}`: missing target after `{scheme}:`"));
        }
        match scheme {
            "jsonl" if rest == "-" => Ok(Self::Jsonl(JsonlTarget::Stdout)),
            "jsonl" => Ok(Self::Jsonl(JsonlTarget::Path(rest.into()))),
            "file" => Ok(Self::File(rest.into())),
            other => Err(format!(
                "`{s}`: unknown output `{other}` (supported: jsonl, file, syslog+tcp, syslog+tls, kafka)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("jsonl:-".parse(), Ok(OutputSpec::Jsonl(JsonlTarget::Stdout)));
        assert_eq!("jsonl:/x".parse(), Ok(OutputSpec::Jsonl(JsonlTarget::Path("/x".into()))));
        assert_eq!("file:/d".parse(), Ok(OutputSpec::File("/d".into())));
        assert!("kafka".parse::<OutputSpec>().unwrap_err().contains("SCHEME:TARGET"));
        assert!("nope:x".parse::<OutputSpec>().unwrap_err().contains("unknown output `nope`"));
        assert!("file:".parse::<OutputSpec>().unwrap_err().contains("missing target"));
    }

    #[test]
    fn parses_network_specs() {
        let tls: OutputSpec = "syslog+tls://siem.example:6514".parse().expect("tls");
        assert_eq!(tls, OutputSpec::Syslog { tls: true, host: "siem.example".into(), port: 6514 });
        assert_eq!(tls.to_string(), "syslog+tls://siem.example:6514");
        let v6: OutputSpec = "syslog+tcp://[::1]:514".parse().expect("v6");
        assert_eq!(v6, OutputSpec::Syslog { tls: false, host: "::1".into(), port: 514 });
        assert_eq!(v6.to_string(), "syslog+tcp://[::1]:514");
        let k: OutputSpec = "kafka://a:9092,b:9092/audit".parse().expect("kafka");
        assert_eq!(k, OutputSpec::Kafka { brokers: "a:9092,b:9092".into(), topic: "audit".into() });
        assert!("syslog+tcp://host".parse::<OutputSpec>().unwrap_err().contains("HOST:PORT"));
        assert!("syslog+tcp://h:99999".parse::<OutputSpec>().unwrap_err().contains("not a port"));
        assert!("kafka://a:1".parse::<OutputSpec>().unwrap_err().contains("BROKERS/TOPIC"));
        assert!("http://x".parse::<OutputSpec>().unwrap_err().contains("unknown output `http://`"));
    }

    /// Found by fuzzing (output_spec): anything before the last `:` was taken as the host, so
    /// a spec with slashes, brackets or control characters parsed, and showed as one that did
    /// not parse back.
    #[test]
    fn hosts_must_be_names_or_addresses() {
        for bad in [
            "syslog+tcp://10syslog+tl01yslog+cs://[::1]:65p://100\u{17}14:514",
            "syslog+tcp://a/b:514",
            "syslog+tcp://a b:514",
            "syslog+tcp://[not-v6]:514",
            "syslog+tcp://..:514",
            "kafka://good:9092,b@d:9092/t",
        ] {
            let e = bad.parse::<OutputSpec>().expect_err(bad);
            assert!(e.contains("not a host name or IP address"), "{bad}: {e}");
        }
        for good in [
            "syslog+tcp://siem-1.example.org:514",
            "syslog+tls://[fe80::1]:6514",
            "syslog+tcp://10.0.0.1:514",
        ] {
            let spec: OutputSpec = good.parse().expect(good);
            assert_eq!(spec.to_string().parse::<OutputSpec>(), Ok(spec));
        }
    }
}
