//! Lineage: ancestry on every record, GUIDs across pid reuse, the `/proc` seed for processes
//! older than the sensor, login session records, executable hashes.

use std::{os::unix::fs::PermissionsExt as _, process::Command, time::Duration};

use sensor_proto::v1::audit_record::Event;
use sensor_tests::{TestSensor, is_exec_of, unique};
use sha2::Digest as _;

const WAIT: Duration = Duration::from_secs(10);

fn is_exit_of(r: &sensor_proto::AuditRecord, pid: u32) -> bool {
    matches!(r.event, Some(Event::Exit(_))) && r.process.as_ref().is_some_and(|p| p.pid == pid)
}

/// Runs a script that runs itself `depth` levels deep, each level in a child shell (not the last
/// command, so the shell forks), and at the bottom execs `/bin/true ARGS`; `args[0]` must be
/// unique. Returns the top's pid and the exec record of `/bin/true`.
fn run_chain(sensor: &mut TestSensor, depth: u32, args: &[&str]) -> (u32, sensor_proto::AuditRecord) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("chain.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nd=$1; shift\nif [ \"$d\" -gt 0 ]; then /bin/sh \"$0\" $((d-1)) \"$@\"; exit $?; fi\nexec /bin/true \"$@\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut c = Command::new(&script).arg(depth.to_string()).args(args).spawn().expect("spawn");
    let top = c.id();
    assert!(c.wait().expect("wait").success());
    let tag = args[0].to_owned();
    let leaf = sensor
        .wait_for(WAIT, |r| {
            matches!(r.event, Some(Event::Exec(_)))
                && r.process.as_ref().is_some_and(|p| p.exe == "/usr/bin/true" && p.argv.contains(&tag))
        })
        .expect("exec of the leaf");
    (top, leaf)
}

#[test]
fn five_deep_chain_has_its_ancestry_on_the_leaf() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("chain");
    let (top, leaf) = run_chain(&mut sensor, 5, &[&tag]);
    let a = &leaf.ancestors;
    assert!(a.len() >= 6, "ancestors: {:?}", a.iter().map(|x| (x.pid, &x.argv)).collect::<Vec<_>>());
    // Nearest first: the shells at depth 1..5, then the test process that started the chain.
    for (i, depth) in (1..=5).enumerate() {
        assert_eq!(
            a[i].argv.get(2).map(String::as_str),
            Some(depth.to_string().as_str()),
            "ancestor {i}: {:?}",
            a[i]
        );
        assert!(a[i].argv.contains(&tag));
        assert!(!a[i].guid.is_empty());
    }
    assert_eq!(a[4].pid, top);
    assert_eq!(a[5].pid, std::process::id());
    let leaf_p = leaf.process.as_ref().expect("p");
    assert_eq!(leaf_p.ppid, a[0].pid);
    assert_eq!(leaf_p.parent_guid, a[0].guid);
    sensor.stop();
}

/// Every record repeats its ancestors: above the parent their command lines are cut to
/// `limits.ancestor_argv_bytes` (256 by default) and flagged; the parent's stays whole, and the
/// whole one is in the ancestor's own exec record.
#[test]
fn command_lines_above_the_parent_are_cut_and_flagged() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("longargv");
    let long = "L".repeat(600);
    let (top, leaf) = run_chain(&mut sensor, 2, &[&tag, &long]);
    let a = &leaf.ancestors;
    let shown = || format!("{:?}", a.iter().map(|x| (x.pid, x.argv_truncated, &x.argv)).collect::<Vec<_>>());
    // The leaf (the shell at depth 0, exec'd into /bin/true), its parent at depth 1, the top.
    assert!(a.len() >= 2, "{}", shown());
    assert!(a[0].argv.contains(&long) && !a[0].argv_truncated, "the parent is whole: {}", shown());
    let bytes = |x: &sensor_proto::v1::Ancestor| x.argv.iter().map(String::len).sum::<usize>();
    assert_eq!(a[1].pid, top);
    assert!(a[1].argv_truncated && bytes(&a[1]) == 256 && !a[1].argv.contains(&long), "cut: {}", shown());
    assert!(a[1].argv.contains(&tag), "the first arguments are kept: {}", shown());
    assert!(a[1..].iter().all(|x| bytes(x) <= 256), "{}", shown());
    let own = sensor.wait_for(WAIT, |r| is_exec_of(r, top)).expect("the top's own exec record");
    let p = own.process.as_ref().expect("p");
    assert!(p.argv.contains(&long) && !p.argv_truncated, "{:?}", p.argv);
    sensor.stop();
}

#[test]
fn pid_reuse_gives_a_new_guid() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("reuse");
    let mut first = Command::new("/bin/true").arg(&tag).arg("first").spawn().expect("spawn");
    let pid = first.id();
    first.wait().expect("wait");
    // GUIDs resolve start times to clock ticks (10 ms, as /proc does), so a pid is reused here
    // after at least one tick; natural reuse needs the whole pid space to wrap first.
    std::thread::sleep(Duration::from_millis(20));
    // Ask the kernel to hand out the same pid again (retry if another process takes it).
    let mut second_pid = 0;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).expect("ns_last_pid (root)");
        let mut c = Command::new("/bin/true").arg(&tag).arg("second").spawn().expect("spawn");
        second_pid = c.id();
        c.wait().expect("wait");
        if second_pid == pid {
            break;
        }
    }
    assert_eq!(second_pid, pid, "could not get pid {pid} reused");
    let has = |r: &sensor_proto::AuditRecord, which: &str| {
        is_exec_of(r, pid)
            && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag) && p.argv.iter().any(|a| a == which))
    };
    let a = sensor.wait_for(WAIT, |r| has(r, "first")).expect("first exec");
    let b = sensor.wait_for(WAIT, |r| has(r, "second")).expect("second exec");
    let (pa, pb) = (a.process.as_ref().expect("p"), b.process.as_ref().expect("p"));
    assert_eq!(pa.pid, pb.pid);
    assert_ne!(pa.guid, pb.guid, "same pid, different processes, different GUIDs");
    assert_ne!(pa.start_boot_ns, pb.start_boot_ns);
    sensor.stop();
}

