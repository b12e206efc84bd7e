//! A network output's spool as the next run finds it: segments and an `ack` file with any
//! contents (a crash, a damaged disk, a stray file). The spool opens, delivers what is whole,
//! and never deletes a segment the ack does not truly cover; never a panic or an overflow.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// Scratch files live below one directory (tmpfs), so that a sensor running on the same machine
/// (`cargo xtask soak`) can exclude the fuzzers' file activity.
fn scratch() -> &'static str {
    const DIR: &str = "/dev/shm/sensor-fuzz";
    std::fs::create_dir_all(DIR).expect("scratch directory");
    DIR
}
use sensor::sinks::{
    spec::SpoolFull,
    spool::{ack, frame, store},
};

fn root() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("fuzz-spool").tempdir_in(scratch()).expect("tmp"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    // Frame parsing and the scan on their own.
    let _ = frame::parse(data);
    let scan = frame::scan(data, data.len() as u64 / 2);
    assert!(scan.len <= data.len() as u64);
    let _ = ack::parse_ack(&String::from_utf8_lossy(data));

    // A spool directory: [ack len][ack][segment 1 len: u16][segment 1][segment 2].
    let Some((&ack_len, rest)) = data.split_first() else { return };
    let (ack_text, rest) = rest.split_at(usize::from(ack_len).min(rest.len()));
    let (seg1, seg2) = match rest {
        [a, b, tail @ ..] => tail.split_at(usize::from(u16::from_le_bytes([*a, *b])).min(tail.len())),
        _ => (rest, &[][..]),
    };
    let dir = root().join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("ack"), ack_text).expect("ack");
    std::fs::write(dir.join("00000000000000000001.seg"), seg1).expect("seg1");
    std::fs::write(dir.join("00000000000000000002.seg"), seg2).expect("seg2");
    let Ok(mut s) = store::Store::open(&dir, 1 << 30, 1 << 20, SpoolFull::DropOldest) else { return };
    let pending = s.pending_records();
    let mut read = 0u64;
    while let Ok(Some(plan)) = s.plan() {
        let Ok(file) = std::fs::File::open(&plan.path) else { break };
        let Ok((batch, end)) = store::read_batch(&file, &plan, 512, 1 << 20) else { break };
        assert!(end > plan.start || !batch.is_empty(), "the sender always makes progress");
        read += batch.len() as u64;
        s.ack(plan.id, end, batch.len() as u64);
    }
    assert!(read <= pending, "read {read} of {pending} pending");
});
