//! Hostile input from processes: file names with newlines, control characters and invalid UTF-8,
//! 4 KiB paths and trees deeper than 40 levels, argv of 100 KB and of 10,000 arguments, a
//! process forking 10,000 short children (and a pid reused), DNS packets with compression loops
//! and over-long names. Each is recorded faithfully or flagged truncated — never a panic, a hang
//! or a silent drop (what the kernel side could not deliver is in loss records).

use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _, path::Path, process::Command, time::Duration};

use sensor::pipeline::Options;
use sensor_proto::{
    AuditRecord,
    v1::{FileEvent, audit_record::Event},
};
use sensor_tests::{TestSensor, is_exec_of, lost, unique};

const WAIT: Duration = Duration::from_secs(15);

fn file_of(r: &AuditRecord, pid: u32) -> Option<&FileEvent> {
    match &r.event {
        Some(Event::File(f)) if r.process.as_ref().is_some_and(|p| p.pid == pid) => Some(f),
        _ => None,
    }
}

/// The exact bytes of a file record's path (the raw field when the text had to be escaped).
fn path_bytes(f: &FileEvent) -> Vec<u8> {
    if f.path_raw.is_empty() { f.path.as_bytes().to_vec() } else { f.path_raw.clone() }
}

/// Runs `sh -c script` in `dir` and returns its pid once it exited successfully.
fn sh(dir: &Path, script: &str) -> u32 {
    let mut c = Command::new("/bin/sh").arg("-c").arg(script).current_dir(dir).spawn().expect("sh");
    let pid = c.id();
    assert!(c.wait().expect("wait").success(), "{script}");
    pid
}

#[test]
fn file_names_with_newlines_control_characters_and_invalid_utf8_are_exact() {
    let mut sensor = TestSensor::start(Options { ignore_self: false, ..Options::default() });
    let me = std::process::id();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let names: [&[u8]; 5] =
        [b"two\nlines", b"tab\there", b"\x1b[31mred\x1b[0m", b"bad-\xff\xfe-utf8", b"back\\slash\r"];
    for name in names {
        let path = root.join(OsStr::from_bytes(name));
        std::fs::write(&path, b"x").expect("write");
        std::fs::remove_file(&path).expect("unlink");
        let want = path.as_os_str().as_bytes().to_vec();
        for op in ["open", "unlink"] {
            let rec = sensor
                .wait_for(WAIT, |r| file_of(r, me).is_some_and(|f| f.op == op && path_bytes(f) == want))
                .unwrap_or_else(|| panic!("{op} record for {:?}", String::from_utf8_lossy(name)));
            let f = file_of(&rec, me).expect("file");
            assert!(!f.path_truncated);
            // Invalid UTF-8 is escaped in the text, exact in path_raw; valid text is kept as is.
            assert_eq!(f.path_raw.is_empty(), std::str::from_utf8(&want).is_ok(), "{:?}", f.path);
            if f.path_raw.is_empty() {
                assert_eq!(f.path.as_bytes(), want.as_slice());
            }
        }
    }
    sensor.stop();
}

/// Creates `levels` nested directories named by `name(i)` below `root`, one `mkdirat` and
/// `openat` at a time (so the whole path may exceed PATH_MAX), and writes `file` in the last.
fn deep_file(root: &Path, levels: usize, name: impl Fn(usize) -> String, file: &str) -> String {
    use nix::{
        fcntl::{OFlag, openat},
        sys::stat::{Mode, mkdirat},
    };
    let mut dir = std::fs::File::open(root).expect("root").into();
    let mut full = root.display().to_string();
    for i in 0..levels {
        let n = name(i);
        mkdirat(&dir, n.as_str(), Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(&dir, n.as_str(), OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).expect("openat");
        full = format!("{full}/{n}");
    }
    let fd = openat(&dir, file, OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o600))
        .expect("create");
    nix::unistd::write(&fd, b"x").expect("write");
    format!("{full}/{file}")
}

#[test]
fn paths_longer_than_4_kib_and_trees_deeper_than_40_levels_are_recorded_or_flagged_truncated() {
    let mut sensor = TestSensor::start(Options { ignore_self: false, ..Options::default() });
    let me = std::process::id();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let deep = deep_file(&root, 60, |i| format!("d{i}"), "deep-file");
    let long = deep_file(&root.join("d0"), 22, |i| format!("{}{i:02}", "L".repeat(200)), "long-file");
    assert!(deep.matches('/').count() > 60);
    assert!(long.len() > 4096, "{}", long.len());
    for (name, full) in [("deep-file", &deep), ("long-file", &long)] {
        let rec = sensor
            .wait_for(WAIT, |r| {
                file_of(r, me).is_some_and(|f| f.op == "open" && f.path.ends_with(&format!("/{name}")))
            })
            .unwrap_or_else(|| panic!("no record of the write to {name}"));
        let f = file_of(&rec, me).expect("file");
        // Faithful, or cut at the capture limit and flagged: then what is there is the end of
        // the path, nearest the file, never a wrong path.
        if f.path_truncated {
            assert!(full.ends_with(&f.path), "{name}: {} is not the end of {full}", f.path);
        } else {
            assert_eq!(&f.path, full, "{name}");
        }
    }
    sensor.stop();
}

