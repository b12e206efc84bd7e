//! Spool frames: `len: u32 LE | check: u32 LE | seq: u64 LE | payload`, where `check` is FNV-1a
//! over `seq` and the payload; and the scan of a segment at start, which finds the whole frames,
//! what was delivered, and damage.
//!
//! Damage at the end of a segment is a crash mid-write (or a write the disk refused) and is cut
//! off. Damage in the middle (a bad sector, a stray write) must not take the frames after it
//! along: the scan looks for the next frame that passes its check and goes on from there; the
//! segment is then rewritten without the damaged bytes, and the records that were in them are
//! estimated from the `seq`s around the damage and reported as lost.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write as _},
    ops::Range,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use crate::sinks::transport::Outgoing;

pub const HEADER: usize = 16;
/// A frame longer than this is treated as damage, not as a record.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// While looking for the next frame after damage, candidate frames longer than this are not
/// checked (bounds the work on a segment full of garbage).
const RESYNC_MAX_PAYLOAD: usize = 1024 * 1024;
/// Bytes hashed while looking for frames after damage, per segment at most.
const RESYNC_BUDGET: usize = 256 * 1024 * 1024;

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

/// The header of a frame: (payload length, check, seq).
fn header(buf: &[u8]) -> Option<(usize, u32, u64)> {
    let head = buf.get(..HEADER)?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[8..16]);
    Some((word(0) as usize, word(4), u64::from_le_bytes(seq)))
}

pub fn parse(buf: &[u8]) -> Parsed {
    match frame_at(buf, MAX_PAYLOAD) {
        Ok((seq, n)) => Parsed::Frame(Outgoing { seq, payload: buf[HEADER..n].to_vec() }, n),
        Err(need) => need.map_or(Parsed::Damaged, Parsed::Incomplete),
    }
}

/// A checked frame at the start of `buf`: its seq and length; `Err(Some(n))` when `buf` holds
/// only part of one (`n` bytes are needed), `Err(None)` for damage.
fn frame_at(buf: &[u8], max_payload: usize) -> Result<(u64, usize), Option<usize>> {
    let (len, sum, seq) = header(buf).ok_or(Some(HEADER))?;
    if len > max_payload {
        return Err(None);
    }
    let payload = buf.get(HEADER..HEADER + len).ok_or(Some(HEADER + len))?;
    // An all-zero header is what a crash leaves in preallocated space.
    if check(seq, payload) != sum || (len == 0 && seq == 0) {
        return Err(None);
    }
    Ok((seq, HEADER + len))
}

/// What the scan of a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// End of the whole frames at the start (the segment's readable length).
    pub len: u64,
    pub records: u64,
    /// Delivered prefix (whole frames ending at or before the ack).
    pub acked_offset: u64,
    pub acked_records: u64,
    /// Whole frames found after damage in the middle (empty when there is none).
    pub after_damage: Vec<Range<usize>>,
    /// Records estimated lost in the damaged bytes (from the seqs around them).
    pub lost: u64,
    /// Bytes of damage.
    pub damaged_bytes: u64,
}

/// Whole, checked frames of a segment; those ending at or before `acked` were delivered.
pub fn scan(bytes: &[u8], acked: u64) -> Scan {
    let mut s = Scan::default();
    let mut at = 0usize;
    let mut last_seq = None;
    let mut max_len = 0usize;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        let Ok((seq, n)) = frame_at(rest, MAX_PAYLOAD) else { break };
        at += n;
        max_len = max_len.max(n);
        last_seq = Some(seq);
        s.records += 1;
        if at as u64 <= acked {
            s.acked_offset = at as u64;
            s.acked_records += 1;
        }
    }
    s.len = at as u64;
    // Damage: find the frames after it, if any.
    let limit = (max_len * 2).clamp(64 * 1024, RESYNC_MAX_PAYLOAD);
    let mut budget = RESYNC_BUDGET;
    while at < bytes.len() {
        let before = last_seq;
        let Some(next) = resync(bytes, at + 1, limit, &mut budget) else {
            s.damaged_bytes += (bytes.len() - at) as u64;
            break;
        };
        let region = (next - at) as u64;
        s.damaged_bytes += region;
        at = next;
        let mut first_after = None;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            let Ok((seq, n)) = frame_at(rest, MAX_PAYLOAD) else { break };
            first_after.get_or_insert(seq);
            s.after_damage.push(at..at + n);
            s.records += 1;
            at += n;
            last_seq = Some(seq);
        }
        // The seqs around the damage say how many records were in it, but never more than
        // the damaged bytes could hold (a frame is at least a header).
        if let (Some(b), Some(a)) = (before, first_after) {
            let gap = a.saturating_sub(b).saturating_sub(1).min(region / HEADER as u64);
            s.lost = s.lost.saturating_add(gap);
        }
    }
    s
}

/// The next offset at or after `from` where a whole frame passes its check.
fn resync(bytes: &[u8], from: usize, max_payload: usize, budget: &mut usize) -> Option<usize> {
    for at in from..bytes.len().saturating_sub(HEADER - 1) {
        let (len, _, _) = header(&bytes[at..])?;
        if len > max_payload || at + HEADER + len > bytes.len() {
            continue;
        }
        *budget = budget.checked_sub(len + 8)?;
        if frame_at(&bytes[at..], max_payload).is_ok() {
            return Some(at);
        }
    }
    None
}

/// Rewrites a segment without its damaged bytes: the frames at its start (`..scan.len`) and the
/// frames found after damage. Returns the new length. The ack offset keeps its meaning only for
/// the start, which is unchanged.
pub fn repair(path: &Path, bytes: &[u8], scan: &Scan) -> io::Result<u64> {
    let tmp = path.with_extension("seg.repair");
    let mut out = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
    let head = usize::try_from(scan.len).unwrap_or(usize::MAX).min(bytes.len());
    out.write_all(&bytes[..head])?;
    let mut len = head as u64;
    for r in &scan.after_damage {
        out.write_all(&bytes[r.clone()])?;
        len += r.len() as u64;
    }
    out.sync_data()?;
    fs::rename(&tmp, path)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (spool): seqs around damage that are far apart (a foreign or damaged
    /// segment) overflowed the estimate of the records lost.
    #[test]
    fn the_lost_estimate_is_bounded_by_the_damaged_bytes() {
        let mut seg = Vec::new();
        for (seq, garbage) in [(1u64, 40usize), (u64::MAX - 1, 40), (2, 40), (u64::MAX, 0)] {
            encode(seq, b"payload", &mut seg);
            seg.extend(std::iter::repeat_n(0xa5u8, garbage));
        }
        let s = scan(&seg, 0);
        assert_eq!(s.records, 4);
        assert_eq!(s.after_damage.len(), 3);
        assert_eq!(s.damaged_bytes, 120);
        assert!(s.lost <= 120 / HEADER as u64, "{}", s.lost);
    }
}
