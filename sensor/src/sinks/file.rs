//! `file:DIR`: record files (the format is `crate::recordfile`), rotated by size and age, with
//! retention by count and bytes and a configurable fsync policy.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{ErrorKind, Write},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use sensor_proto::AuditRecord;
use tracing::{info, warn};

use crate::recordfile::{self, record_files};

use super::{
    DiskMetrics, Sink, SinkError, SinkLoss,
    space::{self, Episode, SpaceCheck},
    spec::{FileOptions, Fsync, LowSpace},
};

/// Frames are handed to the kernel once this many bytes are buffered (and at every flush).
const WRITE_BUF: usize = 256 * 1024;

#[derive(Debug)]
struct Current {
    file: File,
    /// Bytes of whole frames in the file.
    len: u64,
    opened: Instant,
    /// When it was last synced (opened, for a new file), and whether bytes were handed to the
    /// kernel since.
    synced_at: Instant,
    unsynced: bool,
    /// `len` at the last sync, and the bytes from the start whose page cache was dropped.
    synced_len: u64,
    uncached: u64,
}

/// Page cache of a record file is dropped in steps of at least this many bytes.
const UNCACHE_STEP: u64 = 1 << 20;

impl Current {
    fn new(file: File) -> Self {
        let now = Instant::now();
        Self { file, len: 0, opened: now, synced_at: now, unsynced: false, synced_len: 0, uncached: 0 }
    }

    /// Syncs, then drops the page cache of what the sync before this one had made durable.
    ///
    /// Records are written once and read later by a shipper that tails the file (within the
    /// sync interval it keeps cached) or from disk: kept in the page cache, a sensor writing
    /// around the clock would grow it by gigabytes a day, pushing out the cache of the
    /// programs the machine is there for, and every record would land on a fresh page.
    /// Dropping clean pages lets the next writes reuse them.
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.synced_at = Instant::now();
        self.unsynced = false;
        if self.synced_len >= self.uncached + UNCACHE_STEP {
            drop_cache(&self.file, self.uncached, self.synced_len);
            self.uncached = self.synced_len;
        }
        self.synced_len = self.len;
        Ok(())
    }
}

/// Drops the (clean) page cache of `file` from `start` to `end`. Only a hint: a failure
/// changes nothing that matters and is not reported.
fn drop_cache(file: &File, start: u64, end: u64) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let (Ok(start), Ok(len)) = (i64::try_from(start), i64::try_from(end.saturating_sub(start))) else {
        return;
    };
    // A zero length would mean "to the end of the file".
    if len > 0 {
        let _ = posix_fadvise(file, start, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    }
}

/// A frame in the write buffer: where it ends there, and what a loss record needs of it.
#[derive(Debug)]
struct Pending {
    end: usize,
    seq: u64,
    boot_ns: u64,
    prev_hash: String,
}

pub struct FileSink {
    name: String,
    dir: PathBuf,
    opts: FileOptions,
    current: Option<Current>,
    files_opened: u64,
    /// The smallest millisecond stamp the next file may carry: names must sort after every
    /// file already in the directory even when the clock steps back or a new run starts
    /// within the millisecond the last one ended in (order of names is write order).
    min_ms: u128,
    /// Frames not yet handed to the kernel.
    buf: Vec<u8>,
    pending: Vec<Pending>,
    space: SpaceCheck,
    /// Records not written since a write failed or the reserve was reached.
    episode: Option<Episode>,
    /// The loss record of the episode is the next record: try to write it.
    resuming: bool,
    /// Below the reserve at the last check (one warning per low-space spell).
    low_warned: bool,
    /// Low-space spells that come and go (others fill the disk, rotation frees it): one line
    /// per 10 minutes at most, with how many were not logged.
    low_log: crate::ratelimit::RateLimited,
    unwritten: u64,
    deleted_files: u64,
    /// One sensor per record directory: two would interleave their hash chains.
    _lock: crate::exclusive::DirLock,
}

