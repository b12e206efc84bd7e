//! Record building: wraps an enriched event in the audit envelope (seq, time, host) and links it
//! into the hash chain (see `Integrity` in the schema): each record carries the SHA-256 of the
//! previous record's encoding, and checkpoint records bound the chain.
//!
//! A record is encoded with the fields records share first — host, ancestors, process;
//! protobuf readers take fields in any order — so the chain's hash continues from a kept state
//! after them ([`prefix`]).

pub mod ocsf;
mod prefix;
pub mod signing;

use std::sync::Arc;

use prost::Message as _;
use sensor_proto::{
    AuditRecord, SCHEMA_VERSION,
    v1::{CheckpointEvent, Host, Integrity, Process, audit_record::Event},
};

use crate::enrich::{Enriched, Spares, ancestry::Ancestry, clock::BootClock};

/// Parts of each kind [`RecordBuilder::recycle`] keeps until they are taken.
const SPARE_PARTS: usize = 8;

/// Records between two checkpoint records.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// A record and the exact bytes it is hashed and stored as.
///
/// The ancestors are not in `record.ancestors` but shared in `ancestry` (the process's, built
/// once; `bytes` has them): whoever reads the record as a struct and needs them reads
/// `ancestry`, or puts them in with [`Sealed::fill_ancestors`].
#[derive(Debug, Clone)]
pub struct Sealed {
    pub record: AuditRecord,
    pub ancestry: Arc<Ancestry>,
    pub bytes: Vec<u8>,
}

impl Sealed {
    /// Copies the ancestors into `record.ancestors`, for readers of the whole struct (JSON
    /// renderings).
    pub fn fill_ancestors(&mut self) {
        if self.record.ancestors.is_empty() {
            self.record.ancestors.extend(self.ancestry.iter().cloned());
        }
    }
}

/// Assigns sequence numbers, adds the envelope and chains records. Single owner: the pipeline's
/// record stage.
#[derive(Debug)]
pub struct RecordBuilder {
    host: Host,
    /// `host` encoded once as the record's `host` field (tag, length, message): the same in
    /// every record, spliced into each record's encoding.
    host_field: Vec<u8>,
    /// The host part of a record handed back by [`Self::recycle`]: moved into the next record
    /// instead of cloned (a clone is a dozen allocations).
    spare_host: Option<Host>,
    /// An encoding buffer handed back by [`Self::recycle`].
    spare_bytes: Vec<u8>,
    /// Parts of records handed back by [`Self::recycle`], for the enricher to build the next
    /// records in (`Enricher::reuse`).
    spares: Spares,
    /// A process part and its encoding as the record's `process` field: the next records with an
    /// equal part (a process's records in a row, the common case) splice the bytes instead of
    /// encoding its thirty fields again.
    process_field: Option<ProcessField>,
    /// Numbers the successive `process_field`s (a kept field's bytes never change).
    generation: u64,
    /// Hashes records from the kept states after their shared leading fields.
    hasher: prefix::PrefixHasher,
    /// The `process` field encoded for the record with this `seq`: when that record comes back
    /// ([`Self::recycle`]) its part and these bytes become `process_field`.
    fresh_field: Option<(u64, Vec<u8>)>,
    clock: BootClock,
    next_seq: u64,
    prev_hash: Option<[u8; 32]>,
    since_checkpoint: u64,
    signer: Option<signing::CheckpointSigner>,
}

impl RecordBuilder {
    /// `chain_tail`: hash of the last record already written where this run's records go (a
    /// previous run's output), so the chain continues across restarts.
    pub fn new(host: Host, clock: BootClock, chain_tail: Option<[u8; 32]>) -> Self {
        let host_field = AuditRecord { host: Some(host.clone()), ..Default::default() }.encode_to_vec();
        Self {
            host,
            host_field,
            spare_host: None,
            spare_bytes: Vec::new(),
            spares: Spares::default(),
            process_field: None,
            generation: 0,
            hasher: prefix::PrefixHasher::default(),
            fresh_field: None,
            clock,
            next_seq: 1,
            prev_hash: chain_tail,
            since_checkpoint: 0,
            signer: None,
        }
    }

