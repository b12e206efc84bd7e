//! The file system calls watched, and where each keeps its arguments (the `FILE_SYSCALLS` map).
//! Numbers come from the `syscalls` crate for the architecture the sensor is built for; a
//! syscall this architecture does not have (e.g. `open` on arm64) is skipped.

use std::str::FromStr as _;

use sensor_common::file::{ARG_NONE, FileSyscallSpec, op};

const N: u8 = ARG_NONE;

/// Builds a spec: (op, dfd1, path1, dfd2, path2, fd, flags, mode, aux, aux2).
#[expect(clippy::too_many_arguments, reason = "a table row")]
const fn spec(
    op: u32,
    dfd1: u8,
    path1: u8,
    dfd2: u8,
    path2: u8,
    fd: u8,
    flags: u8,
    mode: u8,
    aux: u8,
    aux2: u8,
) -> FileSyscallSpec {
    FileSyscallSpec {
        op,
        dfd1,
        path1,
        dfd2,
        path2,
        fd,
        flags,
        mode,
        aux,
        aux2,
        is_open: 0,
        is_openat2: 0,
        ia32_slot: 0,
    }
}

const fn open(mut s: FileSyscallSpec, openat2: bool) -> FileSyscallSpec {
    s.is_open = 1;
    s.is_openat2 = openat2 as u8;
    s
}

/// Every watched syscall by name. Argument indexes follow the syscall prototypes.
pub const TABLE: [(&str, FileSyscallSpec); 29] = [
    ("openat", open(spec(op::OPEN, 0, 1, N, N, N, 2, 3, N, N), false)),
    ("openat2", open(spec(op::OPEN, 0, 1, N, N, N, N, N, 2, N), true)),
    ("open", open(spec(op::OPEN, N, 0, N, N, N, 1, 2, N, N), false)),
    // creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode): flags are implied.
    ("creat", open(spec(op::OPEN, N, 0, N, N, N, N, 1, N, N), false)),
    ("unlinkat", spec(op::UNLINK, 0, 1, N, N, N, 2, N, N, N)),
    ("unlink", spec(op::UNLINK, N, 0, N, N, N, N, N, N, N)),
    ("rmdir", spec(op::RMDIR, N, 0, N, N, N, N, N, N, N)),
    ("renameat2", spec(op::RENAME, 0, 1, 2, 3, N, 4, N, N, N)),
    ("renameat", spec(op::RENAME, 0, 1, 2, 3, N, N, N, N, N)),
    ("rename", spec(op::RENAME, N, 0, N, 1, N, N, N, N, N)),
    ("linkat", spec(op::LINK, 0, 1, 2, 3, N, 4, N, N, N)),
    ("link", spec(op::LINK, N, 0, N, 1, N, N, N, N, N)),
    // symlink(target, linkpath): path 1 is the link created, path 2 the target text.
    ("symlinkat", spec(op::SYMLINK, 1, 2, N, 0, N, N, N, N, N)),
    ("symlink", spec(op::SYMLINK, N, 1, N, 0, N, N, N, N, N)),
    ("fchmodat", spec(op::CHMOD, 0, 1, N, N, N, N, 2, N, N)),
    ("fchmodat2", spec(op::CHMOD, 0, 1, N, N, N, 3, 2, N, N)),
    ("fchmod", spec(op::CHMOD, N, N, N, N, 0, N, 1, N, N)),
    ("chmod", spec(op::CHMOD, N, 0, N, N, N, N, 1, N, N)),
    ("fchownat", spec(op::CHOWN, 0, 1, N, N, N, 4, N, 2, 3)),
    ("fchown", spec(op::CHOWN, N, N, N, N, 0, N, N, 1, 2)),
    ("chown", spec(op::CHOWN, N, 0, N, N, N, N, N, 1, 2)),
    ("lchown", spec(op::CHOWN, N, 0, N, N, N, N, N, 1, 2)),
    ("truncate", spec(op::TRUNCATE, N, 0, N, N, N, N, N, 1, N)),
    ("ftruncate", spec(op::TRUNCATE, N, N, N, N, 0, N, N, 1, N)),
    ("mknodat", spec(op::MKNOD, 0, 1, N, N, N, N, 2, N, N)),
    ("mknod", spec(op::MKNOD, N, 0, N, N, N, N, 1, N, N)),
    ("setxattr", spec(op::SETXATTR, N, 0, N, N, N, 4, N, 1, N)),
    ("lsetxattr", spec(op::SETXATTR, N, 0, N, N, N, 4, N, 1, N)),
    ("fsetxattr", spec(op::SETXATTR, N, N, N, N, 0, 4, N, 1, N)),
];

