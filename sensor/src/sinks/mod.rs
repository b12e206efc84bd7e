//! Sinks: where records go. Each sink is its own module behind the [`Sink`] trait; the pipeline
//! fans every record out to all configured sinks and flushes them all at shutdown.

pub mod file;
pub mod jsonl;
pub mod kafka;
pub mod memory;
pub mod render;
pub mod space;
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
    /// Whether this sink reads `record.ancestors` (it renders the record from the struct). The
    /// record stage builds records without them (they are shared per process, and in
    /// `encoded`) and puts them in only when some sink says yes here.
    fn reads_ancestors(&self) -> bool {
        true
    }
    /// Makes everything accepted so far, `record` (just written) included, leave at once: on
    /// disk (fsync) for local outputs, sent ahead of what waits in the spool for network ones.
    /// Used for tamper alerts, so they leave the host even if the sensor dies a moment later.
    fn urgent(&mut self, _record: &AuditRecord, _encoded: &[u8]) -> Result<(), SinkError> {
        self.flush()
    }
    /// Records this sink gave up since the last call, by loss reason (`sink_spool_full`: its
    /// spool was full; `disk_full`: spooled records deleted to keep the disk reserve), so the
    /// pipeline can account for them in loss records. Sinks that never drop keep the default.
    fn take_dropped(&mut self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Records this sink could not write (a full disk, an I/O error), once it can write again —
    /// or, with `stopping`, in any case. The pipeline then writes the loss record built from it
    /// to every sink at once, so it is the first record after the gap in this sink's stream.
    /// Sinks that do not write to a local disk keep the default.
    fn take_loss(&mut self, _stopping: bool) -> Option<SinkLoss> {
        None
    }
    /// True while records are being counted instead of written (a gap is open): the pipeline
    /// then comes back to [`Sink::take_loss`] on a timer even when no records arrive, so the
    /// loss record does not wait for the next event.
    fn gap_open(&self) -> bool {
        false
    }
    /// Time after which this sink wants [`Sink::flush`] called again even if no record arrives
    /// (a deferred fsync); `None` when nothing waits.
    fn flush_due(&self) -> Option<std::time::Duration> {
        None
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

// What a sink reports about itself (plain numbers, stored in `Stats`) and the records it
// could not write (a loss record follows): shared with the rest of the pipeline.
pub use crate::{
    flow::SinkLoss,
    stats::{DiskMetrics, SinkMetrics},
};

/// Opens the sink an output names.
pub fn open(output: &Output) -> Result<Box<dyn Sink>, SinkError> {
    let opts = &output.options;
    Ok(match &output.spec {
        OutputSpec::Jsonl(target) => Box::new(jsonl::JsonlSink::open(target, opts.format)?),
        OutputSpec::File(dir) => Box::new(file::FileSink::open(dir, opts.file)?),
        // A network output: the encoder renders on the record thread, the one transport
        // delivers on the spool's sender thread.
        OutputSpec::Syslog { tls, host, port } => Box::new(spool::DurableSink::open(
            syslog::SyslogEncoder::new(*tls, host, *port, opts.format),
            syslog::SyslogTransport::new(*tls, host, *port, opts)?,
            &opts.spool,
        )?),
        OutputSpec::Kafka { brokers, topic } => Box::new(spool::DurableSink::open(
            kafka::KafkaEncoder::new(brokers, topic, opts.format),
            kafka::KafkaTransport::new(brokers, topic, &opts.kafka)?,
            &opts.spool,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `spec` with its spool in a temporary directory; returns the transports built.
    fn transports_built_by(spec: &str) -> usize {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut output = Output::from(spec.parse::<OutputSpec>().expect("spec"));
        output.options.spool.dir = Some(tmp.path().join("spool"));
        let before = transport::built();
        let sink = open(&output).expect("open");
        let built = transport::built() - before;
        drop(sink);
        built
    }

    #[test]
    fn a_network_output_builds_one_transport() {
        assert_eq!(transports_built_by("syslog+tcp://127.0.0.1:1"), 1);
        assert_eq!(transports_built_by("kafka://127.0.0.1:1/audit"), 1);
    }
}
