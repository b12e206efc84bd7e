//! Process telemetry: paths, scripts, fileless and deleted executables, fork/exit, credentials
//! and login session fields — asserted on the records of processes this test starts.

use std::{
    os::unix::{
        fs::{OpenOptionsExt as _, PermissionsExt as _},
        io::{AsRawFd as _, FromRawFd as _},
        process::CommandExt as _,
    },
    process::{Command, Stdio},
    time::Duration,
};

use sensor_proto::v1::audit_record::Event;
use sensor_tests::{
    TestSensor,
    actor::{Act, act_if_asked, actor},
    is_exec_of, proc_self, unique,
};

const WAIT: Duration = Duration::from_secs(10);

/// Not a test of its own: the body of the children the tests below start with
/// [`sensor_tests::actor::actor`] (named by `ACTOR_TEST`). Run as a test, it returns at once.
#[test]
fn child_actor() {
    act_if_asked();
}

fn is_exit_of(r: &sensor_proto::AuditRecord, pid: u32) -> bool {
    matches!(r.event, Some(Event::Exit(_))) && r.process.as_ref().is_some_and(|p| p.pid == pid)
}

#[test]
fn exec_has_kernel_resolved_exe_and_cwd() {
    let mut sensor = TestSensor::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = unique("paths");
    // A relative program name, resolved against the child's cwd by the kernel.
    std::fs::copy("/bin/true", dir.path().join("rel-true")).expect("copy");
    let mut c = Command::new("./rel-true").arg(&tag).current_dir(dir.path()).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    let real_dir = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(p.exe, real_dir.join("rel-true").to_str().expect("utf8"));
    assert_eq!(p.cwd, real_dir.to_str().expect("utf8"));
    let Some(Event::Exec(e)) = &rec.event else { panic!("exec") };
    assert_eq!(e.filename, "./rel-true");
    assert_eq!(e.kernel_argc, 2);
    assert!(!p.exe_memfd && !p.exe_deleted);
    sensor.stop();
}

#[test]
fn script_shows_its_interpreter() {
    let mut sensor = TestSensor::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("job.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tag = unique("script");
    let mut c = Command::new(&script).arg(&tag).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let Some(Event::Exec(e)) = &rec.event else { panic!("exec") };
    assert_eq!(e.interpreter, "/bin/sh");
    assert_eq!(e.filename, script.to_str().expect("utf8"));
    let p = rec.process.as_ref().expect("process");
    // exe is the interpreter binary the kernel mapped (sh may be a link to dash or bash).
    let sh = std::fs::canonicalize("/bin/sh").expect("sh");
    assert_eq!(p.exe, sh.to_str().expect("utf8"));
    assert_eq!(p.argv.last(), Some(&tag));
    sensor.stop();
}

#[test]
fn exec_from_memfd_is_flagged_fileless() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("memfd");
    // A child creates a memfd, copies /bin/true into it and executes it by fd. Before that, a
    // memfd_create with flags the kernel refuses (EINVAL).
    // (Its test harness prints a line before the exec: kept out of this test's output.)
    let mut c = actor(Act::MemfdExec, &tag).stdout(Stdio::null()).spawn().expect("spawn");
    let pid = c.id();
    assert!(c.wait().expect("wait").success());
    let rec = sensor
        .wait_for(WAIT, |r| is_exec_of(r, pid) && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag)))
        .expect("exec of the memfd");
    let p = rec.process.as_ref().expect("process");
    assert!(p.exe_memfd, "exe {:?} not flagged as memfd", p.exe);
    assert!(p.exe.starts_with("memfd:payload"), "exe {}", p.exe);
    // The memfd_create call itself is recorded too.
    let m = sensor
        .wait_for(WAIT, |r| {
            matches!(&r.event, Some(Event::MemfdCreate(m)) if m.name == "payload")
                && r.process.as_ref().is_some_and(|p| p.pid == pid)
        })
        .expect("memfd_create record");
    let Some(Event::MemfdCreate(m)) = &m.event else { panic!("memfd") };
    assert!(m.result >= 0 && m.error.is_empty(), "{m:?}");
    let refused = sensor
        .wait_for(WAIT, |r| {
            matches!(&r.event, Some(Event::MemfdCreate(m)) if m.name == "refused")
                && r.process.as_ref().is_some_and(|p| p.pid == pid)
        })
        .expect("refused memfd_create record");
    let Some(Event::MemfdCreate(m)) = &refused.event else { panic!("memfd") };
    assert_eq!((m.result, m.error.as_str()), (-libc::EINVAL, "EINVAL"), "{m:?}");
    sensor.stop();
}

