//! The on-disk part of the spool: segment files of length-delimited frames.
//!
//! A spool directory (0700) holds `NNNNNNNNNNNNNNNNNNNN.seg` segment files (0600), oldest id
//! first, a `lock` file (flock: one sensor per spool) and an `ack` file (how far the oldest
//! segment was delivered). A frame is
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

use nix::fcntl::{Flock, FlockArg};
use tracing::warn;

use crate::sinks::{spec::SpoolFull, transport::Outgoing};

pub const HEADER: usize = 16;
/// A frame longer than this is treated as damage, not as a record.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
const SUFFIX: &str = ".seg";
/// Buffered bytes the writer hands to the kernel even before a flush.
const WRITE_BUF: usize = 64 * 1024;

fn check(seq: u64, payload: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in seq.to_le_bytes().iter().chain(payload) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Appends one frame to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&check(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What starts `buf`: a whole checked frame (and its length), part of one (and the length the
/// whole frame needs), or damage.
pub enum Parsed {
    Frame(Outgoing, usize),
    Incomplete(usize),
    Damaged,
}

pub fn parse(buf: &[u8]) -> Parsed {
    let Some(head) = buf.get(..HEADER) else {
        return Parsed::Incomplete(HEADER);
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let len = word(0) as usize;
    let sum = word(4);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[8..16]);
    let seq = u64::from_le_bytes(seq);
    if len > MAX_PAYLOAD {
        return Parsed::Damaged;
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Parsed::Incomplete(HEADER + len);
    };
    // An all-zero header is what a crash leaves in preallocated space.
    if check(seq, payload) != sum || (len == 0 && seq == 0) {
        return Parsed::Damaged;
    }
    Parsed::Frame(Outgoing { seq, payload: payload.to_vec() }, HEADER + len)
}

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
    _lock: Flock<File>,
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
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join("lock"))?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("spool {} is in use by another sensor ({e})", dir.display()),
            )
        })?;
        let (ack_id, ack_offset) = read_ack(dir);
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(SUFFIX)?.parse().ok())
            .collect();
        ids.sort_unstable();
        let mut segments = VecDeque::new();
        for id in &ids {
            let path = dir.join(segment_name(*id));
            let bytes = fs::read(&path)?;
            let start = if *id == ack_id { ack_offset } else { 0 };
            let scan = scan(&bytes, start);
            if scan.len < bytes.len() as u64 {
                warn!(segment = %path.display(), skipped_bytes = bytes.len() as u64 - scan.len,
                    "spool segment has a torn tail (a crash mid-write); skipping it");
            }
            if *id < ack_id || scan.records == scan.acked_records {
                fs::remove_file(&path)?;
                continue;
            }
            segments.push_back(Segment {
                id: *id,
                path,
                len: scan.len,
                size: bytes.len() as u64,
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
            next_id: ids.last().map_or(1, |i| i + 1),
            max_bytes,
            segment_bytes,
            full,
            total_bytes,
            dropped: 0,
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

    /// Appends a record, applying the full policy.
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> io::Result<()> {
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
            // its whole frames, the buffered records are lost (counted), the next record
            // starts a new segment.
            self.dropped += w.buf_records;
            self.writer = None;
            return Err(e);
        }
        if let Some(seg) = self.segments.iter_mut().rev().find(|s| s.id == w.id) {
            seg.len += w.buf.len() as u64;
            seg.records += w.buf_records;
        }
        w.buf.clear();
        w.buf_records = 0;
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
        self.writer = Some(Writer { id, file, buf: Vec::with_capacity(WRITE_BUF), buf_records: 0 });
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

fn segment_name(id: u64) -> String {
    format!("{id:020}{SUFFIX}")
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

struct Scan {
    len: u64,
    records: u64,
    acked_offset: u64,
    acked_records: u64,
}

/// Whole, checked frames of a segment; those ending at or before `acked` were delivered.
fn scan(bytes: &[u8], acked: u64) -> Scan {
    let mut s = Scan { len: 0, records: 0, acked_offset: 0, acked_records: 0 };
    let mut at = 0usize;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        let Parsed::Frame(_, n) = parse(rest) else { break };
        at += n;
        s.records += 1;
        if at as u64 <= acked {
            s.acked_offset = at as u64;
            s.acked_records += 1;
        }
    }
    s.len = at as u64;
    s
}

/// The `ack` file: `<segment id> <offset>`, fixed width so an overwrite never leaves stale
/// digits. It is advisory: a lost or damaged one means re-sending (receivers de-duplicate).
pub struct AckFile {
    file: File,
}

impl AckFile {
    pub fn open(dir: &Path) -> io::Result<Self> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join("ack"))?;
        Ok(Self { file })
    }

    pub fn write(&self, id: u64, offset: u64) -> io::Result<()> {
        self.file.write_all_at(format!("{id:020} {offset:020}\n").as_bytes(), 0)
    }
}

fn read_ack(dir: &Path) -> (u64, u64) {
    let text = fs::read_to_string(dir.join("ack")).unwrap_or_default();
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(id)), Some(Ok(off))) => (id, off),
        _ => (0, 0),
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
