//! `jsonl:PATH|-`: one canonical JSON record per line.

use std::{
    fs::OpenOptions,
    io::{BufWriter, Write},
    os::unix::fs::OpenOptionsExt as _,
};

use sensor_proto::AuditRecord;

use super::{
    Sink, SinkError, render,
    spec::{Format, JsonlTarget},
};

pub struct JsonlSink {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Flush after every record (stdout: a person or a pipe is watching).
    line_flush: bool,
    format: Format,
    line: Vec<u8>,
    /// The file, for fsync of urgent records (none for stdout, nor for a FIFO or a device,
    /// which cannot be synced: a pipe to a log shipper is a common target).
    file: Option<std::fs::File>,
}

impl JsonlSink {
    pub fn open(target: &JsonlTarget, format: Format) -> Result<Self, SinkError> {
        let mut file = None;
        let (name, out, line_flush): (String, Box<dyn Write + Send>, bool) = match target {
            JsonlTarget::Stdout => ("jsonl:-".into(), Box::new(std::io::stdout()), true),
            JsonlTarget::Path(p) => {
                let name = format!("jsonl:{}", p.display());
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|source| SinkError::Io { sink: name.clone(), source })?;
                if f.metadata().is_ok_and(|m| m.is_file()) {
                    file = f.try_clone().ok();
                }
                (name, Box::new(f), false)
            }
        };
        Ok(Self {
            name,
            out: BufWriter::with_capacity(64 * 1024, out),
            line_flush,
            format,
            line: Vec::new(),
            file,
        })
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), source }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, record: &AuditRecord, _encoded: &[u8]) -> Result<(), SinkError> {
        self.line.clear();
        render::json(record, self.format, &mut self.line)
            .map_err(|source| SinkError::Json { sink: self.name.clone(), source })?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(|e| self.io(e))?;
        if self.line_flush {
            self.out.flush().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))
    }

    /// Written and fsynced now.
    fn urgent(&mut self, _record: &AuditRecord, _encoded: &[u8]) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))?;
        match &self.file {
            Some(f) => f.sync_data().map_err(|e| self.io(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alert is urgent: written and synced at once. A FIFO or a device cannot be synced
    /// (EINVAL); that is no write error.
    #[test]
    fn urgent_records_to_a_fifo_or_a_device_are_no_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        // A reader keeps the FIFO open for the sink's writes (opening it read-write does not block).
        let reader = OpenOptions::new().read(true).write(true).open(&fifo).expect("fifo reader");
        let file = dir.path().join("records.jsonl");
        for path in [fifo.clone(), "/dev/null".into(), file.clone()] {
            let mut sink =
                JsonlSink::open(&JsonlTarget::Path(path.clone()), Format::default()).expect("open");
            let record = AuditRecord { seq: 7, ..AuditRecord::default() };
            sink.write(&record, &[]).expect("write");
            sink.urgent(&record, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        drop(reader);
        assert!(std::fs::read_to_string(&file).expect("read").contains("\"seq\""));
    }
}