#[test]
fn io_uring_setup_is_recorded_with_its_mode() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("uring");
    // The child, between fork and exec, sets up a ring in kernel-polling mode
    // (IORING_SETUP_SQPOLL), then asks for one with zero entries, which the kernel refuses
    // (EINVAL). No interpreter needed: the QEMU guests have none.
    let mut cmd = Command::new("/bin/true");
    cmd.arg(&tag);
    // SAFETY: only raw system calls on stack memory run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut params = [0u32; 30]; // struct io_uring_params, 120 bytes
            params[2] = 2; // flags: IORING_SETUP_SQPOLL
            libc::syscall(libc::SYS_io_uring_setup, 8, params.as_mut_ptr());
            let mut refused = [0u32; 30];
            libc::syscall(libc::SYS_io_uring_setup, 0, refused.as_mut_ptr());
            Ok(())
        });
    }
    let mut c = cmd.spawn().expect("spawn");
    let pid = c.id();
    assert!(c.wait().expect("wait").success());
    let by_child = |r: &sensor_proto::AuditRecord| r.process.as_ref().is_some_and(|p| p.pid == pid);
    let ring = sensor
        .wait_for(WAIT, |r| matches!(&r.event, Some(Event::IoUringSetup(u)) if u.entries == 8) && by_child(r))
        .expect("io_uring_setup record");
    let Some(Event::IoUringSetup(u)) = &ring.event else { panic!("io_uring_setup") };
    assert!(u.sqpoll && u.flags & 2 != 0, "{u:?}");
    // SQPOLL without privileges needs 5.11; the test runs as root.
    assert!(u.result >= 0 && u.error.is_empty(), "{u:?}");
    let refused = sensor
        .wait_for(WAIT, |r| matches!(&r.event, Some(Event::IoUringSetup(u)) if u.entries == 0) && by_child(r))
        .expect("refused io_uring_setup record");
    let Some(Event::IoUringSetup(u)) = &refused.event else { panic!("io_uring_setup") };
    assert_eq!((u.result, u.error.as_str(), u.sqpoll), (-libc::EINVAL, "EINVAL", false), "{u:?}");
    // The same process then execs, and its record carries the tag.
    sensor
        .wait_for(WAIT, |r| is_exec_of(r, pid) && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag)))
        .expect("exec after the rings");
    sensor.stop();
}

#[test]
fn binary_deleted_after_start_is_flagged() {
    let mut sensor = TestSensor::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("doomed");
    std::fs::copy("/bin/sleep", &bin).expect("copy");
    let mut c = Command::new(&bin).arg("30").spawn().expect("spawn");
    let pid = c.id();
    let exec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    assert!(!exec.process.as_ref().expect("p").exe_deleted);
    std::fs::remove_file(&bin).expect("delete the running binary");
    c.kill().expect("kill");
    c.wait().expect("wait");
    let exit = sensor.wait_for(WAIT, |r| is_exit_of(r, pid)).expect("exit record");
    let p = exit.process.as_ref().expect("process");
    assert!(p.exe_deleted, "exit record of a process whose binary was deleted must flag it");
    let Some(Event::Exit(x)) = &exit.event else { panic!("exit") };
    assert_eq!(x.signal, 9);
    assert_eq!(p.guid, exec.process.as_ref().expect("p").guid);
    sensor.stop();
}

#[test]
fn fork_and_exit_carry_lifetimes_and_codes() {
    let mut sensor = TestSensor::start_default();
    // The test process is the sensor here, whose own forks are ignored: let a shell fork.
    let mut c = Command::new("/bin/sh").args(["-c", "/bin/sh -c 'exit 7'; exit 0"]).spawn().expect("spawn");
    let outer = c.id();
    assert!(c.wait().expect("wait").success());
    let fork = sensor
        .wait_for(WAIT, |r| matches!(&r.event, Some(Event::Fork(f)) if f.parent_pid == outer))
        .expect("fork record of the inner shell");
    let Some(Event::Fork(f)) = &fork.event else { panic!("fork") };
    assert!(!f.thread);
    let fp = fork.process.as_ref().expect("p");
    assert_eq!(fp.ppid, outer);
    let outer_exec = sensor.wait_for(WAIT, |r| is_exec_of(r, outer)).expect("outer exec");
    assert_eq!(f.parent_guid, outer_exec.process.as_ref().expect("p").guid);
    assert_eq!(fp.parent_guid, f.parent_guid);
    let inner = fp.pid;
    let exit = sensor.wait_for(WAIT, |r| is_exit_of(r, inner)).expect("exit record");
    let Some(Event::Exit(x)) = &exit.event else { panic!("exit") };
    assert_eq!((x.code, x.signal), (7, 0));
    assert!(x.lifetime_ns > 0);
    assert_eq!(exit.process.as_ref().expect("p").guid, fp.guid);
    assert!(exit.seq > fork.seq);
    sensor.stop();
}

