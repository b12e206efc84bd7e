//! File events → the `file` record: absolute normalised paths, flag and errno names, the
//! sensitive mark.

use std::path::{Component, Path, PathBuf};

use sensor_common::file::op;
use sensor_proto::v1::{FileEvent, audit_record::Event};

use crate::{
    decode::{FileRaw, file::PathArg},
    filter::SensitivePaths,
};

use super::raw_split;

/// Name of a file op number.
pub fn op_name(op: u32) -> &'static str {
    match op {
        op::OPEN => "open",
        op::UNLINK => "unlink",
        op::RMDIR => "rmdir",
        op::RENAME => "rename",
        op::LINK => "link",
        op::SYMLINK => "symlink",
        op::CHMOD => "chmod",
        op::CHOWN => "chown",
        op::TRUNCATE => "truncate",
        op::MKNOD => "mknod",
        op::SETXATTR => "setxattr",
        _ => "unknown",
    }
}

pub fn file(f: &FileRaw, sensitive: &SensitivePaths) -> Event {
    let (path, path_source) = if f.target_walked {
        (f.path1.dir.as_ref().map(|d| d.path.clone()).unwrap_or_default(), "kernel")
    } else {
        (join(&f.path1), "dir+name")
    };
    // A symlink's second path is its target text, kept as given.
    let path2 = match f.op {
        op::SYMLINK => f.path2.name.clone(),
        op::RENAME | op::LINK => join(&f.path2),
        _ => Vec::new(),
    };
    let truncated = f.name_truncated
        || f.name_unreadable
        || [&f.path1, &f.path2].iter().any(|p| p.dir.as_ref().is_some_and(|d| d.truncated || d.unreadable));
    let is_sensitive =
        f.sensitive || sensitive.matches(&path) || (f.op != op::SYMLINK && sensitive.matches(&path2));
    let (path, path_raw) = raw_split(path);
    let (path2, path2_raw) = raw_split(path2);
    Event::File(FileEvent {
        op: op_name(f.op).to_owned(),
        path,
        path_raw,
        path2,
        path2_raw,
        syscall: crate::file_syscalls::name(f.syscall_nr).unwrap_or_default().to_owned(),
        result: f.result,
        error: if f.result < 0 { errno_name(f.result) } else { String::new() },
        flags: if f.op == op::OPEN { open_flags(f.flags) } else { String::new() },
        flags_raw: f.flags,
        mode: f.mode,
        mode_octal: if matches!(f.op, op::OPEN | op::CHMOD | op::MKNOD) {
            format!("{:o}", f.mode & 0o7777)
        } else {
            String::new()
        },
        uid: f.uid,
        gid: f.gid,
        length: f.length,
        xattr: String::from_utf8_lossy(&f.xattr).into_owned(),
        sensitive: is_sensitive,
        path_source: path_source.to_owned(),
        path_truncated: truncated,
        inode: f.ino,
        device: f.dev,
        protected: String::new(),
    })
}

/// `dir` (walked in the kernel; `/` when the walk was of the root) joined with the name as
/// passed, normalised lexically. An absolute name stands alone.
fn join(arg: &PathArg) -> Vec<u8> {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let dir = arg.dir.as_ref().map_or(&b"/"[..], |d| &d.path);
    // The common case, a plain relative name under a walked (absolute, normalised) directory,
    // is a concatenation: no `Path` building and normalising per record.
    let plain = |p: &[u8]| p.split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..");
    if let Some(rest) = dir.strip_prefix(b"/")
        && (rest.is_empty() || plain(rest))
        && plain(&arg.name)
    {
        let mut out = Vec::with_capacity(dir.len() + 1 + arg.name.len());
        out.extend_from_slice(dir);
        if !rest.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(&arg.name);
        return out;
    }
    let name = Path::new(std::ffi::OsStr::from_bytes(&arg.name));
    let mut full =
        if name.is_absolute() { PathBuf::new() } else { PathBuf::from(std::ffi::OsStr::from_bytes(dir)) };
    full.push(name);
    normalize(&full).into_os_string().into_vec()
}

/// Removes `.` and resolves `..` lexically (symlinks are not followed; the kernel-walked part
/// already has them resolved).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// The errno name of a negative system call result (`-13` → `EACCES`).
pub fn errno_name(result: i64) -> String {
    let code = i32::try_from(-result).unwrap_or(0);
    format!("{:?}", nix::errno::Errno::from_raw(code))
}

/// True when the event put a new file at a sensitive path (a new inode the kernel's filter does
/// not know yet): created, renamed or linked there.
pub fn replaces_sensitive(f: &FileEvent) -> bool {
    f.sensitive
        && f.result >= 0
        && match f.op.as_str() {
            "rename" | "link" | "symlink" | "mknod" => true,
            "open" => i32::from_ne_bytes(f.flags_raw.to_ne_bytes()) & libc::O_CREAT != 0,
            _ => false,
        }
}

/// open(2) flags as text.
pub fn open_flags(flags: u32) -> String {
    let f = i32::from_ne_bytes(flags.to_ne_bytes());
    let mut parts = vec![match f & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }];
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
    ] {
        if f & bit != 0 {
            parts.push(name);
        }
    }
    if f & libc::O_TMPFILE == libc::O_TMPFILE {
        parts.push("O_TMPFILE");
    } else if f & libc::O_DIRECTORY != 0 {
        parts.push("O_DIRECTORY");
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::path::from_kernel;

    #[test]
    fn joins_and_normalises() {
        let arg = |dir: Option<&[u8]>, name: &[u8]| PathArg {
            dir: dir.map(|d| from_kernel(d, 0)),
            name: name.to_vec(),
        };
        assert_eq!(join(&arg(Some(b"tmp\0"), b"a/../b/./c")), b"/tmp/b/c");
        assert_eq!(join(&arg(Some(b""), b"etc/x")), b"/etc/x");
        assert_eq!(join(&arg(None, b"etc/x")), b"/etc/x");
        assert_eq!(join(&arg(Some(b"tmp\0"), b"/etc/shadow")), b"/etc/shadow");
        assert_eq!(join(&arg(Some(b"a\0"), b"../../..")), b"/");
        assert_eq!(join(&arg(Some(b"d\xff\0"), b"x\ny")), b"/d\xff/x\ny");
        // The concatenation fast path and the normalising path agree.
        for name in [&b"a"[..], b"a/b", b"a//b", b"a/", b"./a", b"a/.", b"..", b"a/../b", b"/abs/x"] {
            for dir in [Some(&b"tmp\0x\0"[..]), Some(b"x\0\0y\0"), Some(b""), None] {
                let a = arg(dir, name);
                let slow = {
                    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
                    let base = a.dir.as_ref().map_or(&b"/"[..], |d| &d.path);
                    let n = Path::new(std::ffi::OsStr::from_bytes(name));
                    let full = if n.is_absolute() {
                        n.to_path_buf()
                    } else {
                        Path::new(std::ffi::OsStr::from_bytes(base)).join(n)
                    };
                    normalize(&full).into_os_string().into_vec()
                };
                assert_eq!(join(&a), slow, "dir {dir:?} name {name:?}");
            }
        }
    }

    #[test]
    fn names_flags_and_errors() {
        assert_eq!(
            open_flags((libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u32),
            "O_WRONLY|O_CREAT|O_TRUNC"
        );
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(errno_name(-13), "EACCES");
        assert_eq!(op_name(op::RENAME), "rename");
    }
}
