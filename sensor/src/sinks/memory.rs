//! In-process sink handing records to a channel (tests and embedding programs).

use std::sync::mpsc::Sender;

use sensor_proto::AuditRecord;

use super::{Sink, SinkError};

#[derive(Debug)]
pub struct ChannelSink {
    tx: Sender<AuditRecord>,
}

impl ChannelSink {
    pub fn new(tx: Sender<AuditRecord>) -> Self {
        Self { tx }
    }
}

impl Sink for ChannelSink {
    fn name(&self) -> &str {
        "channel"
    }

    fn write(&mut self, record: &AuditRecord, _encoded: &[u8]) -> Result<(), SinkError> {
        self.tx.send(record.clone()).map_err(|_| SinkError::Io {
            sink: "channel".into(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
