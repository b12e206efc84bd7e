use std::mem::offset_of;

use sensor_common::{
    EventHeader, EventKind, ExecFixed, TaskInfo,
    exec::{EXEC_FIXED_SIZE, FLAG_ARGS_TRUNCATED},
    path::PATH_DELETED,
    process::ForkEvent,
    syscalls::CredEvent,
};

use super::*;

fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Builds an exec event the way the kernel lays it out.
fn exec_bytes(filename: &[u8], args: &[u8], flags: u32) -> Vec<u8> {
    exec_bytes_full(filename, b"", b"true\0bin\0usr\0", b"tmp\0", args, flags)
}

fn exec_bytes_full(
    filename: &[u8],
    interp: &[u8],
    exe: &[u8],
    cwd: &[u8],
    args: &[u8],
    flags: u32,
) -> Vec<u8> {
    let size = EXEC_FIXED_SIZE + filename.len() + interp.len() + exe.len() + cwd.len() + args.len();
    let mut b = vec![0u8; EXEC_FIXED_SIZE];
    let h = offset_of!(ExecFixed, header);
    put32(&mut b, h + offset_of!(EventHeader, kind), EventKind::Exec as u32);
    put32(&mut b, h + offset_of!(EventHeader, size), size as u32);
    put64(&mut b, h + offset_of!(EventHeader, boot_ns), 123_456_789);
    put32(&mut b, h + offset_of!(EventHeader, tgid), 4242);
    put32(&mut b, h + offset_of!(EventHeader, tid), 4243);
    put32(&mut b, h + offset_of!(EventHeader, cpu), 1);
    put32(&mut b, h + offset_of!(EventHeader, flags), flags);
    let t = offset_of!(ExecFixed, task);
    put32(&mut b, t + offset_of!(TaskInfo, ppid), 1);
    put32(&mut b, t + offset_of!(TaskInfo, uid), 1000);
    put32(&mut b, t + offset_of!(TaskInfo, euid), 0);
    put32(&mut b, t + offset_of!(TaskInfo, auid), 1000);
    put32(&mut b, t + offset_of!(TaskInfo, sessionid), 7);
    put64(&mut b, t + offset_of!(TaskInfo, start_boottime_ns), 99);
    b[t + offset_of!(TaskInfo, comm)..][..4].copy_from_slice(b"true");
    b[t + offset_of!(TaskInfo, tty)..][..4].copy_from_slice(b"pts3");
    let lens = [
        (offset_of!(ExecFixed, filename_len), filename.len()),
        (offset_of!(ExecFixed, interp_len), interp.len()),
        (offset_of!(ExecFixed, exe_len), exe.len()),
        (offset_of!(ExecFixed, cwd_len), cwd.len()),
        (offset_of!(ExecFixed, args_len), args.len()),
        (offset_of!(ExecFixed, args_total_len), args.len()),
    ];
    for (off, len) in lens {
        put32(&mut b, off, len as u32);
    }
    put32(&mut b, offset_of!(ExecFixed, exe_flags), PATH_DELETED);
    for part in [filename, interp, exe, cwd, args] {
        b.extend_from_slice(part);
    }
    b
}

#[test]
fn decodes_exec() {
    let b = exec_bytes(b"/usr/bin/true", b"true\0--flag\0\0last\0", FLAG_ARGS_TRUNCATED);
    let Ok(KernelEvent::Exec(e)) = decode(&b) else { panic!("decodes as exec") };
    assert_eq!(e.header.tgid, 4242);
    assert_eq!(e.header.tid, 4243);
    assert_eq!(e.header.boot_ns, 123_456_789);
    assert_eq!(e.task.ppid, 1);
    assert_eq!(e.task.uid, 1000);
    assert_eq!(e.task.euid, 0);
    assert_eq!(e.task.auid, 1000);
    assert_eq!(e.task.sessionid, 7);
    assert_eq!(&*e.task.comm, b"true");
    assert_eq!(&*e.task.tty, b"pts3");
    assert_eq!(e.filename, b"/usr/bin/true");
    assert_eq!(e.exe.path, b"/usr/bin/true");
    assert!(e.exe.deleted);
    assert_eq!(e.cwd.path, b"/tmp");
    assert_eq!(e.interpreter, None);
    assert_eq!(e.argv, vec![b"true".to_vec(), b"--flag".to_vec(), b"".to_vec(), b"last".to_vec()]);
    assert!(e.args_truncated);
    assert!(!e.args_unreadable);
    assert_eq!(e.exe_id, None, "no inode read");
}

#[test]
fn the_executables_identity_is_in_stats_encoding() {
    let mut b = exec_bytes(b"/usr/bin/true", b"true\0", 0);
    put64(&mut b, offset_of!(ExecFixed, exe_ino), 1_234_567);
    put64(&mut b, offset_of!(ExecFixed, exe_size), 39_256);
    put64(&mut b, offset_of!(ExecFixed, exe_mtime_sec), 1_700_000_000);
    put32(&mut b, offset_of!(ExecFixed, exe_mtime_nsec), 250);
    // Kernel dev_t of 259:3 (an NVMe partition).
    put32(&mut b, offset_of!(ExecFixed, exe_dev), (259 << 20) | 3);
    let Ok(KernelEvent::Exec(e)) = decode(&b) else { panic!("decodes as exec") };
    let id = e.exe_id.expect("identity");
    assert_eq!(id.dev, libc::makedev(259, 3));
    assert_eq!((id.ino, id.size, id.mtime_ns), (1_234_567, 39_256, 1_700_000_000_000_000_250));
    // Size 0: the kernel had no mtime field the programs know; no identity.
    put64(&mut b, offset_of!(ExecFixed, exe_size), 0);
    let Ok(KernelEvent::Exec(e)) = decode(&b) else { panic!("decodes as exec") };
    assert_eq!(e.exe_id, None);
}