#[test]
fn setuid_change_is_recorded_with_old_and_new_ids() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("setuid");
    // std's Command::uid/gid call setgid then setuid in the child before exec.
    let mut c = Command::new("/bin/true").arg(&tag).uid(65534).gid(65534).spawn().expect("spawn");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor
        .wait_for(WAIT, |r| {
            matches!(&r.event, Some(Event::Privilege(p)) if p.syscall == "setuid")
                && r.process.as_ref().is_some_and(|p| p.pid == pid)
        })
        .expect("setuid record");
    let Some(Event::Privilege(p)) = &rec.event else { panic!("privilege") };
    let (old, new) = (p.old.as_ref().expect("old"), p.new.as_ref().expect("new"));
    assert_eq!((old.uid, old.euid), (0, 0));
    assert_eq!((new.uid, new.euid, new.suid), (65534, 65534, 65534));
    assert_ne!(old.cap_effective, 0);
    assert_eq!(new.cap_effective, 0, "setuid from root to non-root drops capabilities");
    assert!(
        sensor
            .wait_for(WAIT, |r| {
                matches!(&r.event, Some(Event::Privilege(p)) if p.syscall == "setgid")
                    && r.process.as_ref().is_some_and(|p| p.pid == pid)
            })
            .is_some(),
        "setgid recorded too"
    );
    // The exec after the change runs with the new ids.
    let exec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec");
    assert_eq!(exec.process.as_ref().expect("p").uid, 65534);
    sensor.stop();
}

#[test]
fn login_uid_and_session_match_proc() {
    let mut sensor = TestSensor::start_default();
    // A child that stays alive so its /proc files can be compared with its record.
    let mut c = Command::new("/bin/sleep").arg("5").spawn().expect("spawn");
    let pid = c.id();
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).expect("proc").trim().to_owned();
    assert_eq!(p.auid.to_string(), read("loginuid"));
    assert_eq!(p.session_id.to_string(), read("sessionid"));
    c.kill().expect("kill");
    c.wait().expect("wait");

    // A new login session: a child sets its login uid (as pam_loginuid does), which starts a
    // new audit session, then execs.
    let tag = unique("login");
    let mut c = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo 4242 > /proc/self/loginuid && exec /bin/true {tag}"))
        .spawn()
        .expect("spawn");
    let pid = c.id();
    assert!(c.wait().expect("wait").success(), "writing loginuid needs root (CAP_AUDIT_CONTROL)");
    let rec = sensor
        .wait_for(WAIT, |r| is_exec_of(r, pid) && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag)))
        .expect("exec after login");
    let p = rec.process.as_ref().expect("process");
    assert_eq!(p.auid, 4242);
    assert_ne!(p.session_id, u32::MAX);
    assert_ne!(p.session_id.to_string(), proc_self("sessionid"), "a new session id");
    sensor.stop();
}

#[test]
fn ptrace_attach_and_bpf_load_by_others_are_recorded() {
    let mut sensor = TestSensor::start_default();
    let mut target = Command::new("/bin/sleep").arg("10").spawn().expect("spawn");
    let tpid = target.id();
    // A child attaches with ptrace(PTRACE_ATTACH) and loads a 2-instruction BPF program.
    let out = actor(Act::PtraceAndBpf, &tpid.to_string()).stderr(Stdio::inherit()).output().expect("actor");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let pid = {
        // The child's pid is not returned by output(); find it from the records.
        let rec = sensor
            .wait_for(WAIT, |r| matches!(&r.event, Some(Event::Ptrace(p)) if p.target_pid == tpid))
            .expect("ptrace record");
        let Some(Event::Ptrace(p)) = &rec.event else { panic!("ptrace") };
        assert_eq!(p.request, "attach");
        assert_eq!(p.result, 0, "the child printed {printed}");
        assert!(p.target_exe.ends_with("/sleep"), "target exe {}", p.target_exe);
        assert!(!p.target_guid.is_empty());
        rec.process.as_ref().expect("p").pid
    };
    let rec = sensor
        .wait_for(WAIT, |r| {
            matches!(&r.event, Some(Event::BpfLoad(b)) if b.prog_name == "sensor_probe")
                && r.process.as_ref().is_some_and(|p| p.pid == pid)
        })
        .expect("bpf load record");
    let Some(Event::BpfLoad(b)) = &rec.event else { panic!("bpf") };
    assert_eq!(b.prog_type, 1, "socket filter");
    assert!(b.result >= 0, "the child printed {printed}");
    target.kill().expect("kill");
    target.wait().expect("wait");
    sensor.stop();
}

