//! `sensor records verify`: checks the hash chain of record files.
//!
//! Every record must carry the SHA-256 of the record before it (across files, and across sensor
//! runs writing to the same directory), and within one sensor run `seq` must grow by exactly one.
//! The first record read may link to anything (older files may have been rotated away). A torn
//! last record of a file (a crash mid-write) is reported but is not tampering: the chain must
//! then continue from the last whole record.
//!
//! An output that could not write for a while (a full disk, an I/O error) has a gap: the
//! sensor then wrote a loss record (kind `sink`) as the first record after it, naming the
//! missing seq range and the hash of the last record written before it. Such a record bridges
//! the chain: it must name exactly the record before it and exactly the seqs missing, and the
//! gap is reported, not called tampering.
//!
//! With a public key, every checkpoint must carry a valid Ed25519 signature over the chain head
//! it names: then even someone who rewrites the files and recomputes every hash is caught. The
//! records after the last signed checkpoint are protected by the chain only (reported).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use sensor_proto::v1::audit_record::Event;
use sha2::{Digest as _, Sha256};

use super::{
    expand_paths,
    reader::{Frame, RecordReader},
};

/// Where verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub offset: u64,
    pub seq: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.file.display(), self.offset)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub files: usize,
    pub records: u64,
    /// Sensor runs (instance ids) seen.
    pub runs: usize,
    /// Files that end in a torn record (crash mid-write), with where.
    pub torn: Vec<String>,
    /// The last record is a final checkpoint (the last run stopped cleanly).
    pub complete: bool,
    /// Checkpoints whose signature was verified (with a public key).
    pub signed_checkpoints: u64,
    /// Records after the last verified signed checkpoint (with a public key).
    pub unsigned_tail: u64,
    /// Gaps the sensor itself reported (an output that could not write), in file order.
    pub gaps: Vec<Gap>,
    /// Runs before the last that ended without a final checkpoint (killed, crashed, machine
    /// down), in file order. The last run's end is `complete`.
    pub unfinished: Vec<Unfinished>,
    /// The first problem, if any: the files were altered, records removed or reordered.
    pub problem: Option<Problem>,
}

/// A sensor run that ended without its final checkpoint, and the next run after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub instance_id: String,
    pub last_seq: u64,
    /// Time of its last record, seconds since the epoch.
    pub last_time: i64,
    pub next_instance_id: String,
    /// From its last record to the next run's first record, seconds (0 when unknown).
    pub gap_secs: i64,
}

impl std::fmt::Display for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} ended without a final checkpoint after seq {} ({}); the next run {} started {} s later",
            self.instance_id,
            self.last_seq,
            time(self.last_time),
            self.next_instance_id,
            self.gap_secs
        )
    }
}

/// Records missing from the files because the output could not write them, as its loss record
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub file: PathBuf,
    pub offset: u64,
    /// seq of the loss record.
    pub seq: u64,
    pub reason: String,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records (seq {} to {}) not written ({}), reported by the loss record at {} byte {} (seq {})",
            self.count,
            self.first_seq,
            self.last_seq,
            self.reason,
            self.file.display(),
            self.offset,
            self.seq
        )
    }
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn time(secs: i64) -> String {
    u64::try_from(secs)
        .map(|s| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                .to_string()
        })
        .unwrap_or_else(|_| secs.to_string())
}

/// Verifies the files (directories expand to their record files, oldest first).
pub fn verify(paths: &[PathBuf]) -> anyhow::Result<Report> {
    verify_with(paths, None)
}

/// Verifies the files and, with `key`, the checkpoint signatures.
pub fn verify_with(paths: &[PathBuf], key: Option<&VerifyingKey>) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut state = State { prev_hash: None, last_run: None, last_time: 0, key };
    for path in expand_paths(paths)? {
        report.files += 1;
        if let Some(p) = verify_file(&path, &mut report, &mut state)? {
            report.problem = Some(p);
            return Ok(report);
        }
    }
    Ok(report)
}

struct State<'k> {
    prev_hash: Option<[u8; 32]>,
    last_run: Option<(String, u64)>,
    /// Time of the last record read (seconds since the epoch).
    last_time: i64,
    key: Option<&'k VerifyingKey>,
}

