//! Sinks: where records go. Each sink is its own module behind the [`Sink`] trait; the pipeline
//! fans every record out to all configured sinks and flushes them all at shutdown.

pub mod file;
pub mod jsonl;
pub mod kafka;
pub mod memory;
pub mod render;
pub mod spec;
pub mod spool;
pub mod syslog;
pub mod transport;

use sensor_proto::AuditRecord;

pub use spec::{Output, OutputOptions, OutputSpec};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {source}")]
    Io { sink: String, source: std::io::Error },
    #[error("{sink}: this output is not available in this build")]
    Unsupported { sink: String },
    #[error("{sink}: encoding JSON: {source}")]
    Json { sink: String, source: serde_json::Error },
    #[error("{sink}: {source}")]
    Kafka { sink: String, source: rdkafka::error::KafkaError },
    #[error("{sink}: delivery failed: {reason}")]
    Delivery { sink: String, reason: String },
    #[error("{sink}: TLS setup: {reason}")]
    Tls { sink: String, reason: String },
}

/// A destination for records.
pub trait Sink: Send {
    /// Short name for logs and metrics, e.g. `jsonl:/var/log/x.jsonl`.
    fn name(&self) -> &str;
    /// Accepts one record (may buffer). `encoded` is its protobuf encoding, the bytes the hash
    /// chain covers; sinks that store protobuf write exactly these.
    fn write(&mut self, record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError>;
    /// Makes everything accepted so far durable/visible.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Records this sink gave up since the last call (e.g. its spool was full), so the pipeline
    /// can account for them in a loss record. Sinks that never drop keep the default.
    fn take_dropped(&mut self) -> u64 {
        0
    }
    /// Counters of the sink's spool, for network sinks (metrics).
    fn spool_stats(&self) -> Option<std::sync::Arc<spool::SpoolStats>> {
        None
    }

    /// The sink's own view for the metrics endpoint (sampled by the record stage). Sinks without
    /// a spool or a remote keep the default.
    fn metrics(&self) -> SinkMetrics {
        SinkMetrics::default()
    }
}

/// What a sink reports about itself beyond what the pipeline sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkMetrics {
    /// Bytes waiting in the sink's spool (memory and disk).
    pub spool_bytes: u64,
    /// Records the destination has acknowledged, in total.
    pub delivered: u64,
    /// Delivery attempts that failed (connection refused, timeouts, …), in total.
    pub errors: u64,
}

/// Opens the sink an output names.
pub fn open(output: &Output) -> Result<Box<dyn Sink>, SinkError> {
    let opts = &output.options;
    Ok(match &output.spec {
        OutputSpec::Jsonl(target) => Box::new(jsonl::JsonlSink::open(target, opts.format)?),
        OutputSpec::File(dir) => Box::new(file::FileSink::open(dir, opts.file)?),
        OutputSpec::Syslog { tls, host, port } => Box::new(spool::DurableSink::open(
            syslog::SyslogTransport::new(*tls, host, *port, opts)?,
            syslog::SyslogTransport::new(*tls, host, *port, opts)?,
            &opts.spool,
        )?),
        OutputSpec::Kafka { brokers, topic } => Box::new(spool::DurableSink::open(
            kafka::KafkaTransport::new(brokers, topic, opts.format, &opts.kafka)?,
            kafka::KafkaTransport::new(brokers, topic, opts.format, &opts.kafka)?,
            &opts.spool,
        )?),
    })
}