#[test]
fn exec_from_writable_tmpfs_is_flagged() {
    let mut sensor = TestSensor::start_default();
    let dir = tempfile::Builder::new().prefix("sensor-test").tempdir_in("/dev/shm").expect("tmpfs dir");
    let bin = dir.path().join("dropper");
    std::fs::copy("/bin/true", &bin).expect("copy");
    let mut c = Command::new(&bin).spawn().expect("spawn from /dev/shm");
    let pid = c.id();
    c.wait().expect("wait");
    let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
    let p = rec.process.as_ref().expect("process");
    assert!(p.exe_writable_tmp, "exe {} on tmpfs must be flagged", p.exe);
    // And a binary on a disk's file system is not. (In a `vm-test` guest the root is the
    // initramfs, itself in memory: there only the first half applies.)
    let fs = nix::sys::statfs::statfs("/bin/true").expect("statfs /bin/true").filesystem_type();
    // tmpfs, or ramfs (0x858458f6, not named by nix).
    if fs == nix::sys::statfs::TMPFS_MAGIC || fs == nix::sys::statfs::FsType(0x8584_58f6) {
        eprintln!("/bin/true is on a file system in memory here: its exec is not checked");
    } else {
        let mut c = Command::new("/bin/true").spawn().expect("spawn");
        let pid = c.id();
        c.wait().expect("wait");
        let rec = sensor.wait_for(WAIT, |r| is_exec_of(r, pid)).expect("exec record");
        assert!(!rec.process.as_ref().expect("p").exe_writable_tmp);
    }
    sensor.stop();
}

#[test]
fn container_context_and_terminal_are_recorded() {
    let mut sensor = TestSensor::start_default();
    let tag = unique("ctx");
    // The command runs in a new session whose controlling terminal is a new pseudo-terminal
    // (what `script` or an SSH login gives it).
    let (_master, terminal) = pseudo_terminal();
    let mut c = Command::new("/bin/sleep");
    c.args(["2", &tag])
        .stdin(terminal.try_clone().expect("dup"))
        .stdout(terminal.try_clone().expect("dup"))
        .stderr(terminal);
    // SAFETY: setsid and ioctl are async-signal-safe; the closure allocates nothing.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut c = c.spawn().expect("spawn on a pseudo-terminal");
    let rec = sensor
        .wait_for(WAIT, |r| {
            matches!(r.event, Some(Event::Exec(_)))
                && r.process.as_ref().is_some_and(|p| p.argv.contains(&tag))
        })
        .expect("exec on a pty");
    c.kill().ok();
    c.wait().ok();
    let p = rec.process.as_ref().expect("process");
    assert!(p.tty.starts_with("pts"), "tty {:?}", p.tty);
    // Namespaces and cgroup match what /proc says for this (same-namespace) test process.
    let ns = |n: &str| {
        let link = std::fs::read_link(format!("/proc/self/ns/{n}")).expect("ns link");
        let s = link.to_string_lossy().into_owned();
        s.split('[').nth(1).and_then(|x| x.trim_end_matches(']').parse::<u32>().ok()).expect("inode")
    };
    let n = p.namespaces.as_ref().expect("namespaces");
    assert_eq!(
        (n.mnt, n.pid, n.net, n.uts, n.ipc, n.user),
        (ns("mnt"), ns("pid"), ns("net"), ns("uts"), ns("ipc"), ns("user"))
    );
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    if let Some(path) = own_cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        assert_eq!(p.cgroup, path);
    }
    assert_ne!(p.cgroup_id, 0);
    sensor.stop();
}

/// A new pseudo-terminal: its master and its terminal end (opened without becoming this
/// process's controlling terminal).
fn pseudo_terminal() -> (std::fs::File, std::fs::File) {
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor is new and owned here from now on.
    let master = unsafe { std::fs::File::from_raw_fd(master) };
    let mut name = [0 as libc::c_char; 64];
    // SAFETY: calls on the master's descriptor; ptsname_r writes at most `name.len()` bytes.
    let ok = unsafe {
        libc::grantpt(master.as_raw_fd()) == 0
            && libc::unlockpt(master.as_raw_fd()) == 0
            && libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) == 0
    };
    assert!(ok, "pseudo-terminal: {}", std::io::Error::last_os_error());
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated path.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_str().expect("pts path").to_owned();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .expect("open the terminal end");
    (master, terminal)
}
