//! File events from system-call tracepoints.
//!
//! One enter program saves the raw arguments of every watched file syscall (by thread); one exit
//! program builds the event with the result. Which argument is what comes from a per-syscall
//! [`FileSyscallSpec`] that userspace writes into a map at load time (syscall numbers differ
//! between architectures).
//!
//! Layout on the wire: [`FileFixed`], then back to back: `dir1_len` bytes of a kernel-walked path
//! (the [`crate::path`] encoding), `name1_len` bytes of the path argument as passed (no NUL),
//! `dir2_len`, `name2_len` the same for a second path (rename, link, symlink), `xattr_len` bytes of
//! an extended attribute name. When `dir1` is the walked path of the target file itself (an
//! opened fd, or an fd argument), `name1_len` is 0 and [`FILE_DIR1_IS_TARGET`] is set.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{
    EventHeader, kind,
    names::{self, KindPrograms},
    task::TaskInfo,
};

/// File operations (stable numbers).
pub mod op {
    pub const OPEN: u32 = 1;
    pub const UNLINK: u32 = 2;
    pub const RMDIR: u32 = 3;
    pub const RENAME: u32 = 4;
    pub const LINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const CHMOD: u32 = 7;
    pub const CHOWN: u32 = 8;
    pub const TRUNCATE: u32 = 9;
    pub const MKNOD: u32 = 10;
    pub const SETXATTR: u32 = 11;
}

/// A spec field that the syscall does not have.
pub const ARG_NONE: u8 = 0xff;

/// Where one file syscall keeps its arguments (indexes into the six syscall args).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FileSyscallSpec {
    /// An [`op`] number.
    pub op: u32,
    /// Dir fd of the first path (ARG_NONE: relative to the cwd).
    pub dfd1: u8,
    /// First path (ARG_NONE: the target is `fd`).
    pub path1: u8,
    pub dfd2: u8,
    pub path2: u8,
    /// An fd that is the target (fchmod, fchown, ftruncate, fsetxattr).
    pub fd: u8,
    /// open flags / at-flags.
    pub flags: u8,
    pub mode: u8,
    /// uid (chown), length (truncate), xattr name pointer (setxattr).
    pub aux: u8,
    /// gid (chown).
    pub aux2: u8,
    /// Non-zero: `flags` holds open(2) flags (read-only opens are filtered).
    pub is_open: u8,
    /// Non-zero: the syscall is `openat2` (flags are in `struct open_how` at `aux`).
    pub is_openat2: u8,
    /// Non-zero: the 32-bit system call with this number is watched too (set by the loader): the
    /// exit must learn whether a call is one before its read-only filter may drop it.
    pub ia32_slot: u8,
}

const _: () = assert!(size_of::<FileSyscallSpec>() == 16);

impl FileSyscallSpec {
    pub const NONE: Self = Self {
        op: 0,
        dfd1: ARG_NONE,
        path1: ARG_NONE,
        dfd2: ARG_NONE,
        path2: ARG_NONE,
        fd: ARG_NONE,
        flags: ARG_NONE,
        mode: ARG_NONE,
        aux: ARG_NONE,
        aux2: ARG_NONE,
        is_open: 0,
        is_openat2: 0,
        ia32_slot: 0,
    };
}

/// Arguments saved at `sys_enter_*` for the exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PendingFile {
    pub nr: u32,
    pub _pad: u32,
    pub args: [u64; 6],
}

const _: () = assert!(size_of::<PendingFile>() == 56);

/// Key of the inode filter map: a file or directory by device and inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct InodeKey {
    /// Kernel `dev_t` (`major << 20 | minor`).
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

const _: () = assert!(size_of::<InodeKey>() == 16 && align_of::<InodeKey>() == 8);

