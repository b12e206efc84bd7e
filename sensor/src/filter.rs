//! What the file collector treats specially: sensitive files and directories (reads of them are
//! reported; everything on them is marked `sensitive`), excluded directories (nothing below
//! them is reported, e.g. the sensor's own output) and, when configured, included directories
//! (only activity below them, or on sensitive paths, is reported). Configured as paths (a `*` may stand for part
//! of one component, e.g. `/home/*/.ssh`); the kernel matches by (device, inode), so the paths
//! are resolved into the `INODE_FILTER` map and re-resolved periodically (files such as
//! /etc/shadow get a new inode each time they are rewritten).

use std::{
    collections::HashMap,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use sensor_common::file::{
    INODE_BLOOM_WORDS, INODE_EXCLUDED, INODE_INCLUDED, INODE_PROTECTED, INODE_SENSITIVE, InodeKey,
    inode_bloom_slot,
};
use tokio::sync::watch;
use tracing::{debug, warn};

/// Default sensitive paths: password and group shadow files (and their backups), sudo rules, SSH
/// host and user keys, shell histories, browser and desktop credential stores, and the usual
/// credential files of cloud, database and git clients.
pub const DEFAULT_SENSITIVE: [&str; 33] = [
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/root/.ssh",
    "/home/*/.ssh",
    "/root/.bash_history",
    "/home/*/.bash_history",
    "/root/.zsh_history",
    "/home/*/.zsh_history",
    "/home/*/.mozilla/firefox/*/logins.json",
    "/home/*/.mozilla/firefox/*/key4.db",
    "/home/*/.mozilla/firefox/*/cookies.sqlite",
    "/home/*/.config/google-chrome/*/Login Data",
    "/home/*/.config/google-chrome/*/Cookies",
    "/home/*/.config/chromium/*/Login Data",
    "/home/*/.config/chromium/*/Cookies",
    "/home/*/.local/share/keyrings",
    "/home/*/.password-store",
    "/home/*/.gnupg/private-keys-v1.d",
    "/root/.gnupg/private-keys-v1.d",
    "/root/.aws/credentials",
    "/home/*/.aws/credentials",
    "/root/.pgpass",
    "/home/*/.pgpass",
    "/root/.git-credentials",
    "/home/*/.git-credentials",
    "/root/.docker/config.json",
    "/home/*/.docker/config.json",
];

/// Excluded by default: writes to the null device are shell redirections, not file activity.
pub const DEFAULT_EXCLUDED: [&str; 1] = ["/dev/null"];

/// Resolved sensitive paths, for matching the paths of file records in userspace too (e.g. an
/// unlink, whose target no longer exists when the event is built).
#[derive(Debug, Default, Clone)]
pub struct SensitivePaths {
    paths: Vec<PathBuf>,
}

impl SensitivePaths {
    /// True when `path` is a sensitive path or lies below one.
    pub fn matches(&self, path: &[u8]) -> bool {
        self.paths.iter().any(|p| {
            let p = p.as_os_str().as_bytes();
            path.starts_with(p) && (path.len() == p.len() || path.get(p.len()) == Some(&b'/'))
        })
    }
}

/// Shared view of the sensitive paths (updated by the refresher, read by enrichment).
pub type SharedSensitive = Arc<RwLock<SensitivePaths>>;

/// Expands `*` in path components against the file system; paths without `*` are kept as they
/// are whether or not they exist.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/")];
    for comp in Path::new(pattern).components().skip(1) {
        let comp = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in out {
            match comp.split_once('*') {
                None => next.push(base.join(comp.as_ref())),
                Some((pre, post)) => {
                    let Ok(entries) = std::fs::read_dir(&base) else { continue };
                    for e in entries.flatten() {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        if name.len() >= pre.len() + post.len()
                            && name.starts_with(pre)
                            && name.ends_with(post)
                        {
                            next.push(base.join(name.as_ref()));
                        }
                    }
                }
            }
        }
        out = next;
    }
    out
}

/// Kernel-internal `dev_t` of a stat result (`MKDEV(major, minor)`).
fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xf_ffff)
}