    /// Signs every checkpoint with this key from now on.
    #[must_use]
    pub fn with_signer(mut self, signer: signing::CheckpointSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Builds and seals the next record. `seq` is strictly increasing from 1 with no gaps.
    pub fn build(&mut self, e: Enriched) -> Sealed {
        let boot_ns = e.boot_ns;
        let record = AuditRecord {
            schema_version: SCHEMA_VERSION,
            seq: 0,
            time: Some(self.clock.wall(boot_ns)),
            boot_ns,
            host: Some(self.take_host()),
            process: e.process,
            ancestors: Vec::new(),
            event: Some(e.event),
            integrity: None,
        };
        self.seal(record, e.ancestors)
    }

    /// A checkpoint record: due every [`CHECKPOINT_EVERY`] records, and `final` at stop.
    pub fn checkpoint(&mut self, last: bool) -> Sealed {
        let boot_ns = BootClock::boot_ns_now();
        let chain_hash = self.prev_hash.unwrap_or_default();
        let (signature, key_id) = match &self.signer {
            Some(s) => {
                let msg = signing::message(&self.host.instance_id, self.next_seq, self.next_seq, &chain_hash);
                (s.sign(&msg), s.key_id().to_owned())
            }
            None => (Vec::new(), String::new()),
        };
        let record = AuditRecord {
            schema_version: SCHEMA_VERSION,
            seq: 0,
            time: Some(self.clock.wall(boot_ns)),
            boot_ns,
            host: Some(self.take_host()),
            event: Some(Event::Checkpoint(CheckpointEvent {
                records: self.next_seq,
                first_seq: 1,
                r#final: last,
                chain_hash: hex::encode(chain_hash),
                signature,
                key_id,
            })),
            ..Default::default()
        };
        self.seal(record, Ancestry::empty())
    }

    /// Hands a record this builder built back once every sink has it, so its host part and
    /// its buffer serve the next record, and its process part the enricher's next one (the
    /// record stage builds one per event: the allocations are a visible cost). The record
    /// must be unchanged.
    pub fn recycle(&mut self, sealed: Sealed) {
        let Sealed { record, bytes, .. } = sealed;
        if self.spare_host.is_none() {
            self.spare_host = record.host;
        }
        if let Some(p) = record.process {
            let spare = match self.fresh_field.take() {
                Some((seq, field)) if seq == record.seq => {
                    debug_assert_eq!(
                        field,
                        {
                            let mut again = Vec::new();
                            encode_process_field(&p, &mut again);
                            again
                        },
                        "a recycled record's process part was changed"
                    );
                    self.generation += 1;
                    let kept = ProcessField { part: p, field, generation: self.generation };
                    self.process_field.replace(kept).map(|old| old.part)
                }
                other => {
                    self.fresh_field = other;
                    Some(p)
                }
            };
            if let Some(p) = spare
                && self.spares.processes.len() < SPARE_PARTS
            {
                self.spares.processes.push(p);
            }
        }
        if let Some(Event::File(f)) = record.event
            && self.spares.files.len() < SPARE_PARTS
        {
            self.spares.files.push(f);
        }
        if bytes.capacity() > self.spare_bytes.capacity() {
            self.spare_bytes = bytes;
        }
    }

    /// The parts handed back so far (see [`Self::recycle`]).
    pub fn spares(&mut self) -> &mut Spares {
        &mut self.spares
    }

    fn take_host(&mut self) -> Host {
        self.spare_host.take().unwrap_or_else(|| self.host.clone())
    }

    /// True when a periodic checkpoint is due.
    pub fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= CHECKPOINT_EVERY
    }

    fn seal(&mut self, mut record: AuditRecord, ancestry: Arc<Ancestry>) -> Sealed {
        record.seq = self.next_seq;
        self.next_seq += 1;
        self.since_checkpoint =
            if matches!(record.event, Some(Event::Checkpoint(_))) { 0 } else { self.since_checkpoint + 1 };
        record.integrity =
            Some(Integrity { prev_hash: self.prev_hash.as_ref().map(hex32).unwrap_or_default() });
        // `encode_to_vec` without its allocation (and its pass over the record for the length).
        let mut bytes = std::mem::take(&mut self.spare_bytes);
        bytes.clear();
        bytes.reserve(1024);
        let (process, generation) = match (&record.process, &self.process_field) {
            (None, _) => (None, None),
            (Some(p), Some(cached)) if **p == *cached.part => {
                (Some(cached.field.as_slice()), Some(cached.generation))
            }
            (Some(p), _) => {
                // Encoded here (once), and kept with the part when the record comes back.
                let mut field = self.fresh_field.take().map(|(_, f)| f).unwrap_or_default();
                field.clear();
                encode_process_field(p, &mut field);
                self.fresh_field = Some((record.seq, field));
                (self.fresh_field.as_ref().map(|(_, f)| f.as_slice()), None)
            }
        };
        let mut shared =
            encode_spliced(&mut record, &self.host_field, process, ancestry.encoded(), &mut bytes);
        shared.process = generation;
        self.prev_hash = Some(self.hasher.digest(&bytes, shared, &ancestry));
        Sealed { record, ancestry, bytes }
    }