fn verify_file(path: &Path, report: &mut Report, state: &mut State<'_>) -> anyhow::Result<Option<Problem>> {
    let State { prev_hash, last_run, last_time, key } = state;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let problem = |offset, seq, reason: String| Some(Problem { file: path.to_owned(), offset, seq, reason });
    for frame in RecordReader::new(std::io::BufReader::new(file)) {
        let (offset, record, bytes) = match frame {
            Frame::Record { offset, record, bytes } => (offset, record, bytes),
            Frame::Damaged { offset, reason } if reason.starts_with("torn") => {
                report.torn.push(format!("{} at byte {offset}: {reason}", path.display()));
                return Ok(None);
            }
            Frame::Damaged { offset, reason } => return Ok(problem(offset, None, reason)),
        };
        let seq = record.seq;
        let linked = record.integrity.as_ref().map(|i| i.prev_hash.as_str()).unwrap_or_default();
        let instance = record.host.as_ref().map(|h| h.instance_id.clone()).unwrap_or_default();
        let same_run = last_run.as_ref().and_then(|(run, last)| (*run == instance).then_some(*last));
        let bridge = gap_bridge(&record, prev_hash.as_ref(), same_run);
        if let Some(Err(reason)) = bridge {
            return Ok(problem(offset, Some(seq), reason));
        }
        let bridged = bridge.is_some();
        if let Some(want) = prev_hash
            && !bridged
            && linked != hex::encode(*want)
        {
            return Ok(problem(
                offset,
                Some(seq),
                "does not link to the record before it: a record was altered, removed or reordered".into(),
            ));
        }
        match same_run {
            Some(last_seq) if !bridged && seq != last_seq + 1 => {
                return Ok(problem(offset, Some(seq), format!("seq {seq} follows {last_seq}")));
            }
            Some(_) => {}
            None => {
                report.runs += 1;
                let time = record.time.as_ref().map_or(0, |t| t.seconds);
                if let Some((before, before_seq)) = last_run.as_ref()
                    && !report.complete
                {
                    report.unfinished.push(Unfinished {
                        instance_id: before.clone(),
                        last_seq: *before_seq,
                        last_time: *last_time,
                        next_instance_id: instance.clone(),
                        gap_secs: if *last_time > 0 && time > 0 { time - *last_time } else { 0 },
                    });
                }
            }
        }
        if let (true, Some(Event::Loss(l))) = (bridged, &record.event) {
            report.gaps.push(Gap {
                file: path.to_owned(),
                offset,
                seq,
                reason: l.reason.clone(),
                count: l.count,
                first_seq: l.first_seq,
                last_seq: l.last_seq,
            });
        }
        if let Some(Event::Checkpoint(c)) = &record.event {
            if let Some(reason) = check_checkpoint(c, &instance, seq, prev_hash.as_ref(), *key) {
                return Ok(problem(offset, Some(seq), reason));
            }
            if key.is_some() {
                report.signed_checkpoints += 1;
                report.unsigned_tail = 0;
            }
        } else if key.is_some() {
            report.unsigned_tail += 1;
        }
        *last_run = Some((instance, seq));
        *last_time = record.time.as_ref().map_or(*last_time, |t| t.seconds);
        *prev_hash = Some(Sha256::digest(&bytes).into());
        report.records += 1;
        report.complete = matches!(&record.event, Some(Event::Checkpoint(c)) if c.r#final);
    }
    Ok(None)
}

/// A loss record of kind `sink` that follows a gap (its output could not write): `None` when
/// `record` is not one or there is no gap (it then links like any record), `Ok` when it bridges
/// the gap exactly, `Err` when it claims a gap that does not match what is in the files.
fn gap_bridge(
    record: &sensor_proto::AuditRecord,
    prev: Option<&[u8; 32]>,
    same_run_last_seq: Option<u64>,
) -> Option<Result<(), String>> {
    let Some(Event::Loss(l)) = &record.event else { return None };
    if l.kind != "sink" || l.count == 0 {
        return None;
    }
    let linked = record.integrity.as_ref().map(|i| i.prev_hash.as_str()).unwrap_or_default();
    // Nothing read before it (the oldest file kept), or linked as usual (the gap is in another
    // output's stream): nothing to bridge.
    let prev = prev?;
    if hex::encode(prev) == linked {
        return None;
    }
    let range_ok = l.first_seq <= l.last_seq
        && l.last_seq.checked_add(1) == Some(record.seq)
        && l.last_seq - l.first_seq + 1 == l.count;
    if !range_ok {
        return Some(Err(format!(
            "loss record for a gap names seq {} to {} ({} records), which does not end right before it",
            l.first_seq, l.last_seq, l.count
        )));
    }
    // The first missing record follows the last one read (in this run), or opens the run.
    let follows = match same_run_last_seq {
        Some(last) => last.checked_add(1) == Some(l.first_seq),
        None => true,
    };
    if !follows {
        return Some(Err(format!(
            "loss record for a gap starts at seq {} but the record before it is seq {}",
            l.first_seq,
            same_run_last_seq.unwrap_or_default()
        )));
    }
    if hex::encode(prev) != l.gap_prev_hash {
        return Some(Err(
            "loss record for a gap does not name the record before it: a record was altered, removed or reordered"
                .into(),
        ));
    }
    Some(Ok(()))
}

/// A checkpoint must name the chain head it follows and, with a key, be signed over it.
fn check_checkpoint(
    c: &sensor_proto::v1::CheckpointEvent,
    instance: &str,
    seq: u64,
    prev: Option<&[u8; 32]>,
    key: Option<&VerifyingKey>,
) -> Option<String> {
    let mut head = [0u8; 32];
    if hex::decode_to_slice(&c.chain_hash, &mut head).is_err() {
        return Some("checkpoint without a valid chain_hash".into());
    }
    if prev.is_some_and(|p| *p != head) {
        return Some("checkpoint names another chain head: records before it were altered".into());
    }
    let key = key?;
    if c.signature.is_empty() {
        return Some("checkpoint is not signed (a key was given)".into());
    }
    let msg = crate::recordbuild::signing::message(instance, seq, c.records, &head);
    if !crate::recordbuild::signing::verify(key, &msg, &c.signature) {
        return Some(format!(
            "checkpoint signature does not verify with key {}",
            crate::recordbuild::signing::key_id(key)
        ));
    }
    None
}

#[cfg(test)]
mod tests;
