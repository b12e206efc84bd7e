//! The record-file format, written by the `file:` sink and read by `sensor records`, `verify`,
//! `trace` and the start of the next run (chain tail, previous run).
//!
//! A record file is a sequence of `varint(len) || AuditRecord` frames (prost's length-delimited
//! encoding). Files are created 0600 in a 0700 directory and named
//! `audit-<unix-ms>-<n>.pb`, so name order is write order.

pub mod cat;
pub mod reader;
pub mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use cat::{CatSummary, cat};

/// File name prefix and suffix of record files.
pub const FILE_PREFIX: &str = "audit-";
pub const FILE_SUFFIX: &str = ".pb";

/// The name of the `n`th file a sink opened, at `unix_ms`.
pub fn file_name(unix_ms: u128, n: u64) -> String {
    format!("{FILE_PREFIX}{unix_ms:013}-{n:06}{FILE_SUFFIX}")
}

/// The milliseconds part of a record file's name (`None` for other names).
pub fn file_ms(path: &Path) -> Option<u128> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    rest.split_once('-')?.0.parse().ok()
}

/// Bytes of the frame that holds an encoded record of `len` bytes.
pub fn frame_len(len: usize) -> usize {
    len + prost::encoding::encoded_len_varint(len as u64)
}

/// Appends the frame of one encoded record to `buf`.
pub fn push_frame(buf: &mut Vec<u8>, encoded: &[u8]) {
    prost::encoding::encode_varint(encoded.len() as u64, buf);
    buf.extend_from_slice(encoded);
}

/// Expands directories into their record files (oldest first); files are kept as given.
pub fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(record_files(p).with_context(|| format!("listing {}", p.display()))?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// SHA-256 of the last whole record in the newest record file of `dir` (the chain tail a new run
/// continues from), if there is one.
/// Files without a whole record (e.g. created just before the disk filled up) are skipped.
pub fn chain_tail(dir: &Path) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    for path in record_files(dir).ok()?.iter().rev() {
        let Ok(file) = std::fs::File::open(path) else { continue };
        let mut last = None;
        for frame in reader::RecordReader::new(std::io::BufReader::new(file)) {
            match frame {
                reader::Frame::Record { bytes, .. } => {
                    last = Some(sha2::Sha256::digest(&bytes).into());
                }
                reader::Frame::Damaged { .. } => break,
            }
        }
        if last.is_some() {
            return last;
        }
    }
    None
}

/// Record files in `dir`, oldest first.
pub fn record_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
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
