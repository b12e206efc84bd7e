//! `file:DIR`: length-delimited protobuf record files, rotated by size and age, with retention by
//! count and bytes and a configurable fsync policy.
//!
//! Each file is a sequence of `varint(len) || AuditRecord` frames (prost's length-delimited
//! encoding). Files are created 0600 in a 0700 directory and named
//! `audit-<unix-ms>-<n>.pb`, so name order is write order.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{BufWriter, Write},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use sensor_proto::AuditRecord;

use super::{
    Sink, SinkError,
    spec::{FileOptions, Fsync},
};

/// File name prefix and suffix of record files.
pub const FILE_PREFIX: &str = "audit-";
pub const FILE_SUFFIX: &str = ".pb";

#[derive(Debug)]
struct Current {
    out: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

pub struct FileSink {
    name: String,
    dir: PathBuf,
    opts: FileOptions,
    current: Option<Current>,
    files_opened: u64,
    buf: Vec<u8>,
}

impl FileSink {
    pub fn open(dir: &Path, opts: FileOptions) -> Result<Self, SinkError> {
        let name = format!("file:{}", dir.display());
        let io = |source| SinkError::Io { sink: name.clone(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        // An existing directory keeps its owner but gets owner-only access.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(Self { name, dir: dir.to_owned(), opts, current: None, files_opened: 0, buf: Vec::new() })
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), source }
    }

    fn new_file(&mut self) -> Result<(), SinkError> {
        if let Some(mut cur) = self.current.take() {
            cur.out.flush().map_err(|e| self.io(e))?;
            if self.opts.fsync != Fsync::Never {
                cur.out.get_ref().sync_data().map_err(|e| self.io(e))?;
            }
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
        self.current =
            Some(Current { out: BufWriter::with_capacity(256 * 1024, f), bytes: 0, opened: Instant::now() });
        self.enforce_retention()
    }

    /// Deletes the oldest record files beyond `max_files` or `max_total_bytes` (never the file
    /// being written).
    fn enforce_retention(&self) -> Result<(), SinkError> {
        let files = record_files(&self.dir).map_err(|e| self.io(e))?;
        let sizes: Vec<u64> = files.iter().map(|f| fs::metadata(f).map_or(0, |m| m.len())).collect();
        let mut count = files.len();
        let mut total: u64 = sizes.iter().sum();
        for (old, size) in files.iter().zip(&sizes).take(files.len().saturating_sub(1)) {
            if count <= self.opts.max_files && total <= self.opts.max_total_bytes {
                break;
            }
            match fs::remove_file(old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(e)),
            }
            count -= 1;
            total -= size;
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
        let full = self.current.as_ref().is_none_or(|c| {
            c.bytes >= self.opts.max_file_bytes || c.opened.elapsed() >= self.opts.max_file_age
        });
        if full {
            self.new_file()?;
        }
        self.buf.clear();
        prost::encoding::encode_varint(encoded.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(encoded);
        let Some(cur) = self.current.as_mut() else {
            return Err(self.io(std::io::Error::other("no open record file")));
        };
        let res = cur.out.write_all(&self.buf);
        cur.bytes += self.buf.len() as u64;
        res.map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let fsync = self.opts.fsync == Fsync::Batch;
        if let Some(cur) = self.current.as_mut() {
            let res =
                cur.out.flush().and_then(|()| if fsync { cur.out.get_ref().sync_data() } else { Ok(()) });
            res.map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::PermissionsExt as _, time::Duration};

    use super::*;

    fn write_n(sink: &mut FileSink, n: usize, size: usize) {
        let rec = AuditRecord::default();
        for _ in 0..n {
            sink.write(&rec, &vec![7u8; size]).expect("write");
        }
        sink.flush().expect("flush");
    }

    #[test]
    fn rotates_by_size_and_keeps_count_and_bytes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("rec");
        let opts = FileOptions { max_file_bytes: 1000, max_files: 3, ..FileOptions::default() };
        let mut sink = FileSink::open(&dir, opts).expect("open");
        write_n(&mut sink, 50, 98); // 100-byte frames: a new file every 10 records
        let files = record_files(&dir).expect("list");
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
        for f in &files {
            assert_eq!(fs::metadata(f).expect("file").permissions().mode() & 0o777, 0o600);
        }

        let opts = FileOptions { max_file_bytes: 1000, max_total_bytes: 2500, ..FileOptions::default() };
        let mut sink = FileSink::open(&dir, opts).expect("reopen");
        write_n(&mut sink, 50, 98);
        let total: u64 =
            record_files(&dir).expect("list").iter().map(|f| fs::metadata(f).expect("m").len()).sum();
        assert!(total <= 2500 + 1000, "retention keeps about max_total_bytes, got {total}");
    }

    #[test]
    fn rotates_by_age() {
        let tmp = tempfile::tempdir().expect("tmp");
        let opts = FileOptions { max_file_age: Duration::from_millis(50), ..FileOptions::default() };
        let mut sink = FileSink::open(tmp.path(), opts).expect("open");
        write_n(&mut sink, 1, 10);
        std::thread::sleep(Duration::from_millis(80));
        write_n(&mut sink, 1, 10);
        assert_eq!(record_files(tmp.path()).expect("list").len(), 2);
    }
}
