//! Mount points from `/proc/self/mountinfo`: the cgroup hierarchies (used by `enrich::cgroups`
//! and by `protect`, which must not depend on each other's stage).

use std::path::PathBuf;

/// The cgroup v2 mount point.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })
}

/// The cgroup v1 freezer hierarchy's mount point.
pub fn freezer_mount(mountinfo: &str) -> Option<PathBuf> {
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
    fn finds_cgroup2_mount() {
        let mi = "35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n\
                  36 24 0:31 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_mount("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn finds_the_v1_freezer() {
        let mi = "30 24 0:26 / /sys/fs/cgroup/freezer rw,nosuid shared:12 - cgroup cgroup rw,freezer\n\
                  35 24 0:30 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(freezer_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/freezer")));
        assert_eq!(freezer_mount("35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"), None);
    }
}
