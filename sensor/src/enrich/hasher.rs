//! SHA-256 of executables, computed off the hot path.
//!
//! [`ExeHasher::lookup_or_request`] never blocks on hashing: it answers from a cache keyed by
//! the file's identity ([`FileKey`], which the exec event carries) or opens `/proc/PID/exe` at once (so the file stays
//! readable even if the process exits or the file is unlinked) and hands it to a background
//! thread. When that thread's queue is full the request is dropped and counted.

use std::{
    collections::{HashMap, HashSet},
    fs::{File, Metadata, OpenOptions},
    io::{ErrorKind, Read as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::JoinHandle,
};

use sha2::{Digest as _, Sha256};

/// Files larger than this are not hashed by default (256 MiB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;
const QUEUE_LEN: usize = 1024;
const CACHE_LEN: usize = 4096;
const CHUNK: usize = 64 << 10;

/// Identity of a file's content: the same key means the same bytes (unless rewritten within
/// one mtime tick with the same size, which we accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub size: u64,
}

impl FileKey {
    /// Key of a file from its metadata.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            size: meta.size(),
        }
    }
}

/// Counters of the hasher.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    /// Files hashed.
    pub hashed: u64,
    /// Files not hashed because they are too big.
    pub skipped: u64,
    /// Requests dropped because the queue was full.
    pub dropped: u64,
    /// Files that could not be opened or read, or changed while being hashed.
    pub errors: u64,
}

#[derive(Debug, Clone)]
enum Outcome {
    Digest(String),
    TooBig,
}

/// A bounded map with least-recently-used eviction (by a scan, only when full).
#[derive(Debug)]
struct Cache {
    map: HashMap<FileKey, (Outcome, u64)>,
    /// Keys queued or being hashed (not requested twice).
    pending: HashSet<FileKey>,
    tick: u64,
    cap: usize,
}

impl Cache {
    fn get(&mut self, key: &FileKey) -> Option<Outcome> {
        self.tick += 1;
        let (outcome, used) = self.map.get_mut(key)?;
        *used = self.tick;
        Some(outcome.clone())
    }

    fn put(&mut self, key: FileKey, outcome: Outcome) {
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            let oldest = self.map.iter().min_by_key(|(_, (_, used))| *used);
            if let Some(old) = oldest.map(|(k, _)| *k) {
                self.map.remove(&old);
            }
        }
        self.tick += 1;
        self.map.insert(key, (outcome, self.tick));
    }
}

