//! Exec events end to end: real program, real child processes, assertions on the record of the
//! child's own pid.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _, process::Command, time::Duration};

use sensor::pipeline::Options;
use sensor_proto::v1::audit_record::Event;
use sensor_tests::{TestSensor, is_exec_of, now_secs, proc_self, unique};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn exec_record_has_the_child_process_fields() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("exec-fields");
    let mut c = Command::new("/bin/echo")
        .arg(&tag)
        .arg("two words")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");

    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record for the child's pid");
    let p = rec.process.as_ref().expect("process");
    assert_eq!(p.pid, pid);
    assert_eq!(p.tid, pid);
    assert_eq!(p.ppid, std::process::id());
    assert_eq!(p.argv, vec!["/bin/echo".to_owned(), tag.clone(), "two words".to_owned()]);
    assert!(p.argv_raw.is_empty());
    assert!(!p.argv_truncated);
    assert!(p.exe.ends_with("/echo"), "exe {}", p.exe);
    assert_eq!(p.uid, nix::unistd::getuid().as_raw());
    assert_eq!(p.euid, nix::unistd::geteuid().as_raw());
    assert_eq!(p.gid, nix::unistd::getgid().as_raw());
    assert_eq!(p.egid, nix::unistd::getegid().as_raw());
    // Namespaces are inherited from this test process (`/proc/self/ns/*` are their inodes).
    let ns = p.namespaces.as_ref().expect("namespaces");
    let inode = |n: &str| {
        use std::os::unix::fs::MetadataExt as _;
        let ino = std::fs::metadata(format!("/proc/self/ns/{n}")).expect("namespace").ino();
        u32::try_from(ino).expect("namespace inode numbers fit 32 bits")
    };
    assert_eq!(
        [ns.mnt, ns.pid, ns.net, ns.uts, ns.ipc, ns.cgroup, ns.user],
        ["mnt", "pid", "net", "uts", "ipc", "cgroup", "user"].map(inode)
    );
    // Login uid and session are inherited from this test process.
    assert_eq!(p.auid.to_string(), proc_self("loginuid"));
    assert_eq!(p.session_id.to_string(), proc_self("sessionid"));
    assert_eq!(p.comm, "echo");
    assert!(!p.guid.is_empty());
    assert!(p.start_boot_ns > 0 && p.start_boot_ns <= rec.boot_ns);

    let Some(Event::Exec(e)) = &rec.event else { panic!("not an exec event") };
    assert_eq!(e.filename, "/bin/echo");
    assert_eq!(e.argc, 3);
    let expected_bytes = "/bin/echo".len() + tag.len() + "two words".len() + 3;
    assert_eq!(e.args_total_bytes as usize, expected_bytes);

    assert!(rec.seq >= 1);
    let t = rec.time.as_ref().expect("time");
    assert!((t.seconds - now_secs()).abs() < 30, "record time {t:?}");
    let host = rec.host.as_ref().expect("host");
    assert_eq!(
        host.boot_id,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id").trim()
    );
    assert!(!host.hostname.is_empty());
    assert!(!host.instance_id.is_empty());
    sensor.stop();
}

#[test]
fn hostile_arguments_are_carried_exactly() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("hostile");
    let newline = "line1\nline2".to_owned();
    let bad = OsStr::from_bytes(b"caf\xe9-\xff\\x").to_owned();
    let mut c = Command::new("/bin/true").arg(&tag).arg(&newline).arg(&bad).arg("").spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");

    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    assert_eq!(p.argv.len(), 5);
    assert_eq!(p.argv[1], tag);
    assert_eq!(p.argv[2], newline);
    // Invalid UTF-8 is escaped in the text and exact in argv_raw.
    assert_eq!(p.argv[3], "caf\\xe9-\\xff\\\\x");
    assert_eq!(p.argv[4], "");
    assert_eq!(p.argv_raw.len(), 5);
    assert_eq!(p.argv_raw[3], b"caf\xe9-\xff\\x".to_vec());
    assert_eq!(p.argv_raw[2], newline.as_bytes().to_vec());
    sensor.stop();
}

#[test]
fn huge_argv_is_truncated_and_flagged() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("huge");
    let args: Vec<String> = (0..10_000).map(|i| format!("a{i}")).collect();
    let mut c = Command::new("/bin/true").arg(&tag).args(&args).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");

    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    assert!(p.argv_truncated);
    assert_eq!(p.argv[1], tag);
    assert_eq!(p.argv[2], "a0");
    let Some(Event::Exec(e)) = &rec.event else { panic!("not exec") };
    let total: usize =
        "/bin/true".len() + 1 + tag.len() + 1 + args.iter().map(|a| a.len() + 1).sum::<usize>();
    assert_eq!(e.args_total_bytes as usize, total);
    assert!(p.argv.len() < 10_002);
    // Every captured argument but the possibly cut last one is exact.
    for (i, a) in p.argv[2..p.argv.len() - 1].iter().enumerate() {
        assert_eq!(a, &args[i]);
    }
    sensor.stop();
}

#[test]
fn configured_argv_limit_is_applied() {
    let mut sensor = TestSensor::start(Options { args_max: 64, ..Options::default() });
    let tag = unique("limit");
    let mut c = Command::new("/bin/true").arg(&tag).arg("x".repeat(200)).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    assert!(p.argv_truncated);
    let captured: usize = p.argv.iter().map(|a| a.len() + 1).sum();
    assert!(captured <= 65, "captured {captured} bytes");
    sensor.stop();
}
