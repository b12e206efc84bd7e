//! Tamper evidence end to end: the real sensor binary runs with its built-in rules, another
//! process acts against it (ptrace attach, a `bpf()` get-fd-by-id of one of its programs, an edit
//! of its configuration file, `kill -STOP`, `kill -TERM`), and each act must come out as a
//! `sensor.tamper.*` alert naming the acting process and its ancestry. The sensor's own lifecycle
//! records (start, heartbeat, stop) must be in the same stream.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use sensor_tests::spawn_sensor;
use serde_json::Value;

/// Runs `prog args…` to completion; returns its pid.
fn run(prog: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(prog).args(args).stdout(Stdio::null()).spawn().expect("spawn");
    let pid = child.id();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{prog} {args:?}: {status}");
    pid
}

/// ptrace-attaches to `pid`, waits, detaches (python3 with ctypes: no debugger needed).
const PTRACE: &str = "
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) != 0:
    sys.exit('PTRACE_ATTACH: errno %d' % ctypes.get_errno())
os.waitpid(pid, 0x40000000)  # __WALL: the tracee stops
time.sleep(0.2)
libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
";

/// Takes an fd of one of `pid`'s BPF programs by id (`BPF_PROG_GET_FD_BY_ID`), as a tool that
/// wants to detach or inspect the sensor would. With a second argument, the attribute block is
/// in a page this process has not touched (a file mapped, not read), which a read at the call's
/// start cannot see.
const PROG_GET_FD_BY_ID: &str = "
import ctypes, os, sys
pid = sys.argv[1]
ids = set()
for fd in os.listdir('/proc/%s/fdinfo' % pid):
    try:
        for line in open('/proc/%s/fdinfo/%s' % (pid, fd)):
            if line.startswith('prog_id:'):
                ids.add(int(line.split()[1]))
    except OSError:
        pass
if not ids:
    sys.exit('no BPF programs in the sensor')
libc = ctypes.CDLL(None, use_errno=True)
if len(sys.argv) > 2:
    import mmap, struct, tempfile
    f = tempfile.TemporaryFile()
    f.write(struct.pack('<IIII', min(ids), 0, 0, 0).ljust(4096, b'\\0'))
    f.flush()
    m = mmap.mmap(f.fileno(), 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    attr = ctypes.c_char.from_buffer(m)
else:
    attr = (ctypes.c_uint32 * 4)(min(ids), 0, 0, 0)
fd = libc.syscall(321, 13, ctypes.byref(attr), 16)  # bpf(BPF_PROG_GET_FD_BY_ID)
if fd < 0:
    sys.exit('BPF_PROG_GET_FD_BY_ID: errno %d' % ctypes.get_errno())
print(min(ids))
";

fn alerts<'a>(records: &'a [Value], rule: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["alert"]["rule_id"] == rule).collect()
}