#[derive(Debug)]
struct Shared {
    cache: Mutex<Cache>,
    stop: AtomicBool,
    hashed: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Job {
    key: FileKey,
    /// The same file as the exec event identified it, when that differs from `key`.
    alias: Option<FileKey>,
    file: File,
}

/// Hashes executables on a background thread; see the module docs.
#[derive(Debug)]
pub struct ExeHasher {
    shared: Arc<Shared>,
    max_file_bytes: u64,
    tx: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl ExeHasher {
    /// Starts the background thread. Files bigger than `max_file_bytes` are never hashed.
    pub fn start(max_file_bytes: u64) -> Self {
        let (mut hasher, rx) = Self::unstarted(max_file_bytes, QUEUE_LEN, CACHE_LEN);
        let shared = Arc::clone(&hasher.shared);
        let spawned = std::thread::Builder::new()
            .name("exe-hasher".into())
            .spawn(move || work(&rx, &shared, max_file_bytes));
        match spawned {
            Ok(handle) => hasher.worker = Some(handle),
            Err(e) => {
                tracing::warn!("cannot start the executable hasher thread: {e}");
                hasher.tx = None; // every request then counts as dropped
            }
        }
        hasher
    }

    /// A hasher whose queue nobody reads yet (the caller runs [`work`] on `rx`).
    fn unstarted(max_file_bytes: u64, queue: usize, cache: usize) -> (Self, Receiver<Job>) {
        let (tx, rx) = sync_channel(queue);
        let shared = Arc::new(Shared {
            cache: Mutex::new(Cache {
                map: HashMap::new(),
                pending: HashSet::new(),
                tick: 0,
                cap: cache.max(1),
            }),
            stop: AtomicBool::new(false),
            hashed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let hasher = Self { shared, max_file_bytes, tx: Some(tx), worker: None };
        (hasher, rx)
    }

    /// Hex SHA-256 of the executable of `pid` when already known; otherwise queues it for
    /// hashing and returns `None` (a later call for the same file finds it). Never blocks on
    /// hashing.
    pub fn lookup_or_request(&self, pid: u32) -> Option<String> {
        self.request(pid, None).and_then(|(_, digest)| digest)
    }

    /// Like [`Self::lookup_or_request`], also returning the file's key so that the caller can
    /// find the digest later with [`Self::lookup_key`] (after the process is gone).
    /// `known` is the executable as the exec event gave it. When its identity is cached the
    /// answer costs no system call; when the process is already gone (short-lived processes
    /// often are before `/proc/PID/exe` can be looked at), the file at its path is hashed if
    /// it is still that file. `None` when the executable cannot be looked at.
    pub fn request(&self, pid: u32, known: Option<KnownExe<'_>>) -> Option<(FileKey, Option<String>)> {
        if let Some(k) = &known
            && let Some(found) = self.cached(&k.key)
        {
            return Some((k.key, found));
        }
        let proc_exe = format!("/proc/{pid}/exe");
        if known.is_none() {
            let key = FileKey::of(&std::fs::metadata(&proc_exe).ok()?); // gone, or a kernel thread
            if let Some(found) = self.cached(&key) {
                return Some((key, found));
            }
        }
        let file = match File::open(&proc_exe) {
            Ok(f) => f,
            Err(e) => match known.as_ref().and_then(|k| open_verified(k.path?, &k.key)) {
                Some(f) => f,
                None => {
                    if e.kind() != ErrorKind::NotFound {
                        self.shared.errors.fetch_add(1, Relaxed);
                    }
                    return None;
                }
            },
        };
        let meta = file.metadata().ok()?;
        // The key of what was actually opened: the exe could have changed since the exec, and
        // a stacked filesystem (overlayfs) can show other numbers than the kernel's inode.
        let key = FileKey::of(&meta);
        // The event's identity, when it differs, is kept as an alias of the same outcome, if
        // only the numbers a stacked filesystem renumbers differ. Another size or mtime means
        // the process has exec'd something else since: no digest is given for this exec.
        let alias = match known.map(|k| k.key) {
            Some(k) if (k.size, k.mtime_ns) != (key.size, key.mtime_ns) => return Some((k, None)),
            Some(k) if k != key => Some(k),
            _ => None,
        };
        if let Some(found) = self.cached(&key) {
            if let Some(alias) = alias {
                self.shared.cache().put(alias, found.clone().map_or(Outcome::TooBig, Outcome::Digest));
            }
            return Some((key, found));
        }
        if meta.len() > self.max_file_bytes {
            let mut cache = self.shared.cache();
            cache.put(key, Outcome::TooBig);
            if let Some(alias) = alias {
                cache.put(alias, Outcome::TooBig);
            }
            self.shared.skipped.fetch_add(1, Relaxed);
            return Some((key, None));
        }
        if !self.shared.cache().pending.insert(key) {
            return Some((key, None));
        }
        let sent = match &self.tx {
            Some(tx) => tx.try_send(Job { key, alias, file }).is_ok(),
            None => false,
        };
        if !sent {
            self.shared.cache().pending.remove(&key);
            self.shared.dropped.fetch_add(1, Relaxed);
        }
        Some((key, None))
    }

    /// Hex SHA-256 of the file with this key, if hashed.
    pub fn lookup_key(&self, key: &FileKey) -> Option<String> {
        self.cached(key).flatten()
    }

    /// Counters.
    pub fn stats(&self) -> HasherStats {
        let s = &self.shared;
        HasherStats {
            hashed: s.hashed.load(Relaxed),
            skipped: s.skipped.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            errors: s.errors.load(Relaxed),
        }
    }

    /// `Some(answer)` when the key is settled (digest, or too big → `None`); `None` when unknown.
    fn cached(&self, key: &FileKey) -> Option<Option<String>> {
        match self.shared.cache().get(key)? {
            Outcome::Digest(d) => Some(Some(d)),
            Outcome::TooBig => Some(None),
        }
    }
}

impl Drop for ExeHasher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.tx = None; // ends the worker's receive loop
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// An executable as its exec event names it.
#[derive(Debug, Clone, Copy)]
pub struct KnownExe<'a> {
    /// The inode's identity at exec.
    pub key: FileKey,
    /// Its path (in the agent's mount namespace, when the process shares it), `None` when
    /// deleted or cut.
    pub path: Option<&'a Path>,
}

/// The file at `path` if it is still the file `key` names: opened with `O_PATH` first (which
/// has no side effect on a FIFO or device put there since) and compared, then reopened for
/// reading through that handle, so the bytes read are that inode's.
fn open_verified(path: &Path, key: &FileKey) -> Option<File> {
    let handle =
        OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_NOFOLLOW).open(path).ok()?;
    let meta = handle.metadata().ok()?;
    if !meta.is_file() || FileKey::of(&meta) != *key {
        return None;
    }
    File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).ok()
}

/// The background loop: hashes queued files until the sender is gone.
fn work(rx: &Receiver<Job>, shared: &Shared, max_file_bytes: u64) {
    while let Ok(job) = rx.recv() {
        if shared.stop.load(Relaxed) {
            break;
        }
        let outcome = match hash_file(&job, max_file_bytes, &shared.stop) {
            Ok(Some(digest)) => {
                shared.hashed.fetch_add(1, Relaxed);
                Some(Outcome::Digest(digest))
            }
            Ok(None) => {
                shared.skipped.fetch_add(1, Relaxed);
                Some(Outcome::TooBig)
            }
            Err(_) => {
                shared.errors.fetch_add(1, Relaxed);
                None
            }
        };
        if let Some(outcome) = outcome {
            let mut cache = shared.cache();
            if let Some(alias) = job.alias {
                cache.put(alias, outcome.clone());
            }
            cache.put(job.key, outcome);
        }
        shared.cache().pending.remove(&job.key);
    }
}

/// Hex SHA-256 of the job's file; `None` if it is (or grew) bigger than `max`. An error when
/// unreadable, stopped, or changed while being read.
fn hash_file(job: &Job, max: u64, stop: &AtomicBool) -> std::io::Result<Option<String>> {
    let mut file = &job.file;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        if stop.load(Relaxed) {
            return Err(ErrorKind::Interrupted.into());
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > max {
            return Ok(None);
        }
        sha.update(buf.get(..n).unwrap_or_default());
    }
    if FileKey::of(&job.file.metadata()?) != job.key {
        return Err(std::io::Error::other("file changed while being hashed"));
    }
    Ok(Some(hex::encode(sha.finalize())))
}

#[cfg(test)]
mod tests;
