//! The on-disk part of the spool: segment files of length-delimited frames.
//!
//! A spool directory (0700) holds `NNNNNNNNNNNNNNNNNNNN.seg` segment files (0600), oldest id
//! first, and an `ack` file (how far the oldest segment was delivered); the directory itself is
//! locked (`crate::exclusive`: one sensor per spool). A frame is
//!
//! ```text
//! len: u32 LE | check: u32 LE | seq: u64 LE | payload: len bytes
//! ```
//!
//! where `check` is FNV-1a over `seq` and the payload. A crash can leave a torn or zero-filled
//! tail; reading stops at the first frame that is incomplete or fails its check, and the rest
//! of that segment is skipped. A new run never appends to an old segment.

use std::{
    collections::VecDeque,
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use tracing::warn;

use super::memory::Held;
use super::{
    ack::{self, checked_ack},
    frame::{self, HEADER, Parsed, encode, parse, scan},
};
use crate::sinks::{spec::SpoolFull, transport::Outgoing};

const SUFFIX: &str = ".seg";
/// Largest segment id taken from a file name (ids count up from 1; this leaves room to count).
pub const MAX_ID: u64 = 1 << 62;
/// Buffered bytes the writer hands to the kernel even before a flush.
const WRITE_BUF: usize = 64 * 1024;

#[derive(Debug)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    /// Bytes the sender may read (whole, checked frames handed to the kernel).
    pub len: u64,
    /// Bytes the segment takes on disk (including a torn tail and unflushed buffer).
    pub size: u64,
    pub records: u64,
    /// Delivered prefix.
    pub acked_offset: u64,
    pub acked_records: u64,
}

struct Writer {
    id: u64,
    file: File,
    buf: Vec<u8>,
    buf_records: u64,
    /// What is known of the buffered records beyond their frames, for handing them back when
    /// writing fails ([`Store::take_refused`]).
    first: Option<BufferMeta>,
}

/// The first buffered record's seq, time and chain link, and the latest buffered time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BufferMeta {
    first_seq: u64,
    first_boot_ns: u64,
    /// The `prev_hash` of the first of them.
    prev_hash: String,
    last_boot_ns: u64,
}

/// A record to append: its sequence number, time, chain link and rendered payload.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub seq: u64,
    pub boot_ns: u64,
    pub prev_hash: &'a str,
    pub payload: &'a [u8],
}

/// What the sender should read next.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u64,
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
}

