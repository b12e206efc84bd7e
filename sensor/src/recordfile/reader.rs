//! Streaming reader of length-delimited record files. Memory is bounded by one frame; a torn last
//! frame (e.g. after SIGKILL) or corrupt bytes end the file with a `Damaged` frame, not a panic.

use std::io::{BufRead, ErrorKind, Read};

use prost::Message as _;
use sensor_proto::AuditRecord;

/// Largest frame accepted; anything larger is treated as corruption.
pub const MAX_FRAME: u64 = 16 * 1024 * 1024;

/// One item of a record file.
#[derive(Debug)]
pub enum Frame {
    /// A whole record; `bytes` is its encoding (without the length prefix).
    Record { offset: u64, record: Box<AuditRecord>, bytes: Vec<u8> },
    /// The file cannot be read further from `offset`.
    Damaged { offset: u64, reason: String },
}

#[derive(Debug)]
pub struct RecordReader<R> {
    inner: R,
    offset: u64,
    done: bool,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, offset: 0, done: false }
    }

    /// Reads a varint length; `Ok(None)` at a clean end of file.
    fn read_len(&mut self) -> Result<Option<(u64, usize)>, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let mut b = [0u8; 1];
            match self.inner.read_exact(&mut b) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return if i == 0 { Ok(None) } else { Err("torn length prefix".into()) };
                }
                Err(e) => return Err(e.to_string()),
            }
            value |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                return Ok(Some((value, i + 1)));
            }
        }
        Err("length prefix longer than 10 bytes".into())
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let damaged = |me: &mut Self, reason: String| {
            me.done = true;
            Some(Frame::Damaged { offset, reason })
        };
        let (len, prefix) = match self.read_len() {
            Ok(Some(v)) => v,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(reason) => return damaged(self, reason),
        };
        if len > MAX_FRAME {
            return damaged(self, format!("frame length {len} exceeds {MAX_FRAME}"));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        match (&mut self.inner).take(len).read_to_end(&mut bytes) {
            Ok(n) if n as u64 == len => {}
            Ok(n) => return damaged(self, format!("torn record: {n} of {len} bytes")),
            Err(e) => return damaged(self, e.to_string()),
        }
        match AuditRecord::decode(bytes.as_slice()) {
            // Protobuf decodes almost anything (every field is optional): a record the sensor
            // wrote always has a schema version and a seq.
            Ok(record) if record.schema_version == 0 || record.seq == 0 => damaged(
                self,
                format!("not an audit record (schema_version {}, seq {})", record.schema_version, record.seq),
            ),
            Ok(record) => {
                self.offset += prefix as u64 + len;
                Some(Frame::Record { offset, record: Box::new(record), bytes })
            }
            Err(e) => damaged(self, format!("undecodable record: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> AuditRecord {
        AuditRecord { seq, schema_version: 1, ..Default::default() }
    }

    fn file(n: u64) -> Vec<u8> {
        let mut b = Vec::new();
        for s in 1..=n {
            rec(s).encode_length_delimited(&mut b).expect("encode");
        }
        b
    }

    #[test]
    fn reads_all_records() {
        let b = file(3);
        let seqs: Vec<u64> = RecordReader::new(b.as_slice())
            .map(|f| match f {
                Frame::Record { record, .. } => record.seq,
                Frame::Damaged { reason, .. } => panic!("{reason}"),
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn torn_tail_is_reported_after_whole_records() {
        let b = file(3);
        for cut in 1..b.len() {
            let frames: Vec<Frame> = RecordReader::new(&b[..cut]).collect();
            let whole = frames.iter().filter(|f| matches!(f, Frame::Record { .. })).count();
            assert!(whole < 3);
            // A cut exactly on a frame boundary is a clean end; anything else is damage.
            let last_damaged = matches!(frames.last(), Some(Frame::Damaged { .. }));
            let boundary = (0..=3).any(|k| file(k).len() == cut);
            assert_eq!(last_damaged, !boundary, "cut at {cut}");
        }
    }

    #[test]
    fn empty_and_foreign_frames_are_damage() {
        let frames: Vec<Frame> = RecordReader::new(&[0u8, 0, 0][..]).collect();
        assert!(
            matches!(frames.as_slice(), [Frame::Damaged { reason, .. }] if reason.contains("not an audit record")),
            "{frames:?}"
        );
        // A protobuf message that is not a record (here: a bare string field 40).
        let frames: Vec<Frame> = RecordReader::new(&[5u8, 0xc2, 2, 2, b'h', b'i'][..]).collect();
        assert!(matches!(frames.as_slice(), [Frame::Damaged { .. }]), "{frames:?}");
    }

    #[test]
    fn garbage_is_damage_not_panic() {
        let frames: Vec<Frame> = RecordReader::new(&[0xffu8; 32][..]).collect();
        assert!(matches!(frames.as_slice(), [Frame::Damaged { .. }]));
        let frames: Vec<Frame> = RecordReader::new(&[0x05u8, 0xff, 0xff, 0xff, 0xff, 0xff][..]).collect();
        assert!(matches!(frames.as_slice(), [Frame::Damaged { .. }]));
    }
}
