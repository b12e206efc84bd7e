//! Hostile input to the `sensor` binary: malformed configuration files (each section wrong in
//! turn), garbage, truncated and byte-flipped record files for `records cat`, `records verify`
//! and `trace`, and a spool with a corrupted ack and damaged segments. Each gets a clear error
//! naming what is wrong (or is read as far as it is whole) — never a panic or a hang.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor::{
    enrich::{Enriched, clock::BootClock},
    recordbuild::RecordBuilder,
    sinks::{Sink, file::FileSink, spec::FileOptions},
};
use sensor_proto::v1::{
    ExecEvent, FileEvent, Host, NetworkEvent, Process, SessionEvent, audit_record::Event,
};
use sensor_tests::sensor_bin;

/// Exit code, stdout and stderr of `sensor ARGS`; fails the test on a hang or a panic.
fn sensor(args: &[&str], extra: &[&Path]) -> (i32, String, String) {
    let mut child = Command::new(sensor_bin())
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sensor");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sensor {args:?} {extra:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (o, e) = reader.join().expect("reader");
    assert!(!e.contains("panicked"), "sensor {args:?} {extra:?} panicked:\n{e}");
    (status.code().unwrap_or(-1), o, e)
}

/// A record file of a small but varied run (exec, file, network, session records, a final
/// checkpoint) written by the real sink.
fn record_file(dir: &Path) -> PathBuf {
    let host = Host { instance_id: "hostile-cli".into(), hostname: "h".into(), ..Default::default() };
    let mut b = RecordBuilder::new(host, BootClock::now(), None);
    let opts = FileOptions { disk: sensor::sinks::spec::DiskOptions::NONE, ..FileOptions::default() };
    let mut sink = FileSink::open(dir, opts).expect("sink");
    let p = |pid: u32, ppid: u32| Process {
        guid: format!("guid-{pid}"),
        parent_guid: format!("guid-{ppid}"),
        pid,
        ppid,
        exe: "/bin/sh".into(),
        session_id: 7,
        ..Default::default()
    };
    let events = [
        (
            p(10, 1),
            Event::Session(SessionEvent { session_id: 7, service: "sshd".into(), ..Default::default() }),
        ),
        (p(10, 1), Event::Exec(ExecEvent { filename: "/bin/sh".into(), argc: 1, ..Default::default() })),
        (
            p(11, 10),
            Event::File(FileEvent { op: "open".into(), path: "/tmp/x".into(), ..Default::default() }),
        ),
        (
            p(11, 10),
            Event::Network(NetworkEvent {
                op: "connect".into(),
                remote_address: "10.0.0.9".into(),
                remote_port: 4444,
                ..Default::default()
            }),
        ),
        (p(12, 11), Event::Exec(ExecEvent { filename: "/usr/bin/curl".into(), ..Default::default() })),
    ];
    for (i, (proc_, ev)) in events.into_iter().enumerate() {
        let s = b.build(Enriched {
            boot_ns: i as u64,
            process: Some(Box::new(proc_)),
            ancestors: sensor::enrich::ancestry::Ancestry::empty(),
            event: ev,
        });
        sink.write(&s.record, &s.bytes).expect("write");
    }
    let cp = b.checkpoint(true);
    sink.write(&cp.record, &cp.bytes).expect("write");
    sink.flush().expect("flush");
    drop(sink);
    sensor::recordfile::record_files(dir).expect("list").pop().expect("a file")
}

