//! Reading record files written by the `file:` sink (`sensor records ...`).

pub mod reader;
pub mod verify;

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::sinks::file::record_files;
use reader::{Frame, RecordReader};

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
    for frame in RecordReader::new(std::io::BufReader::new(file)) {
        match frame {
            Frame::Record { record, .. } => {
                serde_json::to_writer(&mut *out, &record)?;
                out.write_all(b"\n")?;
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