/// The alert of `rule` raised by the process `pid` (a child of this test), checked for its
/// ancestry: the test process is among the ancestors.
fn alert_by<'a>(records: &'a [Value], rule: &str, pid: u32) -> &'a Value {
    let found = alerts(records, rule);
    let a = found.iter().find(|a| a["process"]["pid"] == pid).unwrap_or_else(|| {
        panic!("no {rule} alert by pid {pid}; {rule} alerts: {found:#?}");
    });
    let me = std::process::id();
    // The parent as the kernel saw it, and the ancestry as far as the process table knows it
    // (under heavy load a short-lived child's lineage may still be incomplete: ppid is not).
    let ancestors = a["ancestors"].as_array().map_or(0, Vec::len);
    assert!(
        a["process"]["ppid"] == me || a["ancestors"][0]["pid"] == me,
        "{rule}: the test process is not the actor's parent ({ancestors} ancestors): {a:#}"
    );
    assert!(["high", "critical"].contains(&a["alert"]["level"].as_str().unwrap_or("")), "{a:#}");
    a
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("jsonl written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn acts_against_the_sensor_raise_tamper_alerts_naming_the_actor() {
    let dir = sensor_tests::scratch_dir();
    let jsonl = dir.path().join("out.jsonl");
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, "# test configuration\n").expect("write config");
    let mut sensor = spawn_sensor([
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--heartbeat".as_ref(),
        "1".as_ref(),
        "--output".as_ref(),
        format!("jsonl:{}", jsonl.display()).as_ref(),
    ]);
    let sid = sensor.id();
    let spid = sid.to_string();
    std::thread::sleep(Duration::from_millis(1500));

    let ptrace = run("/usr/bin/python3", &["-c", PTRACE, &spid]);
    let bpf = run("/usr/bin/python3", &["-c", PROG_GET_FD_BY_ID, &spid]);
    let bpf_untouched = run("/usr/bin/python3", &["-c", PROG_GET_FD_BY_ID, &spid, "untouched"]);
    let edit = run("/bin/sh", &["-c", &format!("echo '# edited' >> {}", config.display())]);
    let stop = run("/bin/kill", &["-STOP", &spid]);
    std::thread::sleep(Duration::from_millis(300));
    run("/bin/kill", &["-CONT", &spid]);
    std::thread::sleep(Duration::from_millis(500));
    let term = run("/bin/kill", &["-TERM", &spid]);
    let status = sensor.wait().expect("wait sensor");
    assert!(status.success(), "sensor exit status {status}");

    let records = read_jsonl(&jsonl);
    alert_by(&records, "sensor.tamper.process_access", ptrace);
    let b = alert_by(&records, "sensor.tamper.bpf_access", bpf);
    assert_eq!(b["alert"]["techniques"][0], "T1562.001", "{b:#}");
    alert_by(&records, "sensor.tamper.bpf_access", bpf_untouched);
    let e = alert_by(&records, "sensor.tamper.file", edit);
    assert!(e["alert"]["category"] == "sensor_file", "{e:#}");
    let s = alert_by(&records, "sensor.tamper.kill_stop", stop);
    assert_eq!(s["alert"]["level"], "critical");
    alert_by(&records, "sensor.tamper.signal", term);
    // The signal records themselves name the signal and the target.
    assert!(
        records.iter().any(|r| r["signal"]["name"] == "SIGSTOP"
            && r["process"]["pid"] == stop
            && r["signal"]["target_sensor"] == true
            && r["signal"]["target_pid"] == sid),
        "no SIGSTOP signal record"
    );

    // Lifecycle: a start record first, heartbeats, and a stop record saying why.
    let start = records.iter().find(|r| r["sensor_start"].is_object()).expect("sensor_start record");
    assert_eq!(start["process"]["pid"], sid);
    assert!(start["sensor_start"]["binary_sha256"].as_str().is_some_and(|h| h.len() == 64), "{start:#}");
    assert!(start["sensor_start"]["collectors"].as_array().is_some_and(|c| c.len() >= 8), "{start:#}");
    let syscalls = start["sensor_start"]["syscalls"].as_str().unwrap_or_default();
    assert!(["raw syscall dispatcher", "syscall tracepoints"].contains(&syscalls), "{start:#}");
    assert!(records.iter().any(|r| r["heartbeat"].is_object()), "no heartbeat record");
    let stop_rec = records.iter().find(|r| r["sensor_stop"].is_object()).expect("sensor_stop record");
    assert_eq!(stop_rec["sensor_stop"]["reason"], "signal");
    assert_eq!(stop_rec["sensor_stop"]["signal"], "SIGTERM");
}

#[test]
fn ordinary_work_and_the_sensors_own_writes_raise_no_tamper_alert() {
    let dir = sensor_tests::scratch_dir();
    let jsonl = dir.path().join("out.jsonl");
    let records_dir = dir.path().join("records");
    let mut sensor = spawn_sensor([
        "run".to_owned(),
        "--output".to_owned(),
        format!("jsonl:{}", jsonl.display()),
        "--output".to_owned(),
        format!("file:{}", records_dir.display()),
    ]);
    // Reads of the sensor's records and a write elsewhere in the same scratch directory.
    run(
        "/bin/sh",
        &[
            "-c",
            &format!("cat {}/* > /dev/null; echo x > {}/other", records_dir.display(), dir.path().display()),
        ],
    );
    // Another sensor starting and stopping meanwhile (a restart that overlaps the old run): it
    // lists its own links, which must not touch this one's (a `bpf()` command on them is a
    // tamper alert here; that happened while it listed every link of the machine by id).
    let mut other = spawn_sensor([
        "run".to_owned(),
        "--output".to_owned(),
        format!("jsonl:{}", dir.path().join("other.jsonl").display()),
    ]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(other.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    assert!(other.wait().expect("wait").success());
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sensor.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    assert!(sensor.wait().expect("wait").success());
    let records = read_jsonl(&jsonl);
    let tamper: Vec<&Value> = records
        .iter()
        .filter(|r| r["alert"]["rule_id"].as_str().is_some_and(|id| id.starts_with("sensor.tamper.")))
        .collect();
    assert!(tamper.is_empty(), "tamper alerts on ordinary work: {tamper:#?}");
    // The sensor wrote its own records all along: none of those writes is a file record.
    assert!(
        !records.iter().any(|r| r["file"]["protected"].is_string() && r["process"]["pid"] == sensor.id()),
        "the sensor's own writes were reported"
    );
}
