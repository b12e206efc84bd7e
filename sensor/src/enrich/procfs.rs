//! Facts read from `/proc/PID` for a process that is still alive and still the same process
//! (same start time as the kernel event), so a reused pid never lends its facts to another.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _, path::PathBuf};

use super::guid::NS_PER_TICK;

#[derive(Debug, Clone, Default)]
pub struct LiveView {
    pub exe: Option<Vec<u8>>,
}

/// Start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let close = stat.iter().rposition(|&c| c == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    // After ')' come fields 3.. ; field 22 is index 19 here.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Reads the exe of `pid` if it is still the process that started at `start_boot_ns`.
pub fn live_view(pid: u32, start_boot_ns: u64) -> Option<LiveView> {
    if start_ticks(pid)? != start_boot_ns / NS_PER_TICK {
        return None;
    }
    let link = |what: &str| {
        std::fs::read_link(PathBuf::from(format!("/proc/{pid}/{what}")))
            .ok()
            .map(|p| OsStr::as_bytes(p.as_os_str()).to_vec())
    };
    let view = LiveView { exe: link("exe") };
    // Re-check: the pid could have been reused between the reads.
    (start_ticks(pid)? == start_boot_ns / NS_PER_TICK).then_some(view)
}

/// The mount namespace the sensor runs in (inode of `/proc/self/ns/mnt`), 0 when unknown.
pub fn own_mnt_ns() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/mnt").map_or(0, |m| m.ino())
}

/// Whether the executable at `exe` is gone: for exit records on kernels whose exit tracepoint
/// runs after the address space (and with it the executable's file) was released (before
/// 6.16), where the kernel cannot say. Only meaningful for a path in the sensor's own mount
/// namespace; a binary deleted and replaced at the same path is not seen.
pub fn exe_gone(exe: &str) -> bool {
    exe.starts_with('/')
        && matches!(std::fs::symlink_metadata(exe), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exe_gone_only_for_a_missing_absolute_path() {
        assert!(exe_gone("/nonexistent-dir-for-sensor-test/doomed"));
        assert!(!exe_gone("/proc/self/exe"));
        assert!(!exe_gone(""));
        assert!(!exe_gone("memfd:payload (deleted)"));
        assert_ne!(own_mnt_ns(), 0);
    }

    #[test]
    fn own_start_ticks_parse() {
        let ticks = start_ticks(std::process::id()).expect("own stat");
        assert!(ticks > 0);
        let view = live_view(std::process::id(), ticks * NS_PER_TICK).expect("same process");
        assert!(view.exe.is_some());
        assert!(live_view(std::process::id(), (ticks + 5) * NS_PER_TICK).is_none());
    }
}
