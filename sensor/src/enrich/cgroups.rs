//! cgroup v2 id → path. The id is the cgroup directory's kernfs node id: it is opened by file
//! handle (`open_by_handle_at` on the cgroup2 mount, one syscall, as systemd and bpftool do) and
//! its path read back. Answers are cached — misses too, for a while (a cgroup that is gone
//! stays gone; one we cannot see now may appear). Where file handles do not work (no
//! `CAP_DAC_READ_SEARCH`), the tree is scanned instead, at most once per [`SCAN_EVERY`], never
//! per event.

use std::{
    collections::HashMap,
    ffi::CString,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Most directories scanned per scan (bounds the cost on hosts with many cgroups).
const SCAN_LIMIT: usize = 20_000;
/// Most ids remembered.
const CACHE_LIMIT: usize = 16_384;
/// A miss is remembered this long.
pub const MISS_TTL: Duration = Duration::from_secs(30);
/// The fallback scan runs at most this often.
pub const SCAN_EVERY: Duration = Duration::from_secs(60);
/// `FILEID_KERNFS`: the file handle type of kernfs (cgroup2) directories.
const FILEID_KERNFS: i32 = 0xfe;

#[derive(Debug, Clone)]
enum Entry {
    Found(String),
    Missing(Instant),
}

#[derive(Debug, Default)]
pub struct CgroupPaths {
    root: Option<PathBuf>,
    /// The cgroup2 mount, opened (not `O_PATH`: the kernel refuses those) for
    /// `open_by_handle_at`; `None` once handles proved unusable.
    mount: Option<OwnedFd>,
    cache: HashMap<u64, Entry>,
    last_scan: Option<Instant>,
    /// Lookups that went to the kernel or the tree (not answered from the cache).
    pub lookups: u64,
}

impl CgroupPaths {
    /// Finds the cgroup2 mount (e.g. `/sys/fs/cgroup` or, on hybrid hosts, `/sys/fs/cgroup/unified`).
    pub fn new() -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::at(crate::mountinfo::cgroup2_mount(&mountinfo))
    }

    fn at(root: Option<PathBuf>) -> Self {
        let mount = root.as_deref().and_then(open_dir);
        Self { root, mount, ..Self::default() }
    }

    /// [`Self::path`] written into `out` (empty when unknown), in its allocation when it has
    /// room.
    pub fn path_into(&mut self, id: u64, out: &mut String) {
        if let Some(Entry::Found(p)) = self.cache.get(&id) {
            out.clone_from(p);
            return;
        }
        match self.path(id) {
            Some(p) => *out = p,
            None => out.clear(),
        }
    }

    /// Path of cgroup `id` relative to the cgroup2 root (`/` for the root), if it exists.
    pub fn path(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        match self.cache.get(&id) {
            Some(Entry::Found(p)) => return Some(p.clone()),
            Some(Entry::Missing(t)) if t.elapsed() < MISS_TTL => return None,
            _ => {}
        }
        let root = self.root.clone()?;
        self.lookups += 1;
        let found = match self.by_handle(&root, id) {
            Ok(found) => found,
            Err(()) => {
                // File handles do not work here: scan, but not more often than SCAN_EVERY.
                if self.last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
                    self.last_scan = Some(Instant::now());
                    self.scan(&root);
                }
                match self.cache.get(&id) {
                    Some(Entry::Found(p)) => Some(p.clone()),
                    _ => None,
                }
            }
        };
        self.remember(id, found.clone());
        found
    }

    /// `Ok(None)`: no such cgroup (now); `Err`: file handles cannot be used on this host.
    fn by_handle(&mut self, root: &Path, id: u64) -> Result<Option<String>, ()> {
        let mount = self.mount.as_ref().ok_or(())?;
        match open_cgroup(mount, id) {
            Ok(fd) => {
                let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
                Ok(link.and_then(|l| relative(root, &l)))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOENT)) => Ok(None),
            Err(_) => {
                self.mount = None;
                Err(())
            }
        }
    }

    fn remember(&mut self, id: u64, found: Option<String>) {
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.retain(|_, e| matches!(e, Entry::Missing(t) if t.elapsed() < MISS_TTL));
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
        }
        let entry = found.map_or_else(|| Entry::Missing(Instant::now()), Entry::Found);
        self.cache.insert(id, entry);
    }

    fn scan(&mut self, root: &Path) {
        let mut stack = vec![root.to_owned()];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            seen += 1;
            if seen > SCAN_LIMIT {
                break;
            }
            if let Ok(meta) = std::fs::metadata(&dir)
                && let Some(rel) = relative(root, &dir)
                && self.cache.len() < CACHE_LIMIT
            {
                self.cache.insert(meta.ino(), Entry::Found(rel));
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
}

/// `/x/y` for `root/x/y`, `/` for `root`.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    Some(format!("/{}", rel.display()))
}

fn open_dir(path: &Path) -> Option<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    // SAFETY: `fd` is a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A kernfs file handle: the header of `struct file_handle` and the 64-bit node id.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

/// Opens the cgroup directory whose kernfs id is `id` (needs `CAP_DAC_READ_SEARCH`).
fn open_cgroup(mount: &OwnedFd, id: u64) -> std::io::Result<OwnedFd> {
    let mut h = KernfsHandle { handle_bytes: 8, handle_type: FILEID_KERNFS, id };
    // SAFETY: `h` has the layout of a `struct file_handle` with 8 handle bytes and outlives the
    // call; the returned fd is owned below.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            std::ptr::from_mut(&mut h).cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_cgroup() -> Option<(CgroupPaths, u64, String)> {
        let c = CgroupPaths::new();
        let root = c.root.clone()?;
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
        let id = std::fs::metadata(root.join(rel.trim_start_matches('/'))).expect("own cgroup dir").ino();
        Some((c, id, rel))
    }

    #[test]
    fn own_cgroup_resolves_and_is_cached() {
        let Some((mut c, id, rel)) = own_cgroup() else { return };
        assert_eq!(c.path(id).as_deref(), Some(rel.as_str()));
        assert_eq!(c.path(id).as_deref(), Some(rel.as_str()));
        assert_eq!(c.lookups, 1, "the second answer comes from the cache");
        if nix::unistd::geteuid().is_root() {
            assert!(c.mount.is_some(), "as root, cgroups are opened by file handle (no scan)");
            assert!(c.last_scan.is_none());
        }
    }

    #[test]
    fn misses_are_cached_and_never_rescan_per_event() {
        let Some((mut c, _, _)) = own_cgroup() else { return };
        for _ in 0..1000 {
            assert_eq!(c.path(u64::MAX - 7), None);
        }
        assert_eq!(c.lookups, 1, "one lookup for a thousand events of an unknown cgroup");
        // Without file handles, unknown ids cost one scan per SCAN_EVERY at most.
        c.mount = None;
        let before = c.lookups;
        for i in 0..1000 {
            assert_eq!(c.path(u64::MAX - 100 - i), None);
        }
        assert_eq!(c.lookups - before, 1000, "each new id is looked up once");
        assert!(c.last_scan.is_some());
        let scanned_at = c.last_scan;
        assert_eq!(c.path(u64::MAX - 5000), None);
        assert_eq!(c.last_scan, scanned_at, "no second scan within SCAN_EVERY");
    }

    #[test]
    fn the_scan_fallback_finds_cgroups_too() {
        let Some((c, id, rel)) = own_cgroup() else { return };
        let mut scanning = CgroupPaths { mount: None, ..CgroupPaths::at(c.root.clone()) };
        assert_eq!(scanning.path(id).as_deref(), Some(rel.as_str()));
    }
}
