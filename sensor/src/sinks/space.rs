//! The disk-space policy of the sinks that write local files (`file:` and the spool of network
//! outputs), like auditd's `space_left_action` / `disk_full_action`:
//!
//! - a **reserve** of free space is left to the rest of the machine ([`SpaceCheck`]); below it
//!   the sink first deletes its oldest files (`on_low_space = "rotate"`) or stops writing
//!   (`"stop"`);
//! - a write that fails (`ENOSPC`, `EDQUOT`: `disk_full`; `EIO`, `EROFS` and the rest:
//!   `io_error`) starts an [`Episode`]: the sink counts every record it does not write, logs
//!   one warning, and probes once a second whether writing works again;
//! - when it does, the pipeline writes a loss record (kind `sink`) built from the episode into
//!   every output, that sink's own stream first of all; the record names the gap (the seq range
//!   and the hash of the last record written before it), so `records verify` follows the
//!   chain across the gap and reports it instead of calling it tampering.

use std::{
    fs::OpenOptions,
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sensor_proto::AuditRecord;
use tracing::warn;

use super::{SinkLoss, spec::DiskOptions};

/// Free space is read again after this long…
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// …or after this many bytes were written.
const CHECK_BYTES: u64 = 1024 * 1024;
/// An episode is probed (can the sink write again?) at most this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Writing resumes only with this much free space above the reserve (no flapping at the edge).
pub const RESUME_MARGIN: u64 = 1024 * 1024;
/// Name of the file a probe writes (and removes) in the sink's directory.
const PROBE_FILE: &str = ".write-probe";

/// `disk_full` or `io_error`: the loss reason for a failed write.
pub fn reason(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "disk_full",
        _ => "io_error",
    }
}

/// Free and total bytes of the file system holding `dir` (free as an unprivileged user sees it).
pub fn fs_space(dir: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let frag = st.fragment_size();
    Ok((st.blocks_available().saturating_mul(frag), st.blocks().saturating_mul(frag)))
}

/// Watches the free space of one sink's file system against its reserve.
#[derive(Debug)]
pub struct SpaceCheck {
    dir: PathBuf,
    opts: DiskOptions,
    last: Instant,
    since_bytes: u64,
    /// Free bytes at the last check.
    pub free: u64,
    /// The reserve in bytes (depends on the file system's size).
    pub reserve: u64,
}

impl SpaceCheck {
    /// Reads the file system's size and free space now; warns when the reserve leaves nothing.
    pub fn new(sink: &str, dir: &Path, opts: DiskOptions) -> Self {
        let (free, total) = fs_space(dir).unwrap_or((u64::MAX, 0));
        let reserve = opts.reserve(total);
        if total > 0 && reserve >= total {
            warn!(
                sink,
                reserve,
                fs_bytes = total,
                "the disk reserve is as large as the whole file system: nothing will be written \
                 (lower `reserve`/`reserve_percent` for this output)"
            );
        }
        Self { dir: dir.to_owned(), opts, last: Instant::now(), since_bytes: 0, free, reserve }
    }

    pub fn options(&self) -> DiskOptions {
        self.opts
    }

    /// Counts `bytes` about to be written; true when a check is due.
    pub fn due(&mut self, bytes: u64) -> bool {
        self.since_bytes += bytes;
        self.since_bytes >= CHECK_BYTES || self.last.elapsed() >= CHECK_EVERY
    }

    /// Reads the free space now; true when it is below the reserve.
    pub fn low(&mut self) -> bool {
        self.last = Instant::now();
        self.since_bytes = 0;
        match fs_space(&self.dir) {
            Ok((free, total)) => {
                self.free = free;
                self.reserve = self.opts.reserve(total);
            }
            // Not knowing is not a reason to stop: a failing write will say what is wrong.
            Err(_) => self.free = u64::MAX,
        }
        self.free < self.reserve
    }

    /// Writing may resume: the reserve (and a margin) is free and a small file can be written,
    /// synced and removed in the sink's directory.
    pub fn can_write(&mut self) -> bool {
        self.low();
        if self.free < self.reserve.saturating_add(RESUME_MARGIN) {
            return false;
        }
        let path = self.dir.join(PROBE_FILE);
        let res = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&[0u8; 4096]).and_then(|()| f.sync_data()));
        let _ = std::fs::remove_file(&path);
        res.is_ok()
    }
}

/// Records one sink could not write, from the first failure until writing works again.
#[derive(Debug, Clone)]
pub struct Episode {
    pub reason: &'static str,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_boot_ns: u64,
    pub last_boot_ns: u64,
    /// `integrity.prev_hash` of the first record not written: the hash of the last one written.
    pub prev_hash: String,
    started: Instant,
    last_probe: Option<Instant>,
}

