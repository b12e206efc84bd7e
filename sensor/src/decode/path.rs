//! Kernel path encoding (see `sensor_common::path`) → an absolute path.

use sensor_common::path::{PATH_DELETED, PATH_PSEUDO, PATH_READONLY, PATH_TRUNCATED, PATH_UNREADABLE};

/// A path resolved by the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelPath {
    /// Absolute path bytes (or the pseudo name, e.g. `memfd:x (deleted)`).
    pub path: Vec<u8>,
    pub truncated: bool,
    pub pseudo: bool,
    pub deleted: bool,
    pub readonly: bool,
    pub unreadable: bool,
}

/// Rebuilds `/a/b/c` from the leaf-first component list `c\0b\0a\0`.
pub fn from_kernel(encoded: &[u8], flags: u32) -> KernelPath {
    let encoded = encoded.strip_suffix(&[0]).unwrap_or(encoded);
    let mut path = Vec::with_capacity(encoded.len() + 1);
    let pseudo = flags & PATH_PSEUDO != 0;
    if pseudo {
        path.extend_from_slice(encoded);
    } else if encoded.is_empty() {
        path.push(b'/');
    } else {
        for comp in encoded.rsplit(|&c| c == 0) {
            path.push(b'/');
            path.extend_from_slice(comp);
        }
    }
    KernelPath {
        path,
        truncated: flags & PATH_TRUNCATED != 0,
        pseudo,
        deleted: flags & PATH_DELETED != 0,
        readonly: flags & PATH_READONLY != 0,
        unreadable: flags & PATH_UNREADABLE != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_paths() {
        assert_eq!(from_kernel(b"env\0bin\0usr\0", 0).path, b"/usr/bin/env");
        assert_eq!(from_kernel(b"", 0).path, b"/");
        assert_eq!(from_kernel(b"tmp\0", 0).path, b"/tmp");
        let m = from_kernel(b"memfd:x (deleted)\0", PATH_PSEUDO | PATH_DELETED);
        assert_eq!(m.path, b"memfd:x (deleted)");
        assert!(m.pseudo && m.deleted);
        // Hostile names survive: newline and invalid UTF-8 in a component.
        assert_eq!(from_kernel(b"a\nb\xff\0d\0", 0).path, b"/d/a\nb\xff");
    }
}