    /// Records built so far.
    pub fn count(&self) -> u64 {
        self.next_seq - 1
    }
}

/// A record's process part and its encoding as the `process` field (tag, length, message).
#[derive(Debug)]
struct ProcessField {
    part: Box<Process>,
    field: Vec<u8>,
    generation: u64,
}

/// Appends `p` encoded as an `AuditRecord`'s `process` field (tag 6, length, message).
fn encode_process_field(p: &Process, out: &mut Vec<u8>) {
    prost::encoding::message::encode(6, p, out);
}

/// Appends the encoding of `record` with its host part, its ancestors and its process part (the
/// encoded `host`, `ancestors` and `process` fields) in their place, those three first, in this
/// order: the encoding of the whole record with its fields in another order, which decodes to
/// the same record. Returns where they end (`process` left `None`). `record.ancestors` must be
/// empty, `record.host` must be what `host_field` encodes and `process_field` what
/// `record.process` encodes. The rest follows as prost writes it, by tag: the envelope (1–4),
/// then the event and the integrity.
fn encode_spliced(
    record: &mut AuditRecord,
    host_field: &[u8],
    process_field: Option<&[u8]>,
    ancestors: &[u8],
    out: &mut Vec<u8>,
) -> prefix::Shared {
    debug_assert!(record.ancestors.is_empty() && out.is_empty());
    let host = record.host.is_some();
    if host {
        out.extend_from_slice(host_field);
    }
    out.extend_from_slice(ancestors);
    let ancestry_end = out.len();
    debug_assert_eq!(record.process.is_some(), process_field.is_some());
    if let Some(field) = process_field {
        out.extend_from_slice(field);
    }
    let process_end = out.len();
    let after = AuditRecord {
        schema_version: record.schema_version,
        seq: record.seq,
        time: record.time.take(),
        boot_ns: record.boot_ns,
        integrity: record.integrity.take(),
        event: record.event.take(),
        ..Default::default()
    };
    after.encode_raw(out);
    record.time = after.time;
    record.integrity = after.integrity;
    record.event = after.event;
    prefix::Shared { host, ancestry_end, process_end, process: None }
}

