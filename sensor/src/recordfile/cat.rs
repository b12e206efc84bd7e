//! `sensor records cat`: record files as canonical JSON lines.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::{
    expand_paths,
    reader::{Frame, RecordReader},
};

/// `sensor records cat`: every record as a canonical JSON line. A torn or corrupt tail is
/// reported on stderr and reading goes on with the next file; the exit status says so.
pub fn cat(paths: &[PathBuf], out: &mut impl Write) -> anyhow::Result<CatSummary> {
    let mut summary = CatSummary::default();
    for path in expand_paths(paths)? {
        cat_file(&path, out, &mut summary)?;
    }
    out.flush()?;
    Ok(summary)
}

/// What `cat` saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CatSummary {
    pub records: u64,
    /// Files with an undecodable frame (corruption: the exit status says so).
    pub damaged: Vec<(PathBuf, String)>,
    /// Files that end in a torn record (a crash mid-write: reported, not an error).
    pub torn: Vec<(PathBuf, String)>,
}

fn cat_file(path: &Path, out: &mut impl Write, summary: &mut CatSummary) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut line = Vec::new();
    for frame in RecordReader::new(std::io::BufReader::new(file)) {
        match frame {
            Frame::Record { record, offset, .. } => {
                line.clear();
                // A record can decode and still not be JSON (e.g. a time beyond year 9999):
                // say so and go on with the next one; never print half a line.
                if let Err(e) = serde_json::to_writer(&mut line, &record) {
                    let msg =
                        format!("at byte {offset}: record seq {} cannot be shown as JSON: {e}", record.seq);
                    eprintln!("{}: {msg}", path.display());
                    summary.damaged.push((path.to_owned(), msg));
                    continue;
                }
                line.push(b'\n');
                out.write_all(&line)?;
                summary.records += 1;
            }
            Frame::Damaged { offset, reason } => {
                let msg = format!("at byte {offset}: {reason}");
                if reason.starts_with("torn") {
                    eprintln!(
                        "warning: {}: {msg} (a crash mid-write; records before it are whole)",
                        path.display()
                    );
                    summary.torn.push((path.to_owned(), msg));
                } else {
                    eprintln!("{}: {msg}", path.display());
                    summary.damaged.push((path.to_owned(), msg));
                }
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use sensor_proto::{AuditRecord, Timestamp};

    use super::*;

    /// Found by fuzzing (record_file): a record whose time is beyond what JSON can show ended
    /// `records cat` with an error, and nothing after it was printed.
    #[test]
    fn a_record_that_cannot_be_json_is_reported_and_the_rest_is_printed() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("audit-0000000000001-000000.pb");
        let mut data = Vec::new();
        for (seq, seconds) in [(1, 1_700_000_000), (2, i64::MAX), (3, 1_700_000_001)] {
            let r = AuditRecord {
                schema_version: 1,
                seq,
                time: Some(Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            };
            r.encode_length_delimited(&mut data).expect("encode");
        }
        std::fs::write(&path, data).expect("write");
        let mut out = Vec::new();
        let s = cat(&[path], &mut out).expect("cat");
        assert_eq!(s.records, 2);
        assert_eq!(s.damaged.len(), 1);
        assert!(s.damaged[0].1.contains("seq 2 cannot be shown as JSON"), "{:?}", s.damaged);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