#[test]
fn last_argument_without_nul_is_kept() {
    let b = exec_bytes(b"/bin/x", b"x\0cut-her", 0);
    let Ok(KernelEvent::Exec(e)) = decode(&b) else { panic!("decodes as exec") };
    assert_eq!(e.argv, vec![b"x".to_vec(), b"cut-her".to_vec()]);
}

#[test]
fn script_interpreter_is_split_out() {
    let b = exec_bytes_full(b"./s.sh", b"/bin/sh", b"dash\0bin\0usr\0", b"", b"/bin/sh\0./s.sh\0", 0);
    let Ok(KernelEvent::Exec(e)) = decode(&b) else { panic!("decodes as exec") };
    assert_eq!(e.filename, b"./s.sh");
    assert_eq!(e.interpreter.as_deref(), Some(&b"/bin/sh"[..]));
    assert_eq!(e.exe.path, b"/usr/bin/dash");
    assert_eq!(e.cwd.path, b"/");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let b = exec_bytes(b"/usr/bin/true", b"true\0", 0);
    for n in 0..b.len() {
        let err = decode(&b[..n]).expect_err("truncated buffer must not decode");
        assert!(matches!(err, DecodeError::Short { .. } | DecodeError::SizeMismatch { .. }), "{n}: {err}");
    }
}

#[test]
fn lengths_beyond_the_buffer_are_rejected() {
    let mut b = exec_bytes(b"/bin/x", b"x\0", 0);
    put32(&mut b, offset_of!(ExecFixed, args_len), u32::MAX);
    assert!(matches!(decode(&b), Err(DecodeError::FieldOverrun { field: "args", .. })));
    put32(&mut b, offset_of!(ExecFixed, filename_len), 1 << 20);
    assert!(matches!(decode(&b), Err(DecodeError::FieldOverrun { field: "filename", .. })));
}

#[test]
fn unknown_kind_is_rejected() {
    let mut b = exec_bytes(b"/bin/x", b"", 0);
    put32(&mut b, offset_of!(EventHeader, kind), 0xdead);
    assert_eq!(decode(&b), Err(DecodeError::UnknownKind(0xdead)));
}

#[test]
fn garbage_never_panics() {
    // A small deterministic generator (xorshift) so the test is reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = exec_bytes(b"/usr/bin/env", b"env\0A=B\0", 0);
    for _ in 0..20_000 {
        let mut b = valid.clone();
        let flips = (next() % 8) as usize + 1;
        for _ in 0..flips {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        let cut = (next() as usize) % (b.len() + 1);
        let _ = decode(&b[..cut]);
        let _ = decode(&b);
    }
    for len in 0..256 {
        let b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode(&b);
    }
}

/// A fixed-size event of `kind` with random contents but a valid kind and size.
fn fixed_event(kind: EventKind, size: usize, fill: u8) -> Vec<u8> {
    let mut b = vec![fill; size];
    put32(&mut b, offset_of!(EventHeader, kind), kind as u32);
    put32(&mut b, offset_of!(EventHeader, size), size as u32);
    b
}

#[test]
fn every_kind_decodes_and_rejects_truncation() {
    for kind in EventKind::ALL {
        let (size, variable) = fixed_part(kind);
        // Any bytes make a valid fixed part; lengths of a variable part must be zero here.
        let fills: &[u8] = if variable { &[0] } else { &[0, 0x41, 0xff] };
        for &fill in fills {
            let b = fixed_event(kind, size, fill);
            assert_eq!(decode(&b).map(|e| e.kind()), Ok(kind), "{kind:?} fill {fill:#x}");
            // A shorter buffer with a consistent size field is still too short for the kind.
            let mut short = b[..size - 1].to_vec();
            put32(&mut short, offset_of!(EventHeader, size), (size - 1) as u32);
            assert!(matches!(decode(&short), Err(DecodeError::Short { .. })), "{kind:?}");
        }
    }
}

#[test]
fn decoded_fork_and_cred_fields() {
    let mut b = fixed_event(EventKind::Fork, size_of::<ForkEvent>(), 0);
    put32(&mut b, offset_of!(ForkEvent, parent_tgid), 77);
    put32(&mut b, offset_of!(ForkEvent, task) + offset_of!(TaskInfo, ppid), 77);
    let Ok(KernelEvent::Fork(f)) = decode(&b) else { panic!("fork") };
    assert_eq!(f.parent_tgid, 77);
    assert_eq!(f.task.ppid, 77);
    assert!(!f.thread);

    let mut b = fixed_event(EventKind::Cred, size_of::<CredEvent>(), 0);
    put32(&mut b, offset_of!(CredEvent, old), 1000);
    put32(&mut b, offset_of!(CredEvent, new), 0);
    put32(&mut b, offset_of!(CredEvent, syscall_nr), 321);
    let Ok(KernelEvent::Cred(c)) = decode(&b) else { panic!("cred") };
    assert_eq!((c.old.uid, c.new.uid, c.syscall_nr), (1000, 0, 321));
}