#[test]
fn argv_of_100_kb_and_of_10000_arguments() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("argv100k");
    let big = "B".repeat(100 * 1024);
    let mut c = Command::new("/bin/true").arg(&tag).arg(&big).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    assert!(p.argv_truncated, "100 KB of argv is more than is captured");
    assert_eq!(p.argv[1], tag);
    assert!(p.argv.get(2).is_some_and(|a| big.starts_with(a.as_str())), "the cut argument is a prefix");
    let Some(Event::Exec(e)) = &rec.event else { panic!("exec") };
    assert_eq!(e.args_total_bytes as usize, "/bin/true".len() + tag.len() + big.len() + 3);
    assert_eq!(e.argc, 3);

    let tag = unique("argc10k");
    let mut c =
        Command::new("/bin/true").arg(&tag).args(std::iter::repeat_n("a", 10_000)).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    let Some(Event::Exec(e)) = &rec.event else { panic!("exec") };
    assert_eq!(e.argc, 10_002, "the true argc");
    // 10,000 two-byte arguments fit in the capture: every one is there.
    assert!(!p.argv_truncated);
    assert_eq!(p.argv.len(), 10_002);
    assert!(p.argv[2..].iter().all(|a| a == "a"));
    sensor.stop();
}

#[test]
fn ten_thousand_short_children_are_each_recorded_or_counted_lost() {
    let sensor = TestSensor::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = sh(dir.path(), "i=0; while [ $i -lt 10000 ]; do (exit 0); i=$((i+1)); done");
    std::thread::sleep(Duration::from_secs(2));
    let records = sensor.stop();
    let forks: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| matches!(&r.event, Some(Event::Fork(f)) if f.parent_pid == pid && !f.thread))
        .collect();
    let exits = records
        .iter()
        .filter(|r| {
            matches!(r.event, Some(Event::Exit(_))) && r.process.as_ref().is_some_and(|p| p.ppid == pid)
        })
        .count() as u64;
    let lost_forks = lost(&records, "fork", None);
    let lost_exits = lost(&records, "exit", None);
    assert!(forks.len() as u64 + lost_forks >= 10_000, "{} forks seen, {lost_forks} lost", forks.len());
    assert!(exits + lost_exits >= 10_000, "{exits} exits seen, {lost_exits} lost");
    // Every child is its own process: one GUID each, even where a pid came back.
    let guids: std::collections::HashSet<&str> =
        forks.iter().filter_map(|r| r.process.as_ref()).map(|p| p.guid.as_str()).collect();
    assert_eq!(guids.len(), forks.len(), "a GUID per child");
}

#[test]
fn a_reused_pid_is_a_different_process() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("reuse");
    let spawn = |arg: &str| {
        let mut c =
            Command::new("/bin/echo").arg(arg).stdout(std::process::Stdio::null()).spawn().expect("spawn");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    };
    let first = spawn(&format!("{tag}-a"));
    // GUIDs tell processes apart by pid and start time in clock ticks (10 ms, the resolution
    // of /proc): a pid can only come back that fast when root forces it, as here.
    std::thread::sleep(Duration::from_millis(20));
    // Ask the kernel for the same pid again (others may take it first: retry).
    let mut second = 0;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (first - 1).to_string()).expect("ns_last_pid");
        second = spawn(&format!("{tag}-b"));
        if second == first {
            break;
        }
    }
    if second != first {
        eprintln!("skipped: pid {first} was not handed out again (a busy machine)");
        sensor.stop();
        return;
    }
    let a = sensor
        .wait_for(WAIT, |r| {
            is_exec_of(r, first)
                && r.process.as_ref().is_some_and(|p| p.argv.get(1).is_some_and(|x| x.ends_with("-a")))
        })
        .expect("first");
    let b = sensor
        .wait_for(WAIT, |r| {
            is_exec_of(r, first)
                && r.process.as_ref().is_some_and(|p| p.argv.get(1).is_some_and(|x| x.ends_with("-b")))
        })
        .expect("second");
    let (a, b) = (a.process.expect("a"), b.process.expect("b"));
    assert_eq!(a.pid, b.pid);
    assert_ne!(a.guid, b.guid, "pid reuse is a new process");
    assert_eq!(b.argv[1], format!("{tag}-b"));
    sensor.stop();
}

#[test]
fn dns_packets_with_compression_loops_and_over_long_names_are_recorded_malformed() {
    let mut sensor = TestSensor::start(Options { ignore_self: false, ..Options::default() });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let header = [0x12u8, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut looped = header.to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut long = header.to_vec();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut truncated = header.to_vec();
    truncated.extend_from_slice(&[40, b'x', b'y']);
    let cases = [
        ("loop", looped, "compression pointer loop"),
        ("long", long, "longer than 255"),
        ("cut", truncated, "runs past"),
    ];
    for (i, (name, packet, why)) in cases.iter().enumerate() {
        // A server per packet: a new (process, remote) flow each time.
        let server = format!("127.0.0.{}", 60 + i);
        sock.send_to(packet, (server.as_str(), 53)).expect("send");
        let rec = sensor
            .wait_for(WAIT, |r| matches!(&r.event, Some(Event::Dns(d)) if d.server_address == server))
            .unwrap_or_else(|| panic!("no dns record for the {name} packet"));
        let Some(Event::Dns(d)) = rec.event else { unreachable!() };
        assert!(d.malformed, "{name}");
        assert!(d.error.contains(why), "{name}: {}", d.error);
        assert_eq!(rec.process.as_ref().map(|p| p.pid), Some(std::process::id()));
    }
    sensor.stop();
}