/// The kernel's inode filter: the entries and the Bloom bitmap of their inode numbers, which
/// the programs test before they look an inode up (see `sensor_common::file::INODE_BLOOM_WORDS`).
pub struct FilterMaps {
    /// (dev, ino) → `INODE_*` bits.
    pub entries: BpfHashMap<MapData, InodeKey, u32>,
    pub bloom: Array<MapData, u64>,
}

/// Keeps the kernel's inode filter in step with the configured paths.
pub struct InodeFilter {
    map: BpfHashMap<MapData, InodeKey, u32>,
    bloom_map: Array<MapData, u64>,
    /// The bitmap as last written to `bloom_map`; `None` until the first write (an adopted map
    /// holds the last run's bits) and after a failed one.
    bloom: Option<Vec<u64>>,
    sensitive: Vec<String>,
    excluded: Vec<PathBuf>,
    included: Vec<PathBuf>,
    /// The sensor's own files (`crate::protect`): others' changes there are reported even where
    /// the path is excluded.
    protected: Vec<PathBuf>,
    shared: SharedSensitive,
    installed: HashMap<InodeKey, u32>,
    map_errors: crate::ratelimit::RateLimited,
    /// Wakes the refresher early: a sensitive file was replaced (new inode).
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for InodeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InodeFilter").field("entries", &self.installed.len()).finish_non_exhaustive()
    }
}

impl InodeFilter {
    pub fn new(
        maps: FilterMaps,
        sensitive: Vec<String>,
        excluded: Vec<PathBuf>,
        included: Vec<PathBuf>,
    ) -> Self {
        Self {
            map: maps.entries,
            bloom_map: maps.bloom,
            bloom: None,
            sensitive,
            excluded,
            included,
            protected: Vec::new(),
            shared: SharedSensitive::default(),
            installed: HashMap::new(),
            map_errors: crate::ratelimit::RateLimited::default(),
            wake: std::sync::Arc::default(),
        }
    }

