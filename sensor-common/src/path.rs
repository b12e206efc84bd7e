//! Paths resolved in the kernel by walking dentries and mounts.
//!
//! Encoding: the components from the leaf up to the root, each followed by a NUL byte (so
//! `/usr/bin/env` is `env\0bin\0usr\0`). An empty encoding is the root `/`. Userspace reverses
//! the components and joins them with `/`. Flags describe what the walk found.

/// The walk stopped before the root (too deep or too long): the path is only a suffix.
pub const PATH_TRUNCATED: u32 = 1 << 0;
/// The file is on an internal mount (pipe, socket, memfd, anon inode): the single component is
/// its name, e.g. `memfd:payload (deleted)`, not a path.
pub const PATH_PSEUDO: u32 = 1 << 1;
/// The inode has no links left (deleted).
pub const PATH_DELETED: u32 = 1 << 2;
/// The mount or superblock is read-only.
pub const PATH_READONLY: u32 = 1 << 3;
/// A kernel read failed during the walk.
pub const PATH_UNREADABLE: u32 = 1 << 4;

/// Most components walked.
pub const PATH_MAX_DEPTH: u32 = 48;
/// Most bytes of one component read.
pub const PATH_NAME_MAX: u32 = 256;
