//! One sensor per directory: an exclusive `flock` on the directory itself (a record directory,
//! a pin directory), held until the process ends, whatever way it ends. A second sensor is told
//! who holds it: the kernel lists each lock's owner in `/proc/locks`.

use std::{fs::File, os::unix::fs::MetadataExt as _, path::Path};

use nix::fcntl::{Flock, FlockArg};

/// A held directory lock.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another sensor ({}) is using {what} {dir}", pid_text(*holder))]
    Held { what: &'static str, dir: String, holder: Option<u32> },
    #[error("locking {what} {dir}: {source}")]
    Io { what: &'static str, dir: String, source: std::io::Error },
}

/// `pid 4242`, or `pid unknown`.
pub fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"))
}

/// Locks `dir` (which must exist) for this process; `what` names it in errors ("record
/// directory").
pub fn lock_dir(dir: &Path, what: &'static str) -> Result<DirLock, LockError> {
    let io = |source| LockError::Io { what, dir: dir.display().to_string(), source };
    let file = File::open(dir).map_err(io)?;
    let ino = file.metadata().map_err(io)?.ino();
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(DirLock { _lock: lock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held {
            what,
            dir: dir.display().to_string(),
            holder: std::fs::read_to_string("/proc/locks").ok().and_then(|t| holder(&t, ino)),
        }),
        Err((_, e)) => Err(io(e.into())),
    }
}

/// The pid holding a `FLOCK` on inode `ino`, from the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF`).
fn holder(proc_locks: &str, ino: u64) -> Option<u32> {
    proc_locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (kind, pid, dev_ino) = (f.get(1)?, f.get(4)?, f.get(5)?);
        let lock_ino: u64 = dev_ino.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && lock_ino == ino).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_dir(dir.path(), "record directory").expect("first");
        let err = lock_dir(dir.path(), "record directory").expect_err("second");
        let me = std::process::id();
        assert_eq!(
            err.to_string(),
            format!("another sensor (pid {me}) is using record directory {}", dir.path().display())
        );
        drop(first);
        lock_dir(dir.path(), "record directory").expect("free again");
    }

    #[test]
    fn proc_locks_lines() {
        let t =
            "1: POSIX  ADVISORY  WRITE 11 00:19:500 0 EOF\n2: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF\n";
        assert_eq!(holder(t, 1234), Some(4242));
        assert_eq!(holder(t, 500), None);
        assert_eq!(holder("garbage\n", 1), None);
    }
}
