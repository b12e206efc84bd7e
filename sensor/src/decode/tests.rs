use std::mem::offset_of;

use sensor_common::{
    EventHeader, EventKind, ExecFixed,
    exec::{EXEC_FIXED_SIZE, FLAG_ARGS_TRUNCATED},
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
    let size = EXEC_FIXED_SIZE + filename.len() + args.len();
    let mut b = vec![0u8; EXEC_FIXED_SIZE];
    let h = offset_of!(ExecFixed, header);
    put32(
        &mut b,
        h + offset_of!(EventHeader, kind),
        EventKind::Exec as u32,
    );
    put32(&mut b, h + offset_of!(EventHeader, size), size as u32);
    put64(&mut b, h + offset_of!(EventHeader, boot_ns), 123_456_789);
    put32(&mut b, h + offset_of!(EventHeader, tgid), 4242);
    put32(&mut b, h + offset_of!(EventHeader, tid), 4243);
    put32(&mut b, h + offset_of!(EventHeader, cpu), 1);
    put32(&mut b, h + offset_of!(EventHeader, flags), flags);
    put32(&mut b, offset_of!(ExecFixed, ppid), 1);
    put32(&mut b, offset_of!(ExecFixed, uid), 1000);
    put32(&mut b, offset_of!(ExecFixed, euid), 0);
    put32(&mut b, offset_of!(ExecFixed, auid), 1000);
    put32(&mut b, offset_of!(ExecFixed, sessionid), 7);
    put64(&mut b, offset_of!(ExecFixed, start_boottime_ns), 99);
    b[offset_of!(ExecFixed, comm)..][..4].copy_from_slice(b"true");
    put32(
        &mut b,
        offset_of!(ExecFixed, filename_len),
        filename.len() as u32,
    );
    put32(&mut b, offset_of!(ExecFixed, args_len), args.len() as u32);
    put32(
        &mut b,
        offset_of!(ExecFixed, args_total_len),
        args.len() as u32,
    );
    b.extend_from_slice(filename);
    b.extend_from_slice(args);
    b
}

#[test]
fn decodes_exec() {
    let b = exec_bytes(
        b"/usr/bin/true",
        b"true\0--flag\0\0last\0",
        FLAG_ARGS_TRUNCATED,
    );
    let KernelEvent::Exec(e) = decode(&b).expect("decodes");
    assert_eq!(e.header.tgid, 4242);
    assert_eq!(e.header.tid, 4243);
    assert_eq!(e.header.boot_ns, 123_456_789);
    assert_eq!(e.ppid, 1);
    assert_eq!(e.uid, 1000);
    assert_eq!(e.euid, 0);
    assert_eq!(e.auid, 1000);
    assert_eq!(e.sessionid, 7);
    assert_eq!(e.comm, b"true");
    assert_eq!(e.filename, b"/usr/bin/true");
    assert_eq!(
        e.argv,
        vec![
            b"true".to_vec(),
            b"--flag".to_vec(),
            b"".to_vec(),
            b"last".to_vec()
        ]
    );
    assert!(e.args_truncated);
    assert!(!e.args_unreadable);
}

#[test]
fn last_argument_without_nul_is_kept() {
    let b = exec_bytes(b"/bin/x", b"x\0cut-her", 0);
    let KernelEvent::Exec(e) = decode(&b).expect("decodes");
    assert_eq!(e.argv, vec![b"x".to_vec(), b"cut-her".to_vec()]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let b = exec_bytes(b"/usr/bin/true", b"true\0", 0);
    for n in 0..b.len() {
        let err = decode(&b[..n]).expect_err("truncated buffer must not decode");
        assert!(
            matches!(
                err,
                DecodeError::Short { .. } | DecodeError::SizeMismatch { .. }
            ),
            "{n}: {err}"
        );
    }
}

#[test]
fn lengths_beyond_the_buffer_are_rejected() {
    let mut b = exec_bytes(b"/bin/x", b"x\0", 0);
    put32(&mut b, offset_of!(ExecFixed, args_len), u32::MAX);
    assert!(matches!(
        decode(&b),
        Err(DecodeError::FieldOverrun { field: "args", .. })
    ));
    put32(&mut b, offset_of!(ExecFixed, filename_len), 1 << 20);
    assert!(matches!(
        decode(&b),
        Err(DecodeError::FieldOverrun {
            field: "filename",
            ..
        })
    ));
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
