//! File events → the `file` record: absolute normalised paths, flag and errno names, the
//! sensitive mark.

use std::path::{Component, Path, PathBuf};

use sensor_common::file::op;
use sensor_proto::v1::{FileEvent, audit_record::Event};

use crate::{
    decode::{FileRaw, file::PathArg},
    filter::SensitivePaths,
    text::text_into,
};

use super::set_text;

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

/// The file record of `f`, built in `spare` (the file part of a record written before; see
/// [`super::Spares`]): every field is named, so each is either set here or emptied and nothing of
/// the record it held before carries over.
pub fn file(f: &FileRaw, sensitive: &SensitivePaths, spare: FileEvent) -> Event {
    let FileEvent {
        mut op,
        mut path,
        mut path_raw,
        mut path2,
        mut path2_raw,
        mut syscall,
        result: _,
        mut error,
        mut flags,
        flags_raw: _,
        mode: _,
        mut mode_octal,
        uid: _,
        gid: _,
        length: _,
        mut xattr,
        sensitive: _,
        mut path_source,
        path_truncated: _,
        inode: _,
        device: _,
        mut protected,
    } = spare;
    // Each path is put together in its `_raw` field, checked against the sensitive paths, then
    // split into text and (only when it had to be escaped) the exact bytes.
    path_raw.clear();
    if f.target_walked {
        path_raw.extend_from_slice(f.path1.dir.as_ref().map_or(&[][..], |d| &d.path));
    } else {
        join_into(&f.path1, &mut path_raw);
    }
    set_text(&mut path_source, Some(if f.target_walked { "kernel" } else { "dir+name" }));
    // A symlink's second path is its target text, kept as given.
    path2_raw.clear();
    match f.op {
        op::SYMLINK => path2_raw.extend_from_slice(&f.path2.name),
        op::RENAME | op::LINK => join_into(&f.path2, &mut path2_raw),
        _ => {}
    }
    let truncated = f.name_truncated
        || f.name_unreadable
        || [&f.path1, &f.path2].iter().any(|p| p.dir.as_ref().is_some_and(|d| d.truncated || d.unreadable));
    let is_sensitive =
        f.sensitive || sensitive.matches(&path_raw) || (f.op != op::SYMLINK && sensitive.matches(&path2_raw));
    split_raw(&mut path, &mut path_raw);
    split_raw(&mut path2, &mut path2_raw);
    set_text(&mut op, Some(op_name(f.op)));
    set_text(&mut syscall, crate::file_syscalls::name(f.syscall_nr));
    set_text(&mut error, Some(&error_name(f.result)));
    flags.clear();
    if f.op == op::OPEN {
        open_flags_into(f.flags, &mut flags);
    }
    mode_octal.clear();
    if matches!(f.op, op::OPEN | op::CHMOD | op::MKNOD) {
        use std::fmt::Write as _;
        let _ = write!(mode_octal, "{:o}", f.mode & 0o7777);
    }
    set_text(&mut xattr, Some(&String::from_utf8_lossy(&f.xattr)));
    protected.clear();
    Event::File(FileEvent {
        op,
        path,
        path_raw,
        path2,
        path2_raw,
        syscall,
        result: f.result,
        error,
        flags,
        flags_raw: f.flags,
        mode: f.mode,
        mode_octal,
        uid: f.uid,
        gid: f.gid,
        length: f.length,
        xattr,
        sensitive: is_sensitive,
        path_source,
        path_truncated: truncated,
        inode: f.ino,
        device: f.dev,
        protected,
    })
}

/// `raw` holds a path's bytes: puts its text in `text`, and empties `raw` unless the text had to
/// be escaped (then `raw` keeps the exact bytes).
fn split_raw(text: &mut String, raw: &mut Vec<u8>) {
    if !text_into(raw, text) {
        raw.clear();
    }
}