    /// Removes every entry of the kernel map (adopted programs: the last run's entries are
    /// stale), before the first refresh.
    pub fn clear_kernel_map(&mut self) {
        let keys: Vec<InodeKey> = self.map.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.map.remove(&k);
        }
    }

    /// Sets the sensor's protected paths (see `crate::protect`).
    pub fn set_protected(&mut self, paths: Vec<PathBuf>) {
        self.protected = paths;
    }

    /// The sensitive paths as last resolved.
    pub fn shared(&self) -> SharedSensitive {
        self.shared.clone()
    }

    /// Resolves the configured paths and updates the kernel map (insert new, drop stale).
    pub fn refresh(&mut self) {
        let mut want: HashMap<InodeKey, u32> = HashMap::new();
        let mut resolved = Vec::new();
        for pattern in &self.sensitive {
            for path in expand(pattern) {
                if let Ok(meta) = std::fs::metadata(&path) {
                    *want.entry(key(&meta)).or_default() |= INODE_SENSITIVE;
                }
                resolved.push(path);
            }
        }
        for (paths, bit) in [
            (&self.excluded, INODE_EXCLUDED),
            (&self.included, INODE_INCLUDED),
            (&self.protected, INODE_PROTECTED),
        ] {
            for path in paths {
                if let Ok(meta) = std::fs::metadata(path) {
                    *want.entry(key(&meta)).or_default() |= bit;
                }
            }
        }
        for (k, bits) in &want {
            if self.installed.get(k) != Some(bits)
                && let Err(e) = self.map.insert(k, bits, 0)
                && let Some(suppressed) = self.map_errors.allow()
            {
                warn!(error = %e, suppressed, "updating the inode filter");
            }
        }
        // The bits of the entries still installed stay set until they are removed, so no entry
        // is ever hidden from the programs by its bitmap word.
        let bloom = bloom_of(want.keys());
        let mut both = bloom.clone();
        for k in self.installed.keys() {
            set_bit(&mut both, k.ino);
        }
        self.write_bloom(&both);
        for k in self.installed.keys().filter(|k| !want.contains_key(k)).copied().collect::<Vec<_>>() {
            let _ = self.map.remove(&k);
        }
        self.write_bloom(&bloom);
        debug!(entries = want.len(), "inode filter refreshed");
        self.installed = want;
        if let Ok(mut s) = self.shared.write() {
            s.paths = resolved;
        }
    }

    /// Writes the words of `want` that differ from what the kernel's bitmap holds (all of them
    /// when that is unknown).
    fn write_bloom(&mut self, want: &[u64]) {
        let mut failed = false;
        for (i, &w) in want.iter().enumerate() {
            if self.bloom.as_ref().is_some_and(|b| b[i] == w) {
                continue;
            }
            if let Err(e) = self.bloom_map.set(i as u32, w, 0) {
                failed = true;
                if let Some(suppressed) = self.map_errors.allow() {
                    warn!(error = %e, suppressed, "updating the inode filter's bitmap");
                }
            }
        }
        self.bloom = if failed { None } else { Some(want.to_vec()) };
    }

    /// A handle that makes the refresher run at once (e.g. when a sensitive file was replaced by
    /// a rename, as `passwd` and `useradd` do with /etc/shadow: until the filter learns the new
    /// inode, reads of it would not be reported).
    pub fn waker(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Refreshes every `every`, and when woken, until `stop`. Globbing and `stat` can block (a
    /// hung network mount), so each refresh runs on a blocking thread, never on an async worker;
    /// a refresh that hangs delays only the next refresh.
    pub async fn run(mut self, every: Duration, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let wake = self.wake.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = wake.notified() => {}
                _ = stop.changed() => return Ok(()),
            }
            let work = tokio::task::spawn_blocking(move || {
                self.refresh();
                self
            });
            tokio::select! {
                done = work => self = done?,
                // The refresh finishes on its own thread; nothing waits for it.
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

/// The Bloom bitmap of these keys' inode numbers.
fn bloom_of<'a>(keys: impl Iterator<Item = &'a InodeKey>) -> Vec<u64> {
    let mut words = vec![0u64; INODE_BLOOM_WORDS as usize];
    for k in keys {
        set_bit(&mut words, k.ino);
    }
    words
}

fn set_bit(words: &mut [u64], ino: u64) {
    let (word, bit) = inode_bloom_slot(ino);
    words[word as usize] |= bit;
}

fn key(meta: &std::fs::Metadata) -> InodeKey {
    InodeKey { dev: kernel_dev(meta.dev()), _pad: 0, ino: meta.ino() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_globs_and_matches_below_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for u in ["alice", "bob"] {
            std::fs::create_dir_all(dir.path().join(u).join(".ssh")).expect("mkdir");
        }
        let pattern = format!("{}/*/.ssh", dir.path().display());
        let mut got = expand(&pattern);
        got.sort();
        assert_eq!(got, vec![dir.path().join("alice/.ssh"), dir.path().join("bob/.ssh")]);
        assert_eq!(expand("/etc/shadow"), vec![PathBuf::from("/etc/shadow")]);

        let s = SensitivePaths { paths: vec![PathBuf::from("/etc/shadow"), PathBuf::from("/srv/patients")] };
        assert!(s.matches(b"/etc/shadow"));
        assert!(!s.matches(b"/etc/shadow-"));
        assert!(s.matches(b"/srv/patients/a/b.pdf"));
        assert!(!s.matches(b"/srv/patients2/x"));
    }

    #[test]
    fn bloom_has_every_key_and_spreads_neighbouring_inodes() {
        let inos = [0, 1, 2, 4242, u64::MAX];
        let keys: Vec<InodeKey> = inos.iter().map(|&ino| InodeKey { dev: 7, _pad: 0, ino }).collect();
        let words = bloom_of(keys.iter());
        assert_eq!(words.len(), INODE_BLOOM_WORDS as usize);
        for ino in inos {
            let (w, b) = inode_bloom_slot(ino);
            assert!(words[w as usize] & b != 0, "bit of inode {ino}");
        }
        // Files made together get neighbouring numbers: they must not share bits.
        let mut spread = vec![0u64; INODE_BLOOM_WORDS as usize];
        for ino in 1_000_000..1_010_000 {
            set_bit(&mut spread, ino);
        }
        let set: u32 = spread.iter().map(|w| w.count_ones()).sum();
        assert!(set > 9_500, "10000 neighbouring inodes set only {set} bits");
    }

    #[test]
    fn kernel_dev_encoding() {
        // 8:1 (sda1) is 0x800001 in the kernel's encoding.
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
    }
}
