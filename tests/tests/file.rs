//! File telemetry: each event kind with absolute, kernel-resolved paths, for syscalls made by
//! this test process itself (the in-process sensor is told not to ignore its own pid).

use std::{
    ffi::OsStr,
    fs::{self, File},
    io::Write as _,
    os::unix::{
        ffi::OsStrExt as _,
        fs::{PermissionsExt as _, symlink},
        process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use nix::{fcntl::OFlag, sys::stat::Mode};
use sensor::pipeline::Options;
use sensor_proto::{AuditRecord, v1::FileEvent, v1::audit_record::Event};
use sensor_tests::TestSensor;

/// Generous: a QEMU guest emulated in software, with a second guest on the same two CPUs, can
/// take seconds to deliver a record. A passing wait returns as soon as its record arrives.
const WAIT: Duration = Duration::from_secs(30);
/// A kernel that skips a program run reports it (see [`TestSensor::retry_on_skip`]): then, and
/// only then, a step is done again.
const TRIES: usize = 3;

fn start() -> TestSensor {
    TestSensor::start(Options { ignore_self: false, ..Options::default() })
}

fn file_event(r: &AuditRecord) -> Option<&FileEvent> {
    match &r.event {
        Some(Event::File(f)) => Some(f),
        _ => None,
    }
}

/// Waits for a file record of process `pid` matching `pred`.
fn wait_file(s: &mut TestSensor, pid: u32, pred: impl Fn(&FileEvent) -> bool) -> FileEvent {
    act_file(s, pid, || {}, pred)
}

/// Does `act` and waits for a file record of process `pid` matching `pred`; does it again only
/// when the kernel reported skipping a file program meanwhile.
fn act_file(s: &mut TestSensor, pid: u32, act: impl FnMut(), pred: impl Fn(&FileEvent) -> bool) -> FileEvent {
    let of = |r: &AuditRecord| r.process.as_ref().is_some_and(|p| p.pid == pid);
    let Some(rec) = s.act_until(WAIT, TRIES, "file", act, |r| of(r) && file_event(r).is_some_and(&pred))
    else {
        let seen: Vec<String> = s
            .seen
            .iter()
            .filter_map(|r| match &r.event {
                Some(Event::File(f)) if of(r) => Some(format!("seq {} {} {}", r.seq, f.op, f.path)),
                Some(Event::Loss(l)) => Some(format!("seq {} loss {l:?}", r.seq)),
                _ => None,
            })
            .collect();
        panic!("no such file record; this process's file records and every loss record: {seen:#?}");
    };
    file_event(&rec).cloned().expect("file event")
}

/// setxattr(2); Ok when the file system accepted it.
fn set_xattr(path: &Path, name: &str) -> Result<(), std::io::Error> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let c_name = std::ffi::CString::new(name).expect("name");
    // SAFETY: valid NUL-terminated strings and a 1-byte value buffer.
    let rc = unsafe { libc::setxattr(c_path.as_ptr(), c_name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn real(p: &Path) -> String {
    fs::canonicalize(p).expect("canonical").to_str().expect("utf8").to_owned()
}

#[test]
fn write_opens_with_relative_paths_are_absolute() {
    let mut s = start();
    let me = std::process::id();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = real(dir.path());
    let old_cwd = std::env::current_dir().expect("cwd");

    // cwd case: relative names resolved against the working directory.
    std::env::set_current_dir(dir.path()).expect("chdir");
    File::create("rel.txt").expect("create rel.txt");
    let missing = File::create("no-such-dir/x.txt");
    std::env::set_current_dir(&old_cwd).expect("chdir back");
    assert!(missing.is_err());
    let f = wait_file(&mut s, me, |f| f.op == "open" && f.path.ends_with("/rel.txt"));
    assert_eq!(f.path, format!("{base}/rel.txt"));
    assert!(f.result >= 0);
    assert!(f.flags.contains("O_CREAT") && f.flags.contains("O_WRONLY"), "{}", f.flags);
    assert_eq!(f.path_source, "kernel");
    // A failed write open: no file to walk, so dir (cwd, walked in the kernel) + name.
    let f = wait_file(&mut s, me, |f| f.op == "open" && f.path.ends_with("/no-such-dir/x.txt"));
    assert_eq!(f.path, format!("{base}/no-such-dir/x.txt"));
    assert_eq!((f.result, f.error.as_str()), (-2, "ENOENT"));
    assert_eq!(f.path_source, "dir+name");

    // dirfd case: openat/unlinkat relative to a directory fd.
    let dfd =
        nix::fcntl::open(dir.path(), OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).expect("open dir");
    let fd = nix::fcntl::openat(
        &dfd,
        "sub/../via-dirfd.txt",
        OFlag::O_CREAT | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o640),
    );
    assert!(fd.is_err(), "sub/ does not exist");
    let fd = nix::fcntl::openat(
        &dfd,
        "via-dirfd.txt",
        OFlag::O_CREAT | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o640),
    )
    .expect("openat");
    drop(fd);
    nix::unistd::unlinkat(&dfd, "via-dirfd.txt", nix::unistd::UnlinkatFlags::NoRemoveDir).expect("unlinkat");
    let f = wait_file(&mut s, me, |f| f.op == "open" && f.path.ends_with("/via-dirfd.txt") && f.result >= 0);
    assert_eq!(f.path, format!("{base}/via-dirfd.txt"));
    assert_eq!(f.mode_octal, "640");
    let f = wait_file(&mut s, me, |f| f.op == "open" && f.result < 0 && f.path.ends_with("/via-dirfd.txt"));
    assert_eq!(f.path_source, "dir+name");
    assert_eq!(f.path, format!("{base}/via-dirfd.txt"), "sub/.. normalised away");
    // Named by path: other tests of this binary unlink files from the same process.
    let f = wait_file(&mut s, me, |f| f.op == "unlink" && f.path.ends_with("/via-dirfd.txt"));
    assert_eq!(f.path, format!("{base}/via-dirfd.txt"));
    assert_eq!(f.syscall, "unlinkat");
    assert_eq!(f.result, 0);
    s.stop();
}

#[test]
fn every_file_event_kind_is_recorded() {
    let mut s = start();
    let me = std::process::id();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = real(dir.path());
    let p = |n: &str| dir.path().join(n);
    let want = |n: &str| format!("{base}/{n}");

    let mut f = File::create(p("doc.docx")).expect("create");
    f.write_all(b"patient record").expect("write");
    f.set_len(4).expect("ftruncate");
    drop(f);
    fs::rename(p("doc.docx"), p("doc.docx.locked")).expect("rename");
    fs::hard_link(p("doc.docx.locked"), p("hard")).expect("link");
    symlink("doc.docx.locked", p("soft")).expect("symlink");
    fs::set_permissions(p("hard"), fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(p("hard"), Some(65534), Some(65534)).expect("chown");
    nix::unistd::truncate(&p("hard"), 1).expect("truncate");
    nix::unistd::mkfifo(&p("fifo"), Mode::from_bits_truncate(0o644)).expect("mknod fifo");
    let xattr = set_xattr(&p("hard"), "security.sensor-test");
    let user_xattr = set_xattr(&p("hard"), "user.ignored");
    fs::create_dir(p("sub")).expect("mkdir");
    fs::remove_dir(p("sub")).expect("rmdir");
    fs::remove_file(p("soft")).expect("unlink");

    let e = wait_file(&mut s, me, |f| {
        f.op == "truncate" && f.syscall == "ftruncate" && f.path == want("doc.docx")
    });
    assert_eq!((e.path.as_str(), e.length), (want("doc.docx").as_str(), 4));
    let e = wait_file(&mut s, me, |f| f.op == "rename" && f.path == want("doc.docx"));
    assert_eq!(
        (e.path.as_str(), e.path2.as_str()),
        (want("doc.docx").as_str(), want("doc.docx.locked").as_str())
    );
    let e = wait_file(&mut s, me, |f| f.op == "link" && f.path2 == want("hard"));
    assert_eq!(
        (e.path.as_str(), e.path2.as_str()),
        (want("doc.docx.locked").as_str(), want("hard").as_str())
    );
    let e = wait_file(&mut s, me, |f| f.op == "symlink" && f.path == want("soft"));
    assert_eq!((e.path.as_str(), e.path2.as_str()), (want("soft").as_str(), "doc.docx.locked"));
    let e = wait_file(&mut s, me, |f| f.op == "chmod" && f.path == want("hard"));
    assert_eq!((e.path.as_str(), e.mode_octal.as_str(), e.result), (want("hard").as_str(), "600", 0));
    let e = wait_file(&mut s, me, |f| f.op == "chown" && f.path == want("hard"));
    assert_eq!((e.path.as_str(), e.uid, e.gid), (want("hard").as_str(), 65534, 65534));
    let e =
        wait_file(&mut s, me, |f| f.op == "truncate" && f.syscall == "truncate" && f.path == want("hard"));
    assert_eq!((e.path.as_str(), e.length), (want("hard").as_str(), 1));
    let e = wait_file(&mut s, me, |f| f.op == "mknod" && f.path == want("fifo"));
    assert_eq!(e.path, want("fifo"));
    let e = wait_file(&mut s, me, |f| f.op == "setxattr" && f.path == want("hard"));
    assert_eq!((e.path.as_str(), e.xattr.as_str()), (want("hard").as_str(), "security.sensor-test"));
    assert_eq!(e.result == 0, xattr.is_ok(), "result {} vs {xattr:?}", e.result);
    let e = wait_file(&mut s, me, |f| f.op == "rmdir" && f.path == want("sub"));
    assert_eq!(e.path, want("sub"));
    let e = wait_file(&mut s, me, |f| f.op == "unlink" && f.path == want("soft"));
    assert_eq!(e.path, want("soft"));
    let _ = user_xattr;
    assert!(
        !s.seen.iter().any(|r| file_event(r).is_some_and(|f| f.xattr == "user.ignored")),
        "only security.* attributes are reported"
    );
    s.stop();
}

#[test]
fn sensitive_reads_are_recorded_and_ordinary_reads_are_not() {
    let mut s = start();
    let me = std::process::id();
    let _ = fs::read("/etc/hostname").expect("read hostname");
    let _ = fs::read("/etc/shadow").expect("read shadow (root)");
    let marker = tempfile::NamedTempFile::new().expect("marker");
    let marker_path = real(marker.path());
    drop(File::create(marker.path()).expect("marker open"));
    let shadow = wait_file(&mut s, me, |f| f.op == "open" && f.path == "/etc/shadow");
    assert!(shadow.sensitive);
    assert!(shadow.result >= 0);
    assert_eq!(shadow.flags.split('|').next(), Some("O_RDONLY"));
    // Everything before the marker has been processed (one ring, in order).
    wait_file(&mut s, me, |f| f.path == marker_path);
    assert!(
        !s.seen.iter().any(|r| file_event(r).is_some_and(|f| f.path == "/etc/hostname")),
        "read-only opens of ordinary files are filtered in the kernel"
    );

    // A failing open of a sensitive file by an unprivileged process, with its errno.
    let mut c = Command::new("/bin/cat").arg("/etc/shadow").uid(65534).gid(65534).spawn().expect("spawn cat");
    let pid = c.id();
    assert!(!c.wait().expect("wait").success());
    let denied = wait_file(&mut s, pid, |f| f.op == "open" && f.path == "/etc/shadow");
    assert_eq!((denied.result, denied.error.as_str()), (-13, "EACCES"));
    assert!(denied.sensitive);
    s.stop();
}

#[test]
fn configured_sensitive_directory_and_exclusions() {
    let share = tempfile::tempdir().expect("share");
    let excluded = tempfile::tempdir().expect("excluded");
    fs::create_dir_all(share.path().join("ward3/2026")).expect("mkdir");
    fs::write(share.path().join("ward3/2026/patient.pdf"), b"%PDF").expect("write");
    let mut s = TestSensor::start(Options {
        ignore_self: false,
        sensitive_paths: vec![share.path().to_str().expect("utf8").to_owned()],
        exclude_paths: vec![excluded.path().to_owned()],
        ..Options::default()
    });
    let me = std::process::id();
    let read = || drop(fs::read(share.path().join("ward3/2026/patient.pdf")).expect("read"));
    let e = act_file(&mut s, me, read, |f| f.path.ends_with("/patient.pdf"));
    assert!(e.sensitive);
    assert_eq!(e.path, format!("{}/ward3/2026/patient.pdf", real(share.path())));
    fs::write(excluded.path().join("noise.log"), b"x").expect("write excluded");
    let marker = tempfile::NamedTempFile::new().expect("marker");
    let marker_path = real(marker.path());
    act_file(&mut s, me, || drop(File::create(marker.path()).expect("marker")), |f| f.path == marker_path);
    assert!(!s.seen.iter().any(|r| file_event(r).is_some_and(|f| f.path.ends_with("/noise.log"))));
    s.stop();
}

#[test]
fn hostile_file_name_is_carried_exactly() {
    let mut s = start();
    let me = std::process::id();
    let dir = tempfile::tempdir().expect("tempdir");
    // ~4000 bytes: nested 250-byte directories, then a name with a newline and invalid UTF-8.
    let mut path = PathBuf::from(real(dir.path()));
    while path.as_os_str().len() < 3600 {
        path.push("d".repeat(250));
    }
    fs::create_dir_all(&path).expect("mkdir -p");
    let mut name = b"evil\nname-\xff\xfe-".to_vec();
    name.resize(4000 - path.as_os_str().len() - 1, b'x');
    path.push(OsStr::from_bytes(&name));
    assert_eq!(path.as_os_str().len(), 4000);
    File::create(&path).expect("create hostile");
    let e = wait_file(&mut s, me, |f| f.op == "open" && f.path_raw.ends_with(&name));
    assert_eq!(e.path_raw, path.as_os_str().as_bytes());
    assert!(!e.path_truncated);
    assert!(e.path.contains("evil\nname-\\xff\\xfe-"), "escaped text form");
    s.stop();
}

#[test]
fn include_paths_limit_reports_to_them_and_sensitive_files() {
    let inside = tempfile::tempdir().expect("inside");
    let outside = tempfile::tempdir().expect("outside");
    let mut s = TestSensor::start(Options {
        ignore_self: false,
        include_paths: vec![inside.path().to_owned()],
        ..Options::default()
    });
    let me = std::process::id();
    fs::write(outside.path().join("elsewhere.txt"), b"x").expect("write outside");
    let _ = fs::read("/etc/shadow").expect("read shadow");
    fs::write(inside.path().join("watched.txt"), b"x").expect("write inside");
    let e = wait_file(&mut s, me, |f| f.path.ends_with("/watched.txt"));
    assert_eq!(e.path, format!("{}/watched.txt", real(inside.path())));
    assert!(s.seen.iter().any(|r| file_event(r).is_some_and(|f| f.path == "/etc/shadow" && f.sensitive)));
    assert!(!s.seen.iter().any(|r| file_event(r).is_some_and(|f| f.path.ends_with("/elsewhere.txt"))));
    s.stop();
}

/// A process that writes and exits at once: its file record is enriched after its exit record
/// (file events queue behind lineage events under load), yet still names its program, command
/// line and ancestors.
#[test]
fn short_lived_writers_keep_their_context_under_a_file_storm() {
    let s = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let storm_dir = dir.path().join("storm");
    fs::create_dir(&storm_dir).expect("mkdir");
    let storm = std::thread::spawn(move || {
        for i in 0..30_000 {
            fs::write(storm_dir.join(format!("s{}", i % 64)), b"x").expect("write");
        }
    });
    let mut pids = Vec::new();
    for i in 0..30 {
        let target = dir.path().join(format!("short-{i}"));
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo x > '{}'", target.display()))
            .spawn()
            .expect("spawn sh");
        pids.push(child.id());
        let mut child = child;
        child.wait().expect("wait");
    }
    storm.join().expect("storm");
    std::thread::sleep(Duration::from_millis(500));
    let records = s.stop();
    // /bin/sh is dash, bash or busybox depending on the system: compare with what it resolves to.
    let sh = real(Path::new("/bin/sh"));
    let mut checked = 0;
    for r in &records {
        let Some(p) = r.process.as_ref().filter(|p| pids.contains(&p.pid)) else { continue };
        let Some(f) = file_event(r).filter(|f| f.path.contains("/short-")) else { continue };
        assert_eq!(p.exe, sh, "exe of pid {} writing {}", p.pid, f.path);
        assert!(!p.argv.is_empty(), "argv of pid {}", p.pid);
        assert!(!r.ancestors.is_empty(), "ancestors of pid {}", p.pid);
        checked += 1;
    }
    // Under overload (e.g. an emulated guest) the file ring may shed events: then they are
    // accounted for by loss records, and every record that did arrive must still be complete.
    let file_lost = sensor_tests::lost(&records, "file", None);
    assert!(
        checked > 0 && checked as u64 + file_lost >= 30,
        "a file record for every short-lived writer, or a loss record for it: {checked} of 30, \
         {file_lost} file events lost"
    );
}