/// `dir` (walked in the kernel; `/` when the walk was of the root) joined with the name as
/// passed, normalised lexically. An absolute name stands alone.
fn join_into(arg: &PathArg, out: &mut Vec<u8>) {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = arg.dir.as_ref().map_or(&b"/"[..], |d| &d.path);
    // The common case, a plain relative name under a walked (absolute, normalised) directory,
    // is a concatenation: no `Path` building and normalising per record.
    let plain = |p: &[u8]| p.split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..");
    if let Some(rest) = dir.strip_prefix(b"/")
        && (rest.is_empty() || plain(rest))
        && plain(&arg.name)
    {
        out.reserve(dir.len() + 1 + arg.name.len());
        out.extend_from_slice(dir);
        if !rest.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(&arg.name);
        return;
    }
    let name = Path::new(std::ffi::OsStr::from_bytes(&arg.name));
    let mut full =
        if name.is_absolute() { PathBuf::new() } else { PathBuf::from(std::ffi::OsStr::from_bytes(dir)) };
    full.push(name);
    out.extend_from_slice(normalize(&full).as_os_str().as_bytes());
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
    let code = result.checked_neg().and_then(|c| i32::try_from(c).ok()).unwrap_or(0);
    format!("{:?}", nix::errno::Errno::from_raw(code))
}

/// A record's `error` field: the errno name when the call failed (`result` < 0), else empty.
pub fn error_name(result: i64) -> String {
    if result < 0 { errno_name(result) } else { String::new() }
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
#[cfg(test)]
fn open_flags(flags: u32) -> String {
    let mut out = String::new();
    open_flags_into(flags, &mut out);
    out
}

/// Appends open(2) flags as text (`O_WRONLY|O_CREAT`) to `out`.
fn open_flags_into(flags: u32, out: &mut String) {
    let f = i32::from_ne_bytes(flags.to_ne_bytes());
    out.push_str(match f & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    });
    let dir_or_tmp = if f & libc::O_TMPFILE == libc::O_TMPFILE {
        (libc::O_TMPFILE, "O_TMPFILE")
    } else {
        (libc::O_DIRECTORY, "O_DIRECTORY")
    };
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
    ]
    .into_iter()
    .chain([dir_or_tmp])
    {
        if f & bit != 0 {
            out.push('|');
            out.push_str(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::path::from_kernel;

    fn join(arg: &PathArg) -> Vec<u8> {
        let mut out = Vec::new();
        join_into(arg, &mut out);
        out
    }

    fn raw(op: u32, dir: &[u8], name: &[u8]) -> FileRaw {
        FileRaw {
            header: sensor_common::EventHeader::default(),
            task: crate::decode::task::TaskRaw::default(),
            op,
            syscall_nr: 0,
            result: 0,
            flags: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            length: 0,
            ino: 7,
            dev: 8,
            target_walked: false,
            path1: PathArg { dir: Some(from_kernel(dir, 0)), name: name.to_vec() },
            path2: PathArg::default(),
            xattr: Vec::new(),
            sensitive: false,
            protected: false,
            name_truncated: false,
            name_unreadable: false,
        }
    }

    /// A file record built in the file part of an earlier record is exactly the record a fresh
    /// part gives: nothing of the earlier one (escaped paths, flags, errors, xattr) carries over.
    #[test]
    fn a_reused_file_part_keeps_nothing_of_its_last_record() {
        let sensitive = SensitivePaths::default();
        let mut old = raw(op::RENAME, b"tmp\0", b"x\xff");
        old.path2 = PathArg { dir: Some(from_kernel(b"etc\0", 0)), name: b"sh\xfeadow".to_vec() };
        old.result = -13;
        old.xattr = b"security.evil".to_vec();
        old.mode = 0o4755;
        let Event::File(mut spare) = file(&old, &sensitive, FileEvent::default()) else { unreachable!() };
        assert!(!spare.path_raw.is_empty() && !spare.path2_raw.is_empty() && !spare.error.is_empty());
        spare.protected = "config".into();

        for next in [raw(op::UNLINK, b"home\0", b"a"), {
            let mut o = raw(op::OPEN, b"var\0", b"log");
            o.target_walked = true;
            o.flags = (libc::O_WRONLY | libc::O_CREAT) as u32;
            o.mode = 0o644;
            o
        }] {
            let reused = file(&next, &sensitive, spare.clone());
            assert_eq!(reused, file(&next, &sensitive, FileEvent::default()), "{next:?}");
        }
    }

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
        assert_eq!(error_name(-13), "EACCES");
        assert_eq!(error_name(0), "");
        assert_eq!(error_name(7), "");
        assert_eq!(errno_name(i64::MIN), "UnknownErrno");
        assert_eq!(op_name(op::RENAME), "rename");
    }
}