/// (syscall number, name, spec) for the syscalls this architecture has.
pub fn for_this_arch() -> Vec<(u32, &'static str, FileSyscallSpec)> {
    TABLE
        .iter()
        .filter_map(|(name, spec)| {
            let nr = syscalls::Sysno::from_str(name).ok()?.id();
            Some((u32::try_from(nr).ok()?, *name, *spec))
        })
        .collect()
}

/// Name of a system call number on this architecture.
pub fn name(nr: u32) -> Option<&'static str> {
    syscalls::Sysno::new(nr as usize).map(|s| s.name())
}

/// The watched network syscalls: (name, op, sockaddr arg, buffer arg, length arg, msghdr arg).
/// sendmmsg's `struct mmsghdr *` starts with the first message's `user_msghdr` (glibc's stub
/// resolver sends its A and AAAA queries with one sendmmsg).
pub const NET_TABLE: [(&str, sensor_common::net::NetSyscallSpec); 8] = {
    use sensor_common::net::{NetSyscallSpec as S, op};
    [
        ("connect", S { op: op::CONNECT, addr: 1, buf: N, len: N, msghdr: N }),
        ("accept", S { op: op::ACCEPT, addr: N, buf: N, len: N, msghdr: N }),
        ("accept4", S { op: op::ACCEPT, addr: N, buf: N, len: N, msghdr: N }),
        ("bind", S { op: op::BIND, addr: 1, buf: N, len: N, msghdr: N }),
        ("listen", S { op: op::LISTEN, addr: N, buf: N, len: N, msghdr: N }),
        ("sendto", S { op: op::SEND, addr: 4, buf: 1, len: 2, msghdr: N }),
        ("sendmsg", S { op: op::SEND, addr: N, buf: N, len: N, msghdr: 1 }),
        ("sendmmsg", S { op: op::SEND, addr: N, buf: N, len: N, msghdr: 1 }),
    ]
};

/// (number, name, spec) of the network syscalls this architecture has.
pub fn net_for_this_arch() -> Vec<(u32, &'static str, sensor_common::net::NetSyscallSpec)> {
    NET_TABLE
        .iter()
        .filter_map(|(name, spec)| {
            let nr = syscalls::Sysno::from_str(name).ok()?.id();
            Some((u32::try_from(nr).ok()?, *name, *spec))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_resolves_on_this_arch() {
        let specs = for_this_arch();
        assert!(specs.iter().any(|(_, n, _)| *n == "openat"));
        assert!(specs.iter().any(|(_, n, _)| *n == "renameat2"));
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(specs.len(), TABLE.len());
            assert_eq!(name(105), Some("setuid"));
            assert!(specs.iter().any(|(nr, n, _)| *n == "openat" && *nr == 257));
        }
    }

    /// The programs index the tables by number and read `op` 0 as "not watched".
    #[test]
    fn every_entry_fits_the_tables_and_names_an_op() {
        for (nr, name, spec) in for_this_arch() {
            assert!(nr < sensor_common::syscalls::SYSCALL_SLOTS, "{name} ({nr})");
            assert_ne!(spec.op, 0, "{name}");
        }
        for (nr, name, spec) in net_for_this_arch() {
            assert!(nr < sensor_common::syscalls::SYSCALL_SLOTS, "{name} ({nr})");
            assert_ne!(spec.op, 0, "{name}");
        }
    }
}