/// Inode filter value bits.
pub const INODE_SENSITIVE: u32 = 1 << 0;
/// Events on this file or below this directory are not reported (e.g. the sensor's output).
pub const INODE_EXCLUDED: u32 = 1 << 1;
/// With include paths configured, only events at or below them (or on sensitive paths) are
/// reported.
pub const INODE_INCLUDED: u32 = 1 << 2;
/// One of the sensor's own files or directories (binary, configuration, keys, rules, outputs,
/// spools, pins, cgroup controls): changes by other processes are reported even where the path
/// is excluded (the outputs are), and the sensor's own changes are not.
pub const INODE_PROTECTED: u32 = 1 << 3;
/// Words of the inode filter's Bloom bitmap (`INODE_BLOOM`): one bit per hash of an inode
/// number, set for every number in `INODE_FILTER`. The programs test the bit of each inode on a
/// file's walk before they look the (dev, ino) key up, and read the device only on a hit: most
/// opens touch no filtered inode, and an array word costs a fraction of a hash lookup.
pub const INODE_BLOOM_WORDS: u32 = 4096;

/// The word index and bit mask of inode number `ino` in `INODE_BLOOM` (Fibonacci hashing: the
/// product's top 18 bits pick one of the 4096 × 64 bits).
#[inline(always)]
pub const fn inode_bloom_slot(ino: u64) -> (u32, u64) {
    let bit = (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 46) as u32;
    (bit >> 6, 1 << (bit & 63))
}

const _: () = assert!(INODE_BLOOM_WORDS * 64 == 1 << 18);

/// How many ancestors of a file are checked against the filter.
pub const INODE_FILTER_DEPTH: u32 = 8;

/// `header.flags`: the target matched a sensitive entry of the inode filter.
pub const FILE_SENSITIVE: u32 = 1 << 0;
/// `header.flags`: `dir1` is the walked path of the target itself (no name part).
pub const FILE_DIR1_IS_TARGET: u32 = 1 << 1;
/// `header.flags`: a path argument could not be read from user memory.
pub const FILE_NAME_UNREADABLE: u32 = 1 << 2;
/// `header.flags`: a path argument was longer than the capture size and was cut.
pub const FILE_NAME_TRUNCATED: u32 = 1 << 3;

/// `header.flags`: the target is at or below a protected path of the sensor.
pub const FILE_PROTECTED: u32 = 1 << 4;

/// Bytes of a path argument captured.
pub const FILE_NAME_MAX: usize = 4096;
/// Bytes one walk may write (a path of PATH_MAX plus one component of slack).
pub const FILE_WALK_LIMIT: u32 = 4096 + 512;
/// Size of the assembly area for the variable part.
pub const FILE_DATA_SIZE: usize = 32 * 1024;

/// Fixed part of a file event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FileFixed {
    pub header: EventHeader,
    pub task: TaskInfo,
    /// Return value: 0, an fd (open) or -errno.
    pub result: i64,
    /// truncate length.
    pub length: u64,
    /// Inode of the target when known (successful open, fd targets).
    pub ino: u64,
    pub dev: u32,
    pub op: u32,
    /// open flags or at-flags.
    pub flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dir1_flags: u32,
    pub dir2_flags: u32,
    pub dir1_len: u32,
    pub name1_len: u32,
    pub dir2_len: u32,
    pub name2_len: u32,
    pub xattr_len: u32,
    /// The system call number.
    pub syscall_nr: u32,
}

/// Size of [`FileFixed`].
pub const FILE_FIXED_SIZE: usize = size_of::<FileFixed>();
const _: () = assert!(FILE_FIXED_SIZE == 248);
const _: () = assert!(FILE_FIXED_SIZE.is_multiple_of(8));

/// A file event as assembled in the kernel.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FileEvent {
    pub fixed: FileFixed,
    pub data: [u8; FILE_DATA_SIZE],
    pub slack: [u8; 8192],
}

const _: () = assert!(size_of::<FileEvent>() == FILE_FIXED_SIZE + FILE_DATA_SIZE + 8192);

impl core::fmt::Debug for FileEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileEvent").field("fixed", &self.fixed).finish_non_exhaustive()
    }
}

impl KindPrograms for kind::File {
    const PROGRAMS: &'static [&'static str] = &[names::PROG_SYS_ENTER_FILE, names::PROG_SYS_EXIT_FILE];
    // The enter program is needed only on the syscall tracepoints (`names::TRACEPOINT_ONLY`).
    const RAW_TWINS: &'static [(&'static str, &'static str, &'static str)] =
        &[(names::PROG_SYS_EXIT_FILE, "raw_exit_file", "fexit_file")];
}
