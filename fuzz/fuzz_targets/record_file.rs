//! Record files as `sensor records cat` and `sensor records verify` read them: garbage,
//! truncated and byte-flipped files end in an error value or a reported problem, never a panic,
//! a hang or unbounded memory.
#![no_main]

use std::{io::Write as _, path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;

/// Scratch files live below one directory (tmpfs), so that a sensor running on the same machine
/// (`cargo xtask soak`) can exclude the fuzzers' file activity.
fn scratch() -> &'static str {
    const DIR: &str = "/dev/shm/sensor-fuzz";
    std::fs::create_dir_all(DIR).expect("scratch directory");
    DIR
}

struct Setup {
    _dir: tempfile::TempDir,
    file: PathBuf,
    key: ed25519_dalek::VerifyingKey,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("fuzz-records").tempdir_in(scratch()).expect("tmp");
        let key = dir.path().join("k.pem");
        let public = sensor::recordbuild::signing::generate(&key).expect("keygen");
        let key = sensor::recordbuild::signing::load_public(&public).expect("public key");
        let file = dir.path().join("audit-0000000000001-000000.pb");
        Setup { _dir: dir, file, key }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let mut f = std::fs::File::create(&s.file).expect("create");
    f.write_all(data).expect("write");
    drop(f);
    let paths = [s.file.clone()];
    let mut out = Vec::new();
    let summary = sensor::recordfile::cat(&paths, &mut out).expect("cat reads a file it can open");
    assert!(summary.torn.len() <= 1);
    // What cat printed is whole JSON lines.
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.starts_with(b"{") && line.ends_with(b"}"), "half a line");
    }
    let key = (data.first().is_some_and(|b| b & 1 == 1)).then_some(&s.key);
    let report =
        sensor::recordfile::verify::verify_with(&paths, key).expect("verify reads a file it can open");
    if let Some(p) = &report.problem {
        let _ = p.to_string();
    }
    for g in &report.gaps {
        let _ = g.to_string();
    }
    // Every record cat printed is one verify counted, up to the first problem (cat skips the
    // records that cannot be shown as JSON).
    if report.problem.is_none() {
        assert!(summary.records <= report.records, "{} > {}", summary.records, report.records);
    }
});
