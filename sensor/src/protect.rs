//! The sensor's own files: its binary, configuration, keys, rules, outputs, spools and the
//! freeze/kill controls of its cgroup. Another process that writes, renames, deletes or changes
//! the permissions of one of them is tampering with the sensor (`file` records carry the class
//! in `protected`, and the `sensor.tamper.*` rules alert on them).
//!
//! The kernel's inode filter marks these paths `INODE_PROTECTED`, which lets events through even
//! where the path is excluded (the outputs are, so that the sensor's own writes stay out), and
//! drops the sensor's own changes. Events that name a protected path by an absolute name are
//! classified here, by path.

use std::{
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use crate::mountinfo::{cgroup2_mount, freezer_mount};

/// Protected paths and their class, longest first (the most specific class wins).
#[derive(Debug, Clone, Default)]
pub struct ProtectedPaths {
    entries: Vec<(PathBuf, &'static str)>,
}

impl ProtectedPaths {
    /// Paths with their class (`binary`, `config`, `rules`, `key`, `records`, `spool`, `cgroup`,
    /// `btf`).
    pub fn new(mut entries: Vec<(PathBuf, &'static str)>) -> Self {
        entries.retain(|(p, _)| p.is_absolute());
        entries.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        entries.dedup_by(|a, b| a.0 == b.0);
        Self { entries }
    }

    /// The class of the protected path that `path` is or lies below.
    pub fn classify(&self, path: &[u8]) -> Option<&'static str> {
        self.entries.iter().find_map(|(p, class)| {
            let p = p.as_os_str().as_bytes();
            let below = path.starts_with(p) && (path.len() == p.len() || path.get(p.len()) == Some(&b'/'));
            below.then_some(*class)
        })
    }

    /// The paths, for the kernel's inode filter.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(|(p, _)| p.as_path())
    }
}

/// The freeze and kill controls of the sensor's cgroup and of every cgroup above it (freezing a
/// parent freezes the sensor too): `cgroup.freeze`, `cgroup.kill` (v2) and the v1 freezer's
/// `freezer.state`.
pub fn cgroup_controls() -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    let mut add = |root: &Path, rel: &str, files: &[&str]| {
        let mut dir = root.join(rel.trim_start_matches('/'));
        loop {
            out.extend(files.iter().map(|f| dir.join(f)));
            if dir == root || !dir.pop() {
                break;
            }
        }
    };
    if let (Some(root), Some(rel)) =
        (cgroup2_mount(&mountinfo), own.lines().find_map(|l| l.strip_prefix("0::")))
    {
        add(&root, rel, &["cgroup.freeze", "cgroup.kill"]);
    }
    let freezer = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "freezer").then(|| path.to_owned())
    });
    if let (Some(root), Some(rel)) = (freezer_mount(&mountinfo), freezer) {
        add(&root, &rel, &["freezer.state"]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_class_wins() {
        let p = ProtectedPaths::new(vec![
            ("/var/lib/sensor".into(), "state"),
            ("/var/lib/sensor/records".into(), "records"),
            ("/etc/sensor/sensor.toml".into(), "config"),
            ("relative".into(), "config"),
        ]);
        assert_eq!(p.classify(b"/var/lib/sensor/records/audit-1.pb"), Some("records"));
        assert_eq!(p.classify(b"/var/lib/sensor/spool/x"), Some("state"));
        assert_eq!(p.classify(b"/etc/sensor/sensor.toml"), Some("config"));
        assert_eq!(p.classify(b"/etc/sensor/sensor.toml.bak"), None);
        assert_eq!(p.classify(b"/var/lib/sensorx"), None);
        assert_eq!(p.paths().count(), 3, "relative paths are dropped");
    }

    #[test]
    fn own_cgroup_controls_are_found_up_to_the_root() {
        let c = cgroup_controls();
        if c.is_empty() {
            eprintln!("skipped: no cgroup2 mount here");
            return;
        }
        assert!(c.iter().any(|p| p.ends_with("cgroup.freeze")), "{c:?}");
    }
}