pub struct Store {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    writer: Option<Writer>,
    next_id: u64,
    max_bytes: u64,
    segment_bytes: u64,
    full: SpoolFull,
    total_bytes: u64,
    /// Records given up to the full policy, not yet reported.
    pub dropped: u64,
    /// Undelivered records deleted to keep the disk reserve, not yet reported.
    pub dropped_low_space: u64,
    /// Records lost in damaged spool segments (estimated from the seqs around the damage).
    pub dropped_damaged: u64,
    /// Records a failed write could not put on disk, since the last [`Store::take_refused`].
    refused: Vec<Held>,
    /// One sensor per spool.
    _lock: crate::exclusive::DirLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the spool in `dir` and finds what a previous run left undelivered.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64, full: SpoolFull) -> io::Result<Self> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let lock = crate::exclusive::lock_dir(dir, "spool").map_err(|e| {
            let msg = match e {
                crate::exclusive::LockError::Held { holder, .. } => format!(
                    "spool {} is in use by another sensor ({})",
                    dir.display(),
                    crate::exclusive::pid_text(holder)
                ),
                other => other.to_string(),
            };
            io::Error::new(io::ErrorKind::WouldBlock, msg)
        })?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let id = name.to_str()?.strip_suffix(SUFFIX)?.parse::<u64>().ok();
                if id.is_none_or(|id| id > MAX_ID) {
                    warn!(file = %e.path().display(), "spool: not a segment name; left alone");
                    return None;
                }
                id
            })
            .collect();
        ids.sort_unstable();
        let (ack_id, ack_offset) = checked_ack(dir, &ids);
        let mut segments = VecDeque::new();
        let mut dropped_damaged = 0;
        for id in &ids {
            let path = dir.join(segment_name(*id));
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    // Unreadable (an I/O error, or not a file): leave it, deliver the rest.
                    warn!(segment = %path.display(), error = %e, "spool: cannot read a segment; left alone");
                    continue;
                }
            };
            let start = if *id == ack_id { ack_offset } else { 0 };
            let scan = scan(&bytes, start);
            let mut size = bytes.len() as u64;
            let mut len = scan.len;
            if scan.damaged_bytes > 0 && scan.after_damage.is_empty() {
                warn!(segment = %path.display(), skipped_bytes = scan.damaged_bytes,
                    "spool segment has a torn tail (a crash mid-write); skipping it");
            } else if !scan.after_damage.is_empty() {
                warn!(segment = %path.display(), damaged_bytes = scan.damaged_bytes,
                    records_after = scan.after_damage.len(), lost_at_most = scan.lost,
                    "spool segment is damaged in the middle; keeping the whole records after the damage");
                match frame::repair(&path, &bytes, &scan) {
                    Ok(n) => {
                        (len, size) = (n, n);
                        dropped_damaged += scan.lost;
                        if *id == ack_id && ack_offset > scan.acked_offset {
                            ack::write(dir, *id, scan.acked_offset)?;
                        }
                    }
                    Err(e) => {
                        warn!(segment = %path.display(), error = %e, "spool: repairing the segment failed")
                    }
                }
            }
            if *id < ack_id || scan.records == scan.acked_records {
                if let Err(e) = remove(&path) {
                    warn!(segment = %path.display(), error = %e, "spool: cannot delete a delivered segment");
                }
                continue;
            }
            segments.push_back(Segment {
                id: *id,
                path,
                len,
                size,
                records: scan.records,
                acked_offset: scan.acked_offset,
                acked_records: scan.acked_records,
            });
        }
        let total_bytes = segments.iter().map(|s| s.size).sum();
        Ok(Self {
            dir: dir.to_owned(),
            segments,
            writer: None,
            // Never reuse an id at or below the ack: a later run would take it as delivered.
            next_id: ids.last().copied().unwrap_or(0).max(ack_id) + 1,
            max_bytes,
            segment_bytes,
            full,
            total_bytes,
            dropped: 0,
            dropped_low_space: 0,
            dropped_damaged,
            refused: Vec::new(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Records not yet delivered (spooled from earlier runs included).
    pub fn pending_records(&self) -> u64 {
        let on_disk: u64 = self.segments.iter().map(|s| s.records - s.acked_records).sum();
        on_disk + self.writer.as_ref().map_or(0, |w| w.buf_records)
    }

    /// Appends a record, applying the full policy. On an error, the records not written (this
    /// one included) are in [`Store::take_refused`].
    pub fn append(&mut self, e: Entry<'_>) -> io::Result<()> {
        let res = self.try_append(e);
        if res.is_err() && self.refused.last().is_none_or(|h| h.seq != e.seq) {
            self.refused.push(Held {
                seq: e.seq,
                boot_ns: e.boot_ns,
                prev_hash: e.prev_hash.to_owned(),
                payload: e.payload.to_vec(),
            });
        }
        res
    }

    /// The records failed writes could not put on disk since the last call, oldest first, with
    /// their payloads (the spool holds them in memory instead of losing them).
    pub fn take_refused(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.refused)
    }

    /// The frames of a write buffer the disk refused, back as records. Only the first one's
    /// chain link is known (the buffer keeps no per-record metadata, to cost nothing while the
    /// disk works); a loss record needs no other.
    fn refuse_buffer(&mut self, buf: &[u8], meta: Option<BufferMeta>) {
        let meta = meta.unwrap_or_default();
        let mut rest = buf;
        while let Parsed::Frame(o, n) = parse(rest) {
            let first = o.seq == meta.first_seq;
            self.refused.push(Held {
                seq: o.seq,
                boot_ns: if first { meta.first_boot_ns } else { meta.last_boot_ns },
                prev_hash: if first { meta.prev_hash.clone() } else { String::new() },
                payload: o.payload,
            });
            rest = &rest[n..];
        }
    }

    fn try_append(&mut self, e: Entry<'_>) -> io::Result<()> {
        let (seq, payload) = (e.seq, e.payload);
        let frame = (HEADER + payload.len()) as u64;
        if frame > self.max_bytes {
            self.dropped += 1;
            return Ok(());
        }
        while self.total_bytes + frame > self.max_bytes {
            match self.full {
                SpoolFull::DropNewest => {
                    self.dropped += 1;
                    return Ok(());
                }
                SpoolFull::DropOldest => self.drop_oldest()?,
            }
        }
        let rotate = match (&self.writer, self.segments.back()) {
            (Some(_), Some(last)) => last.size >= self.segment_bytes,
            _ => true,
        };
        if rotate {
            self.rotate()?;
        }
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("spool has no open segment"));
        };
        encode(seq, payload, &mut w.buf);
        w.buf_records += 1;
        match w.first.as_mut() {
            None => {
                w.first = Some(BufferMeta {
                    first_seq: seq,
                    first_boot_ns: e.boot_ns,
                    prev_hash: e.prev_hash.to_owned(),
                    last_boot_ns: e.boot_ns,
                });
            }
            Some(f) => f.last_boot_ns = f.last_boot_ns.max(e.boot_ns),
        }
        seg.size += frame;
        self.total_bytes += frame;
        if w.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands buffered frames to the kernel so the sender can read them (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(w) = self.writer.as_mut() else { return Ok(()) };
        if w.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = w.file.write_all(&w.buf) {
            // Part of the buffer may be in the file: never append after it. The segment keeps
            // what it had (a later run's scan may find more whole frames: re-sent, receivers
            // de-duplicate), the buffered records are handed back ([`Store::take_refused`]),
            // the next record starts a new segment.
            let (buf, meta, id) = (std::mem::take(&mut w.buf), w.first.take(), w.id);
            self.writer = None;
            let frames = buf.len() as u64;
            if let Some(seg) = self.segments.iter_mut().rev().find(|s| s.id == id) {
                seg.size = seg.size.saturating_sub(frames);
            }
            self.total_bytes = self.total_bytes.saturating_sub(frames);
            self.refuse_buffer(&buf, meta);
            return Err(e);
        }
        if let Some(seg) = self.segments.iter_mut().rev().find(|s| s.id == w.id) {
            seg.len += w.buf.len() as u64;
            seg.records += w.buf_records;
        }
        w.buf.clear();
        w.buf_records = 0;
        w.first = None;
        Ok(())
    }

    /// Flushes and fsyncs the open segment.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        match &self.writer {
            Some(w) => w.file.sync_data(),
            None => Ok(()),
        }
    }

    /// Seals the open segment (if any) and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let id = self.next_id;
        let path = self.dir.join(segment_name(id));
        let file = OpenOptions::new().create_new(true).append(true).mode(0o600).open(&path)?;
        self.next_id += 1;
        self.writer =
            Some(Writer { id, file, buf: Vec::with_capacity(WRITE_BUF), buf_records: 0, first: None });
        self.segments.push_back(Segment {
            id,
            path,
            len: 0,
            size: 0,
            records: 0,
            acked_offset: 0,
            acked_records: 0,
        });
        Ok(())
    }

    /// Deletes the oldest segment, counting its undelivered records as dropped.
    fn drop_oldest(&mut self) -> io::Result<()> {
        if self.segments.len() <= 1 {
            // The only segment is the open one: seal it so it can go.
            self.rotate()?;
        }
        let Some(old) = self.segments.pop_front() else { return Ok(()) };
        self.dropped += old.records - old.acked_records;
        self.total_bytes -= old.size;
        remove(&old.path)
    }

    /// Deletes the oldest sealed segment to free disk space (the disk reserve), counting its
    /// undelivered records; false when only the open segment is left.
    pub fn drop_oldest_for_space(&mut self) -> io::Result<bool> {
        let open = self.writer.as_ref().map(|w| w.id);
        if self.segments.front().is_none_or(|s| Some(s.id) == open) {
            return Ok(false);
        }
        let Some(old) = self.segments.pop_front() else { return Ok(false) };
        self.dropped_low_space += old.records - old.acked_records;
        self.total_bytes -= old.size;
        remove(&old.path)?;
        Ok(true)
    }

    /// The next range to deliver, deleting segments that are done.
    pub fn plan(&mut self) -> io::Result<Option<Plan>> {
        while let Some(front) = self.segments.front() {
            if front.acked_offset < front.len {
                return Ok(Some(Plan {
                    id: front.id,
                    path: front.path.clone(),
                    start: front.acked_offset,
                    end: front.len,
                }));
            }
            let open = self.writer.as_ref().is_some_and(|w| w.id == front.id);
            if open {
                return Ok(None);
            }
            let Some(done) = self.segments.pop_front() else { break };
            self.total_bytes -= done.size;
            remove(&done.path)?;
        }
        Ok(None)
    }

    /// The segment the sender is working on.
    pub fn front_id(&self) -> Option<u64> {
        self.segments.front().map(|s| s.id)
    }

    /// Records that `records` frames up to `offset` of segment `id` were delivered. Returns
    /// false when the segment was dropped meanwhile (the full policy).
    pub fn ack(&mut self, id: u64, offset: u64, records: u64) -> bool {
        match self.segments.front_mut() {
            Some(s) if s.id == id => {
                s.acked_offset = offset;
                s.acked_records += records;
                true
            }
            _ => false,
        }
    }
}

