//! `sensor records cat|verify`: output and exit codes.

use std::path::{Path, PathBuf};

use crate::{recordbuild::signing, recordfile};

/// `records cat`: exit 1 when a file is corrupt (a torn tail is only a warning).
pub fn cat(paths: &[PathBuf]) -> anyhow::Result<i32> {
    let summary = recordfile::cat(paths, &mut std::io::stdout().lock())?;
    Ok(if summary.damaged.is_empty() { 0 } else { 1 })
}

/// `records verify`: OK and a summary, or FAILED and the first bad record with exit 1.
pub fn verify(paths: &[PathBuf], public_key: Option<&Path>) -> anyhow::Result<i32> {
    let key = public_key.map(signing::load_public).transpose()?;
    let r = recordfile::verify::verify_with(paths, key.as_ref())?;
    for t in &r.torn {
        eprintln!("warning: torn record (a crash mid-write): {t}");
    }
    if let Some(p) = &r.problem {
        println!("FAILED: {p}");
        return Ok(1);
    }
    let end = if r.complete {
        "ends with a final checkpoint"
    } else {
        "does not end with a final checkpoint (still running, crashed, or cut short)"
    };
    let gaps = match r.gaps.iter().map(|g| g.count).sum::<u64>() {
        0 => String::new(),
        n => format!(" across {} gaps the sensor reported ({n} records not written)", r.gaps.len()),
    };
    println!(
        "OK: {} records in {} files from {} sensor runs; chain intact{gaps}; {end}",
        r.records, r.files, r.runs
    );
    for g in &r.gaps {
        println!("gap: {g}");
    }
    for u in &r.unfinished {
        println!("unfinished: {u}");
    }
    if key.is_some() {
        println!(
            "signatures: {} checkpoints verified; {} records after the last signed checkpoint",
            r.signed_checkpoints, r.unsigned_tail
        );
    }
    Ok(0)
}
