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
    /// The file, for fsync of urgent records (none for stdout).
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
                file = f.try_clone().ok();
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
