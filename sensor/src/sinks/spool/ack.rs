//! The spool's `ack` file: how far the oldest segment was delivered.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    path::Path,
};

use tracing::warn;

use super::store::{MAX_ID, segment_name};

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

/// Parses the `ack` file: `(segment id, offset)`, `None` when it is not two numbers.
pub fn parse_ack(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(id)), Some(Ok(off)), None) => Some((id, off)),
        _ => None,
    }
}

/// The ack, checked against the segments present: it counts only when it names one of them and
/// an offset inside it (a damaged or foreign ack would otherwise delete every segment below
/// its id). A missing ack means nothing was delivered; a bad one is reset (so a later segment
/// can never take its id by chance) and everything present is delivered again — receivers
/// de-duplicate.
pub(super) fn checked_ack(dir: &Path, ids: &[u64]) -> (u64, u64) {
    let path = dir.join("ack");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (0, 0),
        Err(_) => String::new(),
    };
    let ack = parse_ack(&text);
    let problem = match ack {
        None if text.trim().is_empty() => return (0, 0),
        None => "not a segment id and an offset",
        Some((0, 0)) => return (0, 0),
        Some((id, off)) => match ids.binary_search(&id) {
            Ok(_) if fs::metadata(dir.join(segment_name(id))).is_ok_and(|m| off <= m.len()) => {
                return (id, off);
            }
            Ok(_) => "offset beyond the end of its segment",
            // Every segment it names was delivered and deleted: nothing older is left.
            Err(0) if id <= MAX_ID && ids.last().is_none_or(|last| id < *last) => return (id, 0),
            Err(_) => "names no segment in the spool",
        },
    };
    warn!(ack = %path.display(), content = %text.trim().escape_debug(), problem,
        "spool: ignoring a damaged ack file; every spooled record is delivered again");
    let _ = write(dir, 0, 0);
    (0, 0)
}

/// Replaces the ack file (at start, before the sender writes it).
pub(super) fn write(dir: &Path, id: u64, offset: u64) -> io::Result<()> {
    fs::write(dir.join("ack"), format!("{id:020} {offset:020}\n"))
}