impl Episode {
    pub fn new(reason: &'static str) -> Self {
        Self {
            reason,
            count: 0,
            first_seq: 0,
            last_seq: 0,
            first_boot_ns: 0,
            last_boot_ns: 0,
            prev_hash: String::new(),
            started: Instant::now(),
            last_probe: None,
        }
    }

    /// Counts one record not written (they come in `seq` order).
    pub fn add(&mut self, seq: u64, boot_ns: u64, prev_hash: &str) {
        if self.count == 0 {
            self.first_seq = seq;
            self.first_boot_ns = boot_ns;
            prev_hash.clone_into(&mut self.prev_hash);
        }
        self.count += 1;
        self.last_seq = seq;
        self.last_boot_ns = self.last_boot_ns.max(boot_ns);
    }

    /// Counts `count` consecutive records not written, given the first (seq, boot ns, prev hash)
    /// and the last (seq, boot ns) of them.
    pub fn add_run(&mut self, count: u64, first: (u64, u64, &str), last: (u64, u64)) {
        if count == 0 {
            return;
        }
        self.add(first.0, first.1, first.2);
        self.count += count - 1;
        self.last_seq = last.0;
        self.last_boot_ns = self.last_boot_ns.max(last.1);
    }

    /// Counts `record` as not written.
    pub fn add_record(&mut self, record: &AuditRecord) {
        let prev = record.integrity.as_ref().map_or("", |i| i.prev_hash.as_str());
        self.add(record.seq, record.boot_ns, prev);
    }

    /// True at most once per [`PROBE_EVERY`] (and not in the first one).
    pub fn probe_due(&mut self) -> bool {
        let since = self.last_probe.unwrap_or(self.started);
        if since.elapsed() < PROBE_EVERY {
            return false;
        }
        self.last_probe = Some(Instant::now());
        true
    }

    pub fn duration(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the pipeline turns into the loss record.
    pub fn loss(&self, sink: &str) -> SinkLoss {
        SinkLoss {
            sink: sink.to_owned(),
            reason: self.reason,
            count: self.count,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            first_boot_ns: self.first_boot_ns,
            last_boot_ns: self.last_boot_ns,
            prev_hash: self.prev_hash.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::spec::LowSpace;

    #[test]
    fn reasons_by_errno() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(reason(&e(libc::ENOSPC)), "disk_full");
        assert_eq!(reason(&e(libc::EDQUOT)), "disk_full");
        assert_eq!(reason(&e(libc::EIO)), "io_error");
        assert_eq!(reason(&e(libc::EROFS)), "io_error");
        assert_eq!(reason(&io::Error::other("x")), "io_error");
    }

    #[test]
    fn reserve_is_the_larger_of_bytes_and_percent() {
        let d = DiskOptions { reserve_bytes: 256 << 20, reserve_percent: 5, on_low_space: LowSpace::Rotate };
        assert_eq!(d.reserve(1 << 30), 256 << 20, "5% of 1 GiB is less than 256 MiB");
        assert_eq!(d.reserve(100 << 30), 5 << 30);
        let none = DiskOptions { reserve_bytes: 0, reserve_percent: 0, on_low_space: LowSpace::Stop };
        assert_eq!(none.reserve(u64::MAX), 0);
        let all = DiskOptions { reserve_bytes: 0, reserve_percent: 100, on_low_space: LowSpace::Stop };
        assert_eq!(all.reserve(u64::MAX), u64::MAX);
    }

    #[test]
    fn episode_keeps_the_range_and_the_link_before_it() {
        let mut ep = Episode::new("disk_full");
        ep.add(5, 100, "aa");
        ep.add(6, 90, "bb");
        ep.add(7, 300, "cc");
        let l = ep.loss("file:/x");
        assert_eq!((l.count, l.first_seq, l.last_seq), (3, 5, 7));
        assert_eq!((l.first_boot_ns, l.last_boot_ns), (100, 300));
        assert_eq!(l.prev_hash, "aa");
        assert!(!ep.probe_due(), "not within the first second");
    }

    #[test]
    fn space_check_on_a_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let opts = DiskOptions { reserve_bytes: 0, reserve_percent: 0, on_low_space: LowSpace::Stop };
        let mut c = SpaceCheck::new("t", tmp.path(), opts);
        assert!(!c.low());
        assert!(c.can_write());
        assert!(!tmp.path().join(PROBE_FILE).exists(), "the probe cleans up");
        let all = DiskOptions { reserve_percent: 100, ..opts };
        let mut c = SpaceCheck::new("t", tmp.path(), all);
        assert!(c.low());
        assert!(!c.can_write());
    }
}