pub(super) fn segment_name(id: u64) -> String {
    format!("{id:020}{SUFFIX}")
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads whole frames of `plan` from `file`: at most `max_records` and about `max_bytes`.
/// Returns them and the offset after the last one; damage ends the segment early (logged).
pub fn read_batch(
    file: &File,
    plan: &Plan,
    max_records: usize,
    max_bytes: usize,
) -> io::Result<(Vec<Outgoing>, u64)> {
    let avail = usize::try_from(plan.end - plan.start).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; avail.min(max_bytes).max(HEADER.min(avail))];
    file.read_exact_at(&mut buf, plan.start)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while out.len() < max_records && at < buf.len() {
        match parse(&buf[at..]) {
            Parsed::Frame(o, n) => {
                out.push(o);
                at += n;
            }
            Parsed::Incomplete(need) if out.is_empty() && need <= avail => {
                // One frame larger than max_bytes: read exactly it.
                buf = vec![0u8; need];
                file.read_exact_at(&mut buf, plan.start)?;
            }
            Parsed::Incomplete(_) if !out.is_empty() => break,
            Parsed::Incomplete(_) | Parsed::Damaged => {
                warn!(segment = %plan.path.display(), offset = plan.start + at as u64,
                    "damaged spool frame; skipping the rest of the segment");
                return Ok((out, plan.end));
            }
        }
    }
    Ok((out, plan.start + at as u64))
}