#[test]
fn damaged_record_files_are_reported_never_a_panic_or_a_hang() {
    let dir = sensor_tests::scratch_dir();
    let good = record_file(&dir.path().join("good"));
    let data = std::fs::read(&good).expect("read");
    let (code, out, _) = sensor(&["records", "verify"], &[&good]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = sensor(&["trace", "--pid", "11"], &[&good]);
    assert_eq!(code, 0);

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    let file = bad.join("audit-0000000000001-000000.pb");
    let mut variants: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("garbage".into(), (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("huge length prefix".into(), vec![0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]),
        ("ten-byte varint".into(), vec![0x80; 11]),
    ];
    for cut in [1, data.len() / 3, data.len() / 2, data.len() - 1] {
        variants.push((format!("cut at {cut}"), data[..cut].to_vec()));
    }
    // Byte flips before the last record (the final checkpoint): each is caught by verify.
    let last_start = data.len() - sensor_tests_last_frame_len(&data);
    for at in [0, 1, 5, data.len() / 4, data.len() / 2, last_start - 2] {
        let mut d = data.clone();
        d[at] ^= 0x20;
        variants.push((format!("flip at {at}"), d));
    }
    for (name, bytes) in &variants {
        std::fs::write(&file, bytes).expect("write");
        let (cat, _, cat_err) = sensor(&["records", "cat"], &[&file]);
        assert!(matches!(cat, 0 | 1), "cat {name}: exit {cat}: {cat_err}");
        let (verify, vout, verr) = sensor(&["records", "verify"], &[&file]);
        assert!(matches!(verify, 0 | 1), "verify {name}: exit {verify}: {verr}");
        if name.starts_with("flip")
            || name == "garbage"
            || name.starts_with("huge")
            || name.starts_with("ten")
        {
            assert_eq!(verify, 1, "verify {name} must fail: {vout}");
            assert!(vout.starts_with("FAILED: ") && vout.contains("at byte"), "verify {name}: {vout}");
        }
        if verify == 0 && !name.starts_with("empty") {
            assert!(vout.contains("OK:"), "{vout}");
        }
        for format in ["tree", "json", "dot", "svg"] {
            let (trace, _, terr) = sensor(&["trace", "--pid", "11", "--format", format], &[&file]);
            assert!(matches!(trace, 0 | 2), "trace {name} ({format}): exit {trace}: {terr}");
        }
    }
    // A directory that is not readable as records, a missing file: an error naming it.
    let (code, _, err) = sensor(&["records", "verify"], &[&dir.path().join("missing.pb")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.pb"), "{err}");
}

/// Length (prefix included) of the last frame of a record file.
fn sensor_tests_last_frame_len(data: &[u8]) -> usize {
    let mut at = 0;
    let mut last = 0;
    while at < data.len() {
        let mut buf = &data[at..];
        let len = prost::encoding::decode_varint(&mut buf).expect("varint") as usize;
        last = data.len() - at - buf.len() + len;
        at += last;
    }
    last
}

#[test]
fn malformed_configuration_files_name_the_key_and_the_problem() {
    let dir = sensor_tests::scratch_dir();
    let cases: &[(&str, &str, &str)] = &[
        ("syntax", "[sensor\nargs_max = 1\n", "line 1"),
        ("unknown section", "[bogus]\nx = 1\n", "bogus"),
        ("sensor", "[sensor]\nargs_max = \"many\"\n", "sensor.args_max"),
        ("sensor range", "[sensor]\nargs_max = 99999999\n", "sensor.args_max"),
        ("labels", "[sensor]\nlabels = { \"\" = \"x\" }\n", "sensor.labels"),
        ("filters", "[filters]\nsensitive = \"/etc/shadow\"\n", "filters.sensitive"),
        ("filters relative", "[filters]\nexclude_paths = [\"tmp\"]\n", "filters.exclude_paths[0]"),
        ("filters refresh", "[filters]\nrefresh = \"soon\"\n", "filters.refresh"),
        ("limits", "[limits]\nqueue_capacity = -1\n", "limits.queue_capacity"),
        ("limits ring", "[limits]\nproc_ring_buffer = \"3MiB\"\n", "limits.proc_ring_buffer"),
        ("output url", "[[output]]\nurl = \"nope:x\"\n", "output[0].url"),
        (
            "output file",
            "[[output]]\nurl = \"file:/r\"\n[output.file]\nmax_file_bytes = \"12 parsecs\"\n",
            "output[0].file.max_file_bytes",
        ),
        (
            "output disk",
            "[[output]]\nurl = \"file:/r\"\n[output.file]\non_low_space = \"panic\"\n",
            "output[0].file.on_low_space",
        ),
        (
            "output reserve",
            "[[output]]\nurl = \"file:/r\"\n[output.file]\nreserve_percent = 250\n",
            "output[0].file.reserve_percent",
        ),
        (
            "output spool",
            "[[output]]\nurl = \"syslog+tcp://h:514\"\n[output.spool]\nfull = \"sometimes\"\n",
            "output[0].spool.full",
        ),
        ("output tls", "[[output]]\nurl = \"file:/r\"\n[output.tls]\nca_file = \"/x\"\n", "output[0].tls"),
        (
            "output kafka",
            "[[output]]\nurl = \"kafka://b:1/t\"\n[output.kafka]\n\"bootstrap.servers\" = \"x\"\n",
            "output[0].kafka",
        ),
        ("metrics", "[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
        ("integrity", "[integrity]\nsigning_key = \"key.pem\"\n", "integrity.signing_key"),
    ];
    for (name, text, key) in cases {
        let path = dir.path().join(format!("{}.toml", name.replace(' ', "-")));
        std::fs::write(&path, text).expect("write");
        let (code, _, err) = sensor(&["config", "check"], &[&path]);
        assert_eq!(code, 1, "config check {name}: {err}");
        assert!(err.contains(key), "config check {name}: the error names `{key}`: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        // `run` refuses to start with the same message, before loading anything.
        let (code, _, err) = sensor(&["run", "--duration", "1", "--config"], &[&path]);
        assert_ne!(code, 0, "run {name}");
        assert!(err.contains(key), "run {name}: {err}");
    }
    // Binary garbage and a file that is not there.
    let garbage = dir.path().join("garbage.toml");
    std::fs::write(&garbage, [0xffu8, 0xfe, 0, 1, 2, b'[', b'\n']).expect("write");
    let (code, _, err) = sensor(&["config", "check"], &[&garbage]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("garbage.toml"), "{err}");
    let (code, _, err) = sensor(&["config", "check"], &[&dir.path().join("absent.toml")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn numeric_flags_are_validated() {
    for bad in ["inf", "NaN", "-1", "0", "1e30"] {
        let (code, _, err) = sensor(&["run", "--duration", bad], &[]);
        assert_eq!(code, 2, "--duration {bad}: {err}");
        assert!(err.contains("--duration"), "{err}");
    }
    let (code, _, err) = sensor(&["run", "--args-max", "99999999999"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = sensor(&["trace", "/nonexistent", "--pid", "-3"], &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_spool_with_a_corrupted_ack_and_damaged_segments_delivers_what_is_whole() {
    use std::{
        io::Read as _,
        net::TcpListener,
        sync::{Arc, Mutex},
    };
    let dir = sensor_tests::scratch_dir();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let msg = |i: u32| {
        let m = format!("<86>1 2026-11-23T12:00:00Z h sensor 1 exec - spool-test-{i}-end");
        format!("{} {m}", m.len()).into_bytes()
    };
    let segment = |range: std::ops::RangeInclusive<u32>| {
        let mut out = Vec::new();
        for i in range {
            sensor::sinks::spool::frame::encode(u64::from(i), &msg(i), &mut out);
        }
        out
    };
    // Segment 1: records 1 to 10, with 5 and 6 overwritten by garbage; segment 2: 11 to 20.
    let mut first = segment(1..=10);
    let frame_len = first.len() / 10;
    for b in &mut first[4 * frame_len + 3..6 * frame_len - 2] {
        *b = 0x5a;
    }
    std::fs::write(spool.join("00000000000000000001.seg"), first).expect("seg 1");
    std::fs::write(spool.join("00000000000000000002.seg"), segment(11..=20)).expect("seg 2");
    // A damaged ack that claims everything up to segment 99 was delivered.
    std::fs::write(spool.join("ack"), "00000000000000000099 0000000000000\u{0}\u{0}").expect("ack");

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 65536];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        }
    });
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[[output]]\nurl = \"syslog+tcp://127.0.0.1:{port}\"\n[output.spool]\ndir = \"{}\"\n",
            spool.display()
        ),
    )
    .expect("config");
    let (code, _, err) = sensor(&["run", "--duration", "4", "--config"], &[&config]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ignoring a damaged ack file"), "{err}");
    assert!(err.contains("damaged in the middle"), "{err}");
    let text = String::from_utf8_lossy(&got.lock().expect("lock")).into_owned();
    for i in (1..=20).filter(|i| !(5..=6).contains(i)) {
        assert!(text.contains(&format!("spool-test-{i}-end")), "record {i} delivered:\n{text}");
    }
    for i in 5..=6 {
        assert!(!text.contains(&format!("spool-test-{i}-end")), "record {i} was in the damaged bytes");
    }
    // The two records in the damaged bytes are accounted for in the stream.
    assert!(text.contains("\"reason\":\"spool_damaged\"") && text.contains("\"count\":\"2\""), "{text}");
}
