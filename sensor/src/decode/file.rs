//! File events (see `sensor_common::file` for the layout).

use sensor_common::{
    EventHeader,
    file::{FILE_DIR1_IS_TARGET, FILE_NAME_TRUNCATED, FILE_NAME_UNREADABLE, FILE_SENSITIVE, FileFixed},
};

use super::{
    DecodeError, fixed,
    path::{KernelPath, from_kernel},
    task::TaskRaw,
};

/// One path argument: the kernel-walked directory (or the target itself) and the name as passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathArg {
    pub dir: Option<KernelPath>,
    pub name: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub op: u32,
    pub syscall_nr: u32,
    pub result: i64,
    pub flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub length: u64,
    pub ino: u64,
    pub dev: u32,
    /// `path1.dir` is the target's own path.
    pub target_walked: bool,
    pub path1: PathArg,
    pub path2: PathArg,
    pub xattr: Vec<u8>,
    pub sensitive: bool,
    /// The kernel found the target at or below one of the sensor's protected paths.
    pub protected: bool,
    pub name_truncated: bool,
    pub name_unreadable: bool,
}

pub fn decode(header: EventHeader, buf: &[u8]) -> Result<FileRaw, DecodeError> {
    let (e, mut tail) = fixed::<FileFixed>(buf)?;
    let dir1 = tail.take(e.dir1_len, "dir1")?;
    let name1 = tail.take(e.name1_len, "name1")?;
    let dir2 = tail.take(e.dir2_len, "dir2")?;
    let name2 = tail.take(e.name2_len, "name2")?;
    let xattr = tail.take(e.xattr_len, "xattr")?;
    let dir = |bytes: &[u8], flags: u32, present: bool| present.then(|| from_kernel(bytes, flags));
    let target_walked = header.flags & FILE_DIR1_IS_TARGET != 0;
    Ok(FileRaw {
        task: (&e.task).into(),
        op: e.op,
        syscall_nr: e.syscall_nr,
        result: e.result,
        flags: e.flags,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        length: e.length,
        ino: e.ino,
        dev: e.dev,
        target_walked,
        path1: PathArg {
            dir: dir(dir1, e.dir1_flags, target_walked || !dir1.is_empty()),
            name: name1.to_vec(),
        },
        path2: PathArg { dir: dir(dir2, e.dir2_flags, !dir2.is_empty()), name: name2.to_vec() },
        xattr: xattr.to_vec(),
        sensitive: header.flags & FILE_SENSITIVE != 0,
        protected: header.flags & sensor_common::file::FILE_PROTECTED != 0,
        name_truncated: header.flags & FILE_NAME_TRUNCATED != 0,
        name_unreadable: header.flags & FILE_NAME_UNREADABLE != 0,
        header,
    })
}
