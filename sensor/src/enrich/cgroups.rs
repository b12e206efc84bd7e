//! cgroup v2 id → path, by looking the id up as a directory inode in the cgroup2 mount.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Most directories scanned per refresh (bounds the cost on hosts with many cgroups).
const SCAN_LIMIT: usize = 20_000;
/// Most ids remembered.
const CACHE_LIMIT: usize = 16_384;

#[derive(Debug, Default)]
pub struct CgroupPaths {
    root: Option<PathBuf>,
    cache: HashMap<u64, String>,
}

impl CgroupPaths {
    /// Finds the cgroup2 mount (e.g. `/sys/fs/cgroup` or, on hybrid hosts, `/sys/fs/cgroup/unified`).
    pub fn new() -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self { root: cgroup2_mount(&mountinfo), cache: HashMap::new() }
    }

    /// Path of cgroup `id` relative to the cgroup2 root (`/` for the root), if it exists.
    pub fn path(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.cache.get(&id) {
            return Some(p.clone());
        }
        let root = self.root.clone()?;
        if self.cache.len() > CACHE_LIMIT {
            self.cache.clear();
        }
        self.scan(&root);
        self.cache.get(&id).cloned()
    }

    fn scan(&mut self, root: &Path) {
        let mut stack = vec![root.to_owned()];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            seen += 1;
            if seen > SCAN_LIMIT {
                break;
            }
            if let Ok(meta) = std::fs::metadata(&dir) {
                let rel = dir.strip_prefix(root).map(|p| format!("/{}", p.display())).unwrap_or_default();
                self.cache.insert(meta.ino(), rel);
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

fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mount() {
        let mi = "35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n\
                  36 24 0:31 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn own_cgroup_resolves() {
        let mut c = CgroupPaths::new();
        let Some(root) = c.root.clone() else { return };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else { return };
        let id = std::fs::metadata(root.join(rel.trim_start_matches('/'))).expect("own cgroup dir").ino();
        assert_eq!(c.path(id).as_deref(), Some(rel));
    }
}