#[test]
fn process_older_than_the_sensor_has_lineage_from_the_proc_seed() {
    let mut old = Command::new("/bin/sleep").arg("30").spawn().expect("spawn");
    let pid = old.id();
    std::thread::sleep(Duration::from_millis(200));
    let mut sensor = TestSensor::start_default();
    old.kill().expect("kill");
    old.wait().expect("wait");
    let exit = sensor.wait_for(WAIT, |r| is_exit_of(r, pid)).expect("exit record");
    let p = exit.process.as_ref().expect("p");
    assert_eq!(p.exe, "/usr/bin/sleep");
    assert_eq!(p.argv, vec!["/bin/sleep".to_owned(), "30".to_owned()]);
    assert_eq!(exit.ancestors.first().map(|a| a.pid), Some(std::process::id()));
    assert!(!exit.ancestors[0].exe.is_empty());
    sensor.stop();
}

#[test]
fn new_login_session_gets_a_session_record() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("session");
    let mut c = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo 4243 > /proc/self/loginuid && exec /bin/true {tag}"))
        .spawn()
        .expect("spawn");
    let pid = c.id();
    assert!(c.wait().expect("wait").success());
    let exec = sensor
        .wait_for(WAIT, |r| is_exec_of(r, pid) && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag)))
        .expect("exec in the new session");
    let sid = exec.process.as_ref().expect("p").session_id;
    let rec = sensor
        .wait_for(WAIT, |r| matches!(&r.event, Some(Event::Session(s)) if s.session_id == sid))
        .expect("session record");
    let Some(Event::Session(s)) = &rec.event else { panic!("session") };
    assert_eq!(s.auid, 4243);
    assert!(!s.existing);
    assert_eq!(s.leader_guid, exec.process.as_ref().expect("p").guid);
    assert!(rec.seq < exec.seq, "the session record comes before the first record in it");
    sensor.stop();
}

#[test]
fn executable_hash_is_carried_once_known() {
    let mut sensor = TestSensor::start_default();
    let mut c = Command::new("/bin/sleep").arg("30").spawn().expect("spawn");
    let pid = c.id();
    sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec");
    // Hashing happens off the hot path; give the worker a moment before the next event.
    std::thread::sleep(Duration::from_millis(800));
    c.kill().expect("kill");
    c.wait().expect("wait");
    let exit = sensor.wait_for(WAIT, |r| is_exit_of(r, pid)).expect("exit");
    let want = hex::encode(sha2::Sha256::digest(std::fs::read("/usr/bin/sleep").expect("read sleep")));
    assert_eq!(exit.process.as_ref().expect("p").exe_sha256, want);
    assert_eq!(exit.process.as_ref().expect("p").user, "root");
    sensor.stop();
}

/// Spawns `exe arg`, retrying while another test's fork holds the fresh copy open for writing.
fn spawn_copy(exe: &std::path::Path, arg: &str) -> std::process::Child {
    for _ in 0..100 {
        match Command::new(exe).arg(arg).spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("spawn {}: {e}", exe.display()),
        }
    }
    panic!("{} stayed busy", exe.display());
}

/// Short-lived processes are gone before the agent could look at `/proc/PID/exe`: the exec
/// event's inode identity lets the agent hash the file at the executable's path while it is
/// still that file, and find the digest again for every later run.
#[test]
fn short_lived_runs_of_an_executable_carry_its_hash() {
    let mut sensor = TestSensor::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join(unique("sleep"));
    std::fs::copy("/usr/bin/sleep", &copy).expect("copy sleep");
    let want = hex::encode(sha2::Sha256::digest(std::fs::read(&copy).expect("read copy")));
    let run = || {
        let mut c = spawn_copy(&copy, "0");
        assert!(c.wait().expect("wait").success());
        c.id()
    };
    let first = run();
    sensor.wait_for(WAIT, |r| is_exec_of(r, first)).expect("exec of the first run");
    std::thread::sleep(Duration::from_millis(800)); // hashed off the hot path
    let pids: Vec<u32> = (0..5).map(|_| run()).collect();
    for pid in pids {
        let exec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec of a later run");
        assert_eq!(exec.process.as_ref().expect("p").exe_sha256, want, "pid {pid}");
    }
    sensor.stop();
}

#[test]
fn guid_is_the_same_across_a_sensor_restart() {
    // Run 1 sees the process start (kernel exec event).
    let mut first = TestSensor::start_default();
    let mut c = Command::new("/bin/sleep").arg("30").spawn().expect("spawn");
    let pid = c.id();
    let exec = first.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec in run 1");
    first.stop();
    // Run 2 knows it from its /proc seed, then sees it end (kernel exit event).
    let mut second = TestSensor::start_default();
    c.kill().expect("kill");
    c.wait().expect("wait");
    let exit = second.wait_for(WAIT, |r| is_exit_of(r, pid)).expect("exit in run 2");
    second.stop();
    let (a, b) = (exec.process.as_ref().expect("p"), exit.process.as_ref().expect("p"));
    assert_eq!(a.guid, b.guid, "one process, one GUID, across sensor runs");
    assert_ne!(exec.host.as_ref().expect("h").instance_id, exit.host.as_ref().expect("h").instance_id);
    assert_eq!(b.argv, vec!["/bin/sleep".to_owned(), "30".to_owned()], "argv from run 2's seed");
}