/// Lower-case hex of a digest (what `hex::encode` gives, without its per-char iterator).
fn hex32(h: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// `sealed.bytes` decode to the whole record (`whole`: its ancestors in), and the chain
    /// link the builder keeps for the next record is the SHA-256 of exactly those bytes.
    fn assert_sealed(b: &RecordBuilder, sealed: &Sealed, whole: &AuditRecord) {
        assert_eq!(&AuditRecord::decode(sealed.bytes.as_slice()).expect("decode"), whole);
        let digest: [u8; 32] = Sha256::digest(&sealed.bytes).into();
        assert_eq!(b.prev_hash, Some(digest), "the chain link is the hash of the bytes written");
    }

    /// The spliced encoding decodes to the whole record, so the hash chain and every reader see
    /// the same record as before.
    #[test]
    fn spliced_encoding_is_the_whole_records_encoding() {
        use sensor_proto::v1::{Ancestor, FileEvent, Process};
        let ancestors = vec![
            Ancestor {
                guid: "p".into(),
                pid: 10,
                exe: "/usr/bin/bash".into(),
                argv: vec!["bash".into(), "-l".into()],
                ..Default::default()
            },
            Ancestor { guid: "i".into(), pid: 1, exe: "/sbin/init".into(), ..Default::default() },
        ];
        let mut b =
            RecordBuilder::new(Host { hostname: "h".into(), ..Default::default() }, BootClock::now(), None);
        let e = Enriched {
            boot_ns: 5,
            process: Some(Box::new(Process { pid: 42, exe: "/usr/bin/tar".into(), ..Default::default() })),
            ancestors: Ancestry::shared(ancestors.clone()),
            event: Event::File(FileEvent { path: "/srv/share/a".into(), ..Default::default() }),
        };
        let sealed = b.build(e);
        assert!(sealed.record.ancestors.is_empty());
        let mut whole = sealed.record.clone();
        whole.ancestors = ancestors;
        assert_sealed(&b, &sealed, &whole);
        assert_eq!(sealed.ancestry.to_vec(), whole.ancestors);
        b.recycle(sealed);
        // A record without a process or ancestors, at boot time 0, and a checkpoint (the
        // integrity field after the event); the host part, taken back from a recycled record,
        // has labels.
        let host = Host {
            hostname: "ward-3".into(),
            boot_id: "b".into(),
            labels: [("site", "north"), ("role", "terminal")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        };
        let mut b = RecordBuilder::new(host, BootClock::now(), Some([7; 32]));
        for _ in 0..2 {
            let bare = Enriched {
                boot_ns: 0,
                process: None,
                ancestors: Ancestry::empty(),
                event: Event::File(FileEvent::default()),
            };
            let sealed = b.build(bare);
            assert_sealed(&b, &sealed, &sealed.record);
            b.recycle(sealed);
            let sealed = b.checkpoint(false);
            assert_sealed(&b, &sealed, &sealed.record);
            b.recycle(sealed);
        }
    }

    /// A process field spliced from the one kept for an equal part is what encoding the record
    /// gives, whatever the order of parts, recycling and records built before the last one
    /// came back (alerts): the kept part is never one the enricher writes into again.
    #[test]
    fn kept_process_fields_are_only_spliced_into_records_of_an_equal_part() {
        use sensor_proto::v1::{Ancestor, FileEvent, Process};
        let part =
            |pid: u32, exe: &str| Process { pid, exe: exe.into(), comm: "c".into(), ..Default::default() };
        let mut b =
            RecordBuilder::new(Host { hostname: "h".into(), ..Default::default() }, BootClock::now(), None);
        // Two ancestries, the second also as an equal copy at another address: a kept hash
        // state must only serve a record whose shared bytes are the same.
        let parent = |exe: &str| Ancestor { guid: "g".into(), pid: 7, exe: exe.into(), ..Default::default() };
        let ancestries = [
            Ancestry::shared(vec![parent("/usr/bin/bash")]),
            Ancestry::shared(vec![parent("/usr/sbin/sshd")]),
            Ancestry::shared(vec![parent("/usr/sbin/sshd")]),
        ];
        let record = |p: Option<Process>, i: usize| Enriched {
            boot_ns: 9,
            process: p.map(Box::new),
            ancestors: Arc::clone(&ancestries[i % 3]),
            event: Event::File(FileEvent { path: format!("/x{i}"), ..Default::default() }),
        };
        let a = part(1, "/usr/bin/a");
        let a2 = Process { tid: 2, ..a.clone() };
        let z = part(2, "/usr/bin/z");
        let mut spliced = 0;
        // (part, recycle at once, ancestry)
        for (p, recycle, i) in [
            (Some(&a), true, 0),
            (Some(&a), true, 0),
            (Some(&a), true, 0),
            (Some(&a), true, 1),
            (Some(&a), true, 2),
            (Some(&a2), false, 2),
            (Some(&a2), true, 2),
            (None, true, 0),
            (Some(&z), true, 0),
            (Some(&a), true, 0),
            (Some(&a), false, 0),
            (Some(&z), true, 0),
            (Some(&a), true, 0),
            (Some(&a), true, 0),
            (Some(&a), true, 0),
            (Some(&a), true, 0),
        ] {
            let sealed = b.build(record(p.cloned(), i));
            let mut whole = sealed.record.clone();
            whole.ancestors = sealed.ancestry.to_vec();
            assert_sealed(&b, &sealed, &whole);
            spliced += usize::from(b.fresh_field.as_ref().is_none_or(|(seq, _)| *seq != sealed.record.seq));
            if recycle {
                b.recycle(sealed);
            }
            // The enricher writes the next parts into the spares: a kept part must not be one.
            for spare in &mut b.spares().processes {
                spare.exe = "/overwritten".into();
            }
        }
        assert!(spliced >= 3, "equal parts in a row reuse the kept field ({spliced})");
        let (after_ancestry, after_process) = b.hasher.hits;
        assert!(
            after_ancestry >= 8,
            "records with the same ancestors reuse the hash state ({after_ancestry})"
        );
        assert!(after_process >= 3, "records of a process in a row reuse the hash state ({after_process})");
    }

    #[test]
    fn hex32_matches_hex_encode() {
        let h: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(super::hex32(&h), hex::encode(h));
    }
}
