//! `sensor trace` over record files: any bytes (garbage, truncated, byte-flipped, or valid
//! records with hostile contents — parent loops, huge fan-out, odd addresses) give an incident
//! or an error, rendered in every format, never a panic or a hang.
#![no_main]

use std::{io::Write as _, net::IpAddr, path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;

/// Scratch files live below one directory (tmpfs), so that a sensor running on the same machine
/// (`cargo xtask soak`) can exclude the fuzzers' file activity.
fn scratch() -> &'static str {
    const DIR: &str = "/dev/shm/sensor-fuzz";
    std::fs::create_dir_all(DIR).expect("scratch directory");
    DIR
}
use sensor::trace::{ConnectHost, Format, Query, Target};

struct Setup {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("fuzz-trace").tempdir_in(scratch()).expect("tmp");
        let file = dir.path().join("audit-0000000000001-000000.pb");
        Setup { _dir: dir, file }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Some((&arg, records)) = rest.split_first() else { return };
    let s = setup();
    let mut f = std::fs::File::create(&s.file).expect("create");
    f.write_all(records).expect("write");
    drop(f);
    let target = match sel % 6 {
        0 => Target::Pid(u32::from(arg)),
        1 => Target::Session(u32::from(arg)),
        2 => Target::File(format!("/tmp/{arg}")),
        3 => Target::Connect { host: ConnectHost::Ip(IpAddr::from([127, 0, 0, arg])), port: None },
        4 => Target::Connect { host: ConnectHost::Name("example.org".into()), port: Some(u32::from(arg)) },
        _ => Target::Guid(format!("{arg:02x}")),
    };
    let q = Query { target, since: None, until: None };
    let Ok(incident) = sensor::trace::trace(&[s.file.clone()], &q) else { return };
    for format in [Format::Tree, Format::Json, Format::Dot, Format::Svg] {
        let mut out = Vec::new();
        sensor::trace::render(&incident, format, &mut out).expect("render to memory");
    }
});
