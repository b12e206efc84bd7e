//! `file:DIR`: length-delimited protobuf record files, rotated by size, with retention by count.
//!
//! Each file is a sequence of `varint(len) || AuditRecord` frames (prost's length-delimited
//! encoding). Files are created 0600 in a 0700 directory and named
//! `audit-<unix-ms>-<n>.pb`, so name order is write order.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{BufWriter, Write},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use sensor_proto::AuditRecord;

use super::{Sink, SinkError};

/// File name prefix and suffix of record files.
pub const FILE_PREFIX: &str = "audit-";
pub const FILE_SUFFIX: &str = ".pb";

/// When to start a new file and how many to keep.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub max_file_bytes: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self { max_file_bytes: 64 * 1024 * 1024, max_files: 64 }
    }
}

#[derive(Debug)]
pub struct FileSink {
    name: String,
    dir: PathBuf,
    rotation: Rotation,
    current: Option<(BufWriter<File>, u64)>,
    files_opened: u64,
    buf: Vec<u8>,
}

impl FileSink {
    pub fn open(dir: &Path, rotation: Rotation) -> Result<Self, SinkError> {
        let name = format!("file:{}", dir.display());
        let io = |source| SinkError::Io { sink: name.clone(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        // An existing directory keeps its owner but gets owner-only access.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Self { name, dir: dir.to_owned(), rotation, current: None, files_opened: 0, buf: Vec::new() })
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), source }
    }

    fn new_file(&mut self) -> Result<(), SinkError> {
        if let Some((mut w, _)) = self.current.take() {
            w.flush().map_err(|e| self.io(e))?;
            w.get_ref().sync_data().map_err(|e| self.io(e))?;
        }
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = self.dir.join(format!("{FILE_PREFIX}{ms:013}-{:06}{FILE_SUFFIX}", self.files_opened));
        self.files_opened += 1;
        let f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| self.io(e))?;
        self.current = Some((BufWriter::with_capacity(256 * 1024, f), 0));
        self.enforce_retention()
    }

    /// Deletes the oldest record files beyond `max_files`.
    fn enforce_retention(&self) -> Result<(), SinkError> {
        let mut files = record_files(&self.dir).map_err(|e| self.io(e))?;
        if files.len() > self.rotation.max_files {
            let excess = files.len() - self.rotation.max_files;
            for old in files.drain(..excess) {
                fs::remove_file(&old).map_err(|e| self.io(e))?;
            }
        }
        Ok(())
    }
}

/// SHA-256 of the last whole record in the newest record file of `dir` (the chain tail a new run
/// continues from), if there is one.
pub fn chain_tail(dir: &Path) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    let newest = record_files(dir).ok()?.pop()?;
    let file = File::open(newest).ok()?;
    let mut last = None;
    for frame in crate::records::reader::RecordReader::new(std::io::BufReader::new(file)) {
        match frame {
            crate::records::reader::Frame::Record { bytes, .. } => {
                last = Some(sha2::Sha256::digest(&bytes).into())
            }
            crate::records::reader::Frame::Damaged { .. } => break,
        }
    }
    last
}

/// Record files in `dir`, oldest first.
pub fn record_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(FILE_SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, _record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError> {
        let full = self.current.as_ref().is_none_or(|(_, n)| *n >= self.rotation.max_file_bytes);
        if full {
            self.new_file()?;
        }
        self.buf.clear();
        prost::encoding::encode_varint(encoded.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(encoded);
        let Some((w, n)) = self.current.as_mut() else {
            return Err(self.io(std::io::Error::other("no open record file")));
        };
        let res = w.write_all(&self.buf);
        *n += self.buf.len() as u64;
        res.map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if let Some((w, _)) = self.current.as_mut() {
            let res = w.flush().and_then(|()| w.get_ref().sync_data());
            res.map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}