impl FileSink {
    pub fn open(dir: &Path, opts: FileOptions) -> Result<Self, SinkError> {
        let name = format!("file:{}", dir.display());
        let io = |source| SinkError::Io { sink: name.clone(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        // An existing directory keeps its owner but gets owner-only access.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let lock = crate::exclusive::lock_dir(dir, "record directory")
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::WouldBlock, e.to_string())))?;
        let space = SpaceCheck::new(&name, dir, opts.disk);
        let newest = record_files(dir).map_err(io)?.iter().rev().find_map(|p| recordfile::file_ms(p));
        Ok(Self {
            name,
            dir: dir.to_owned(),
            opts,
            current: None,
            files_opened: 0,
            min_ms: newest.map_or(0, |ms| ms + 1),
            buf: Vec::with_capacity(WRITE_BUF),
            pending: Vec::new(),
            space,
            episode: None,
            resuming: false,
            low_warned: false,
            low_log: crate::ratelimit::RateLimited::new(std::time::Duration::from_secs(600)),
            unwritten: 0,
            deleted_files: 0,
            _lock: lock,
        })
    }

    /// Closes the current file (synced unless `fsync = "never"`) and starts a new one.
    fn new_file(&mut self) -> std::io::Result<()> {
        if let Some(cur) = self.current.take()
            && self.opts.fsync != Fsync::Never
        {
            cur.file.sync_data()?;
            // The whole file is on disk: the rest of its page cache goes (see [`Current::sync`]).
            drop_cache(&cur.file, cur.uncached, cur.len);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        // Files of this sink stamped in the same millisecond sort by their number.
        let ms = now.max(self.min_ms);
        self.min_ms = ms;
        let path = self.dir.join(recordfile::file_name(ms, self.files_opened));
        self.files_opened += 1;
        let file = OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path)?;
        self.current = Some(Current::new(file));
        self.enforce_retention()
    }

    /// Deletes the oldest record files beyond `max_files` or `max_total_bytes` (never the file
    /// being written).
    fn enforce_retention(&self) -> std::io::Result<()> {
        let files = record_files(&self.dir)?;
        let sizes: Vec<u64> = files.iter().map(|f| fs::metadata(f).map_or(0, |m| m.len())).collect();
        let mut count = files.len();
        let mut total: u64 = sizes.iter().sum();
        for (old, size) in files.iter().zip(&sizes).take(files.len().saturating_sub(1)) {
            if count <= self.opts.max_files && total <= self.opts.max_total_bytes {
                break;
            }
            remove(old)?;
            count -= 1;
            total -= size;
        }
        Ok(())
    }

    /// Below the reserve: with `rotate`, deletes the oldest record files (never the current one)
    /// until the reserve is free. True when it still is not.
    fn make_room(&mut self) -> bool {
        let mut deleted = 0u64;
        if self.opts.disk.on_low_space == LowSpace::Rotate {
            let files = record_files(&self.dir).unwrap_or_default();
            for old in files.iter().take(files.len().saturating_sub(1)) {
                if remove(old).is_ok() {
                    deleted += 1;
                }
                if !self.space.low() {
                    break;
                }
            }
        }
        self.deleted_files += deleted;
        let still_low = self.space.free < self.space.reserve;
        // Stopping starts an episode: always said. Deleting old files to keep the reserve is
        // said at most once per 10 minutes (others filling the disk make it come and go).
        let suppressed = if still_low { Some(0) } else { self.low_log.allow() };
        if !self.low_warned
            && let Some(suppressed) = suppressed
        {
            self.low_warned = true;
            warn!(sink = %self.name, free = self.space.free, reserve = self.space.reserve,
                deleted_files = deleted, stopped = still_low, suppressed,
                "free space below the reserve{}",
                if still_low { ": writing stops until it is free again (the records not written are counted)" }
                else { ": deleted the oldest record files" });
        }
        still_low
    }

    /// Hands the buffered frames to the kernel. On failure, keeps the whole frames that made it,
    /// cuts the file back to them, and starts (or extends) an episode with the rest.
    fn flush_buf(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let Some(cur) = self.current.as_mut() else {
            self.fail(&std::io::Error::other("no open record file"), 0);
            return false;
        };
        let mut written = 0usize;
        while written < self.buf.len() {
            match cur.file.write(&self.buf[written..]) {
                Ok(0) => {
                    let e = std::io::Error::from(ErrorKind::WriteZero);
                    self.fail(&e, written);
                    return false;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e, written);
                    return false;
                }
            }
        }
        cur.len += self.buf.len() as u64;
        cur.unsynced = true;
        self.buf.clear();
        self.pending.clear();
        true
    }

    /// A write failed after `written` bytes of the buffer reached the file.
    fn fail(&mut self, e: &std::io::Error, written: usize) {
        let whole = self.pending.iter().take_while(|p| p.end <= written).count();
        let kept = if whole == 0 { 0 } else { self.pending[whole - 1].end };
        if let Some(cur) = self.current.take() {
            // Never leave part of a frame: the next run (or `verify`) continues from the last
            // whole record. The file is not appended to again.
            let _ = cur.file.set_len(cur.len + kept as u64);
        }
        let reason = space::reason(e);
        let ep = self.episode.get_or_insert_with(|| {
            warn!(sink = %self.name, error = %e, reason,
                "writing records failed: the records not written are counted, and a loss record \
                 follows as soon as writing works again");
            Episode::new(reason)
        });
        for p in self.pending.drain(whole..) {
            ep.add(p.seq, p.boot_ns, &p.prev_hash);
            self.unwritten += 1;
        }
        self.pending.clear();
        self.buf.clear();
        self.resuming = false;
    }

    /// Starts an episode because the reserve is reached (nothing failed).
    fn suspend(&mut self) {
        if self.flush_buf() {
            self.episode.get_or_insert_with(|| Episode::new("disk_full"));
            self.resuming = false;
        }
    }

    fn count_unwritten(&mut self, record: &AuditRecord) {
        if let Some(ep) = self.episode.as_mut() {
            ep.add_record(record);
            self.unwritten += 1;
        }
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Sink for FileSink {
    /// It stores `encoded`, which has them.
    fn reads_ancestors(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// Never fails: a record that cannot be written is counted in the episode, and the loss
    /// record follows when writing works again (see [`space`]).
    fn write(&mut self, record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError> {
        if self.episode.is_some() && !self.resuming {
            self.count_unwritten(record);
            return Ok(());
        }
        let frame_len = recordfile::frame_len(encoded.len());
        if self.space.due(frame_len as u64) && !self.resuming {
            if self.space.low() {
                if self.make_room() {
                    self.suspend();
                    self.count_unwritten(record);
                    return Ok(());
                }
            } else {
                self.low_warned = false;
            }
        }
        let full = self.current.as_ref().is_none_or(|c| {
            c.len + self.buf.len() as u64 >= self.opts.max_file_bytes
                || c.opened.elapsed() >= self.opts.max_file_age
        });
        if full && (!self.flush_buf() || self.new_file().map_err(|e| self.fail(&e, 0)).is_err()) {
            self.count_unwritten(record);
            return Ok(());
        }
        recordfile::push_frame(&mut self.buf, encoded);
        self.pending.push(Pending {
            end: self.buf.len(),
            seq: record.seq,
            boot_ns: record.boot_ns,
            prev_hash: record.integrity.as_ref().map(|i| i.prev_hash.clone()).unwrap_or_default(),
        });
        if self.resuming {
            // The episode's loss record: once it is in the file, the episode is over.
            if self.flush_buf() {
                if let Some(ep) = self.episode.take() {
                    info!(sink = %self.name, records = ep.count, reason = ep.reason,
                        secs = ep.duration().as_secs(), "writing again; a loss record accounts for the gap");
                }
                self.resuming = false;
            }
        } else if self.buf.len() >= WRITE_BUF {
            self.flush_buf();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.episode.is_some() || !self.flush_buf() {
            return Ok(());
        }
        if self.opts.fsync == Fsync::Batch
            && let Some(cur) = self.current.as_mut()
            && cur.unsynced
            && cur.synced_at.elapsed() >= self.opts.fsync_interval
            && let Err(e) = cur.sync()
        {
            // What the kernel had is in doubt; what follows goes to a new file.
            self.fail(&e, 0);
        }
        Ok(())
    }

    /// With `fsync = "batch"`, bytes written but not synced yet because the last sync was less
    /// than `fsync_interval` ago: the pipeline flushes again when the interval is over.
    fn flush_due(&self) -> Option<std::time::Duration> {
        let cur = self.current.as_ref()?;
        (self.opts.fsync == Fsync::Batch && cur.unsynced && self.episode.is_none())
            .then(|| self.opts.fsync_interval.saturating_sub(cur.synced_at.elapsed()))
    }

    fn gap_open(&self) -> bool {
        self.episode.is_some()
    }

    /// Written and fsynced now, whatever the fsync policy.
    fn urgent(&mut self, _record: &AuditRecord, _encoded: &[u8]) -> Result<(), SinkError> {
        if self.episode.is_some() || !self.flush_buf() {
            return Ok(());
        }
        if let Some(cur) = self.current.as_mut()
            && let Err(e) = cur.sync()
        {
            self.fail(&e, 0);
        }
        Ok(())
    }

    fn take_loss(&mut self, stopping: bool) -> Option<SinkLoss> {
        let ep = self.episode.as_mut()?;
        if self.resuming || !(stopping || ep.probe_due()) {
            return None;
        }
        let can = self.space.can_write();
        if !can && !stopping {
            return None;
        }
        if ep.count == 0 {
            // Nothing was lost (e.g. an fsync failed while idle).
            self.episode = None;
            return None;
        }
        self.resuming = true;
        self.low_warned = false;
        Some(ep.loss(&self.name))
    }

    fn metrics(&self) -> super::SinkMetrics {
        super::SinkMetrics {
            disk: Some(DiskMetrics {
                free_bytes: self.space.free,
                reserve_bytes: self.space.reserve,
                suspended: self.episode.is_some(),
                unwritten: self.unwritten,
                deleted_files: self.deleted_files,
            }),
            ..super::SinkMetrics::default()
        }
    }
}

impl Drop for FileSink {
    /// At stop the current file is closed like at a rotation: synced unless `fsync = "never"`.
    fn drop(&mut self) {
        if self.episode.is_none()
            && self.flush_buf()
            && self.opts.fsync != Fsync::Never
            && let Some(cur) = self.current.as_mut()
            && cur.unsynced
            && let Err(e) = cur.sync()
        {
            warn!(sink = %self.name, error = %e, "the last record file could not be synced at stop");
        }
        if let Some(ep) = &self.episode {
            warn!(sink = %self.name, records = ep.count, reason = ep.reason,
                "stopping while the output cannot write: these records are missing from it");
        }
    }
}

#[cfg(test)]
mod tests;
