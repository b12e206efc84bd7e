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

use crate::pipeline::Options;

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

    /// Everything a running sensor with `opts` protects.
    pub fn of(opts: &Options) -> Self {
        let mut e: Vec<(PathBuf, &'static str)> = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            e.push((exe, "binary"));
        }
        if let Some(c) = &opts.config_file {
            e.push((c.clone(), "config"));
        }
        if let Some(k) = &opts.signing_key {
            e.push((k.clone(), "key"));
            let mut public = k.clone().into_os_string();
            public.push(".pub");
            e.push((public.into(), "key"));
        }
        if let Some(b) = &opts.btf {
            e.push((b.clone(), "btf"));
        }
        let rules = &opts.detection.sources;
        e.extend(rules.paths.iter().chain(&rules.optional_dir).map(|p| (p.clone(), "rules")));
        for out in &opts.outputs {
            if let Some(p) = out.spec.local_path() {
                e.push((p, "records"));
            }
            if let Some(p) = crate::sinks::spool::output_spool_dir(out) {
                e.push((p, "spool"));
            }
            let tls = &out.options.tls;
            e.extend(
                [&tls.ca_file, &tls.cert_file, &tls.key_file]
                    .into_iter()
                    .flatten()
                    .map(|p| (p.clone(), "key")),
            );
        }
        if let Some(p) = &opts.pinning {
            e.push((p.dir.clone(), "pins"));
        }
        e.extend(cgroup_controls().into_iter().map(|p| (p, "cgroup")));
        Self::new(e)
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
fn cgroup_controls() -> Vec<PathBuf> {
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
        (crate::enrich::cgroups::cgroup2_mount(&mountinfo), own.lines().find_map(|l| l.strip_prefix("0::")))
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

/// The cgroup v1 freezer hierarchy's mount point.
fn freezer_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
        (fstype == "cgroup" && options.split(',').any(|o| o == "freezer"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })
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
    fn finds_the_v1_freezer() {
        let mi = "30 24 0:26 / /sys/fs/cgroup/freezer rw,nosuid shared:12 - cgroup cgroup rw,freezer\n\
                  35 24 0:30 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(freezer_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/freezer")));
        assert_eq!(freezer_mount("35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"), None);
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
