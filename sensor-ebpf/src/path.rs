//! Absolute paths from (dentry, vfsmount) pairs: a bounded walk up the dentry tree that crosses
//! mount points through `struct mount`, like the kernel's `prepend_path`. Output encoding and
//! flags: see `sensor_common::path`.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::path::{
    PATH_DELETED, PATH_MAX_DEPTH, PATH_NAME_MAX, PATH_PSEUDO, PATH_READONLY, PATH_TRUNCATED, PATH_UNREADABLE,
};

use crate::{
    kernel::{opaque, read, read_or, read_ptr, read_z},
    off,
};

const MNT_READONLY: i32 = 0x40;
const SB_RDONLY: u64 = 1;

/// What a walk produced.
#[derive(Clone, Copy)]
pub struct Walked {
    pub len: u32,
    pub flags: u32,
    pub fs_magic: u64,
}

/// Walks from `dentry` on `vfsmnt` to the root, writing components leaf-first at `out`.
/// Writes go to `out + (len & MASK)` and stop (TRUNCATED) once `len + PATH_NAME_MAX` would pass
/// `LIMIT`; `out` must have `MASK + 1 + PATH_NAME_MAX` writable bytes, and `LIMIT <= MASK + 1`.
///
/// # Safety
/// `dentry`/`vfsmnt` must be kernel pointers (checked by the probe-read helpers); `out` must be
/// writable map memory of the stated size.
#[inline(always)]
pub unsafe fn walk<const MASK: u32, const LIMIT: u32>(
    dentry: *const u8,
    vfsmnt: *const u8,
    out: *mut u8,
) -> Walked {
    let mut w = Walked { len: 0, flags: 0, fs_magic: 0 };
    // SAFETY: probe reads only; writes stay within `out`'s documented size (masked offsets).
    unsafe {
        leaf_facts(dentry, vfsmnt, &mut w);
        let mount_mnt = off!(mount_mnt);
        let mut dentry = dentry;
        let mut mnt = vfsmnt.wrapping_sub(mount_mnt as usize);
        let Ok(mut mnt_root) = read_ptr(vfsmnt, off!(vfsmount_root)) else {
            w.flags |= PATH_UNREADABLE;
            return w;
        };
        let mut done = false;
        // A disconnected dentry on an internal mount (pipe, socket, memfd): its name is all
        // there is. Checked before the loop, so the loop body has no iteration-0 case.
        let parent: *const u8 = read_z(dentry, off!(dentry_parent));
        if dentry == parent && dentry != mnt_root {
            w.flags |= PATH_PSEUDO;
            push_name::<MASK, LIMIT>(dentry, out, &mut w);
            return w;
        }
        for _ in 0..PATH_MAX_DEPTH {
            // The verifier tracks `len` precisely (it bounds the write offset), so every path
            // through earlier iterations reaches this loop head with its own range and nothing
            // is pruned: verifiers before ~6.3 then exceed their 1M-instruction budget on the
            // exec program (5.10, 6.1). An opaque copy makes every iteration start from one
            // state; the bounds checks below hold for any value (an impossible failed copy
            // reads 0, which restarts the path). Reads do not branch on their
            // outcome (a failed one reads as NULL), so each iteration has few paths.
            w.len = opaque(w.len);
            let parent: *const u8 = read_z(dentry, off!(dentry_parent));
            if parent.is_null() {
                w.flags |= PATH_UNREADABLE;
                done = true;
                break;
            }
            if dentry == mnt_root || dentry == parent {
                // At the root of this mount: continue from its mount point in the parent.
                let mnt_parent: *const u8 = read_z(mnt, off!(mount_parent));
                if mnt_parent.is_null() || mnt_parent == mnt {
                    done = true; // the namespace's root
                    break;
                }
                let mp: *const u8 = read_z(mnt, off!(mount_mountpoint));
                let root: *const u8 =
                    read_z(mnt_parent.wrapping_add(mount_mnt as usize), off!(vfsmount_root));
                if mp.is_null() || root.is_null() {
                    w.flags |= PATH_UNREADABLE;
                    done = true;
                    break;
                }
                dentry = mp;
                mnt = mnt_parent;
                mnt_root = root;
                continue;
            }
            if !push_name::<MASK, LIMIT>(dentry, out, &mut w) {
                break;
            }
            dentry = parent;
        }
        if !done {
            w.flags |= PATH_TRUNCATED;
        }
    }
    w
}

/// Appends the dentry's name and a NUL. False (and TRUNCATED) when there is no room.
///
/// # Safety
/// As for [`walk`].
#[inline(always)]
unsafe fn push_name<const MASK: u32, const LIMIT: u32>(
    dentry: *const u8,
    out: *mut u8,
    w: &mut Walked,
) -> bool {
    if w.len + PATH_NAME_MAX > LIMIT {
        w.flags |= PATH_TRUNCATED;
        return false;
    }
    // SAFETY: probe reads; the destination offset is masked with MASK and at most
    // PATH_NAME_MAX bytes are written.
    unsafe {
        let Ok(name) = read_ptr(dentry, off!(dentry_name_ptr)) else {
            w.flags |= PATH_UNREADABLE;
            return false;
        };
        let dst = out.wrapping_add((w.len & MASK) as usize);
        let n = bpf_probe_read_kernel_str(dst.cast(), PATH_NAME_MAX, name.cast());
        if n <= 0 {
            w.flags |= PATH_UNREADABLE;
            return false;
        }
        // n counts the NUL, which separates components in the encoding.
        w.len += (n as u32) & (PATH_NAME_MAX * 2 - 1);
    }
    true
}

/// `dentry->d_parent` and `dentry->d_inode` (NULL when unreadable). Every kernel so far has
/// `d_parent`, `d_name` (16 bytes), `d_inode` in a row: then one probe read of the four words
/// instead of two reads (the filter walk runs this for every level of every opened file). The
/// condition is a load-time constant (frozen read-only globals): the verifier keeps one side.
#[inline(always)]
pub fn parent_and_inode(dentry: *const u8) -> (*const u8, *const u8) {
    // SAFETY: probe reads (zero when they fault).
    unsafe {
        if off!(dentry_inode) == off!(dentry_parent) + 24 {
            let w: [*const u8; 4] = read_z(dentry, off!(dentry_parent));
            (w[0], w[3])
        } else {
            (read_z(dentry, off!(dentry_parent)), read_z(dentry, off!(dentry_inode)))
        }
    }
}

/// Deleted / read-only / filesystem magic of the leaf.
///
/// # Safety
/// As for [`walk`].
#[inline(always)]
unsafe fn leaf_facts(dentry: *const u8, vfsmnt: *const u8, w: &mut Walked) {
    // SAFETY: probe reads only.
    unsafe {
        if let Ok(inode) = read_ptr(dentry, off!(dentry_inode))
            && read::<u32>(inode, off!(inode_nlink)) == Ok(0)
        {
            w.flags |= PATH_DELETED;
        }
        if read_or::<i32>(vfsmnt, off!(vfsmount_flags), 0) & MNT_READONLY != 0 {
            w.flags |= PATH_READONLY;
        }
        if let Ok(sb) = read_ptr(dentry, off!(dentry_sb)) {
            w.fs_magic = read_or(sb, off!(sb_magic), 0);
            if read_or::<u64>(sb, off!(sb_flags), 0) & SB_RDONLY != 0 {
                w.flags |= PATH_READONLY;
            }
        }
    }
}
