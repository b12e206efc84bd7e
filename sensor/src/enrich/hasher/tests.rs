use std::{
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use super::*;

fn sha_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

/// Polls until the hasher has the digest of `pid`'s executable.
fn wait_digest(h: &ExeHasher, pid: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(d) = h.lookup_or_request(pid) {
            return d;
        }
        assert!(Instant::now() < deadline, "no digest in time: {:?}", h.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `exe 30`, retrying while another test's fork holds the fresh copy open for writing.
fn spawn_sleep(exe: &Path) -> Child {
    for _ in 0..100 {
        match Command::new(exe).arg("30").spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn {}: {e}", exe.display()),
        }
    }
    panic!("{} stayed busy", exe.display());
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn own_exe_is_hashed_off_thread_then_cached() {
    let h = ExeHasher::start(DEFAULT_MAX_FILE_BYTES);
    let me = std::process::id();
    let exe = std::env::current_exe().expect("own exe");
    let digest = wait_digest(&h, me);
    assert_eq!(digest, sha_of(&exe));
    assert_eq!(digest.len(), 64);
    assert_eq!(h.lookup_or_request(me).as_deref(), Some(digest.as_str()));
    let s = h.stats();
    assert_eq!((s.hashed, s.dropped, s.errors), (1, 0, 0));
    let key = FileKey::of(&std::fs::metadata(&exe).expect("stat"));
    assert_eq!(h.lookup_key(&key), Some(digest));
    assert_eq!(h.lookup_key(&FileKey { ino: key.ino ^ 1, ..key }), None);
}

#[test]
fn deleted_binary_is_still_hashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("sleep-copy");
    std::fs::copy("/bin/sleep", &copy).expect("copy sleep");
    let expected = sha_of(&copy);
    let child = Reaped(spawn_sleep(&copy));
    std::fs::remove_file(&copy).expect("unlink");
    let pid = child.0.id();
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    assert!(link.to_string_lossy().ends_with(" (deleted)"), "{link:?}");
    let h = ExeHasher::start(DEFAULT_MAX_FILE_BYTES);
    assert_eq!(wait_digest(&h, pid), expected);
}

#[test]
fn too_big_files_are_skipped_once() {
    let h = ExeHasher::start(1000);
    let me = std::process::id();
    assert_eq!(h.lookup_or_request(me), None);
    assert_eq!(h.lookup_or_request(me), None);
    assert_eq!(h.stats(), HasherStats { skipped: 1, ..HasherStats::default() });
}

#[test]
fn full_queue_drops_without_blocking_and_pending_is_not_requeued() {
    let (h, rx) = ExeHasher::unstarted(DEFAULT_MAX_FILE_BYTES, 1, 8);
    let me = std::process::id();
    assert_eq!(h.lookup_or_request(me), None); // queued
    assert_eq!(h.lookup_or_request(me), None); // pending: not queued again
    assert_eq!(h.stats().dropped, 0);
    let other = Reaped(spawn_sleep(Path::new("/bin/sleep")));
    assert_eq!(h.lookup_or_request(other.0.id()), None); // queue full
    assert_eq!(h.stats().dropped, 1);
    // the worker loop hashes what was queued and ends when the sender is gone
    let mut h = h;
    h.tx = None;
    work(&rx, &h.shared, DEFAULT_MAX_FILE_BYTES);
    let expected = sha_of(&std::env::current_exe().expect("exe"));
    assert_eq!(h.lookup_or_request(me), Some(expected));
    assert_eq!(h.stats().hashed, 1);
    assert!(h.shared.cache().pending.is_empty());
    // a file that turns out bigger than the limit in the worker
    let file = std::fs::File::open("/bin/sleep").expect("open");
    let key = FileKey::of(&file.metadata().expect("stat"));
    let job = Job { key, alias: None, file };
    assert_eq!(hash_file(&job, 10, &AtomicBool::new(false)).expect("read"), None);
}

#[test]
fn cache_evicts_least_recently_used() {
    let mut c = Cache { map: HashMap::new(), pending: HashSet::new(), tick: 0, cap: 2 };
    let k = |ino| FileKey { dev: 1, ino, mtime_ns: 0, size: 0 };
    c.put(k(1), Outcome::TooBig);
    c.put(k(2), Outcome::TooBig);
    assert!(c.get(&k(1)).is_some());
    c.put(k(3), Outcome::Digest("d".into()));
    assert!(c.get(&k(2)).is_none(), "least recently used is gone");
    assert!(c.get(&k(1)).is_some() && c.get(&k(3)).is_some());
    assert_eq!(c.map.len(), 2);
}

/// A pid no process has (above the kernel's `PID_MAX_LIMIT`).
const NO_PID: u32 = 1 << 23;

#[test]
fn the_exec_events_identity_answers_without_the_process() {
    let h = ExeHasher::start(DEFAULT_MAX_FILE_BYTES);
    let me = std::process::id();
    let exe = std::env::current_exe().expect("own exe");
    let key = FileKey::of(&std::fs::metadata(&exe).expect("stat"));
    let known = KnownExe { key, path: None };
    // Unknown identity, process gone, no path: nothing to look at.
    assert_eq!(h.request(NO_PID, Some(known)), None);
    let digest = wait_digest(&h, me);
    // Known identity: the cache answers though /proc/NO_PID does not exist.
    assert_eq!(h.request(NO_PID, Some(known)), Some((key, Some(digest))));
}

#[test]
fn a_gone_process_is_hashed_by_path_while_the_path_is_that_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("sleep-copy");
    std::fs::copy("/bin/sleep", &copy).expect("copy sleep");
    let key = FileKey::of(&std::fs::metadata(&copy).expect("stat"));
    let (h, rx) = ExeHasher::unstarted(DEFAULT_MAX_FILE_BYTES, 4, 8);
    // Another file at the path since the exec (a FIFO here): not opened for reading, no digest.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    assert_eq!(h.request(NO_PID, Some(KnownExe { key, path: Some(&fifo) })), None);
    let other = FileKey { mtime_ns: key.mtime_ns + 1, ..key };
    assert_eq!(h.request(NO_PID, Some(KnownExe { key: other, path: Some(&copy) })), None);
    // The file the exec ran: hashed though the process is gone.
    assert_eq!(h.request(NO_PID, Some(KnownExe { key, path: Some(&copy) })), Some((key, None)));
    let mut h = h;
    h.tx = None;
    work(&rx, &h.shared, DEFAULT_MAX_FILE_BYTES);
    assert_eq!(h.lookup_key(&key), Some(sha_of(&copy)));
    assert_eq!(h.stats().errors, 0);
}

#[test]
fn an_identity_a_stacked_filesystem_renumbers_is_an_alias() {
    let (h, rx) = ExeHasher::unstarted(DEFAULT_MAX_FILE_BYTES, 4, 8);
    let me = std::process::id();
    let exe = std::env::current_exe().expect("own exe");
    let real = FileKey::of(&std::fs::metadata(&exe).expect("stat"));
    // Same content stamp, other device and inode numbers (overlayfs): hashed under both.
    let alias = FileKey { dev: real.dev ^ 0x55, ino: real.ino ^ 1, ..real };
    assert_eq!(h.request(me, Some(KnownExe { key: alias, path: None })), Some((real, None)));
    // Another size: the process runs something else now; no digest, nothing queued.
    let other = FileKey { size: real.size + 1, ..real };
    assert_eq!(h.request(me, Some(KnownExe { key: other, path: None })), Some((other, None)));
    let mut h = h;
    h.tx = None;
    work(&rx, &h.shared, DEFAULT_MAX_FILE_BYTES);
    assert_eq!(h.stats().hashed, 1);
    let expected = sha_of(&exe);
    assert_eq!(h.lookup_key(&alias), Some(expected.clone()));
    assert_eq!(h.lookup_key(&real), Some(expected));
    assert_eq!(h.lookup_key(&other), None);
}
