//! 32-bit system calls (`int 0x80`, the i386 table) are reported like 64-bit ones: a 64-bit
//! process (this test) makes its file and network calls through the 32-bit entry, as malware
//! does to slip past sensors that watch the 64-bit table only.
#![cfg(target_arch = "x86_64")]

use std::{ffi::CString, net::TcpListener, os::unix::ffi::OsStrExt as _, path::Path, time::Duration};

use sensor::pipeline::Options;
use sensor_proto::{
    AuditRecord,
    v1::{FileEvent, NetworkEvent, audit_record::Event},
};
use sensor_tests::{TestSensor, scratch_dir};

/// Generous: a QEMU guest emulated in software can take seconds to deliver a record.
const WAIT: Duration = Duration::from_secs(30);

// i386 system call numbers (arch/x86/entry/syscalls/syscall_32.tbl).
const NR_CREAT: u32 = 8;
const NR_UNLINK: u32 = 10;
const NR_RENAME: u32 = 38;
const NR_SOCKETCALL: u32 = 102;
const NR_TRUNCATE64: u32 = 193;
const NR_CHOWN32: u32 = 212;
const NR_CONNECT: u32 = 362;
const SYS_CONNECT: u32 = 3;
const ENOSYS: i32 = 38;

/// A 32-bit system call through `int 0x80`: number and three arguments, result or -errno.
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: u64;
    // SAFETY: the i386 entry reads the registers below; pointer arguments point into the page
    // below 4 GiB this test mapped. `rbx` is LLVM's: swapped in and out around the call.
    unsafe {
        std::arch::asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) u64::from(a) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(b),
            in("rdx") u64::from(c),
        );
    }
    ret as i32
}

/// A page mapped below 4 GiB (`MAP_32BIT`): 32-bit calls take 32-bit pointers.
struct LowPage(*mut u8);

impl LowPage {
    fn new() -> Self {
        // SAFETY: an anonymous private mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap MAP_32BIT");
        Self(p.cast())
    }

    /// Copies `bytes` to `off` and returns their 32-bit address.
    fn put(&self, off: usize, bytes: &[u8]) -> u32 {
        assert!(off + bytes.len() <= 4096);
        // SAFETY: inside the mapped page.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(off), bytes.len()) };
        u32::try_from(self.0 as usize + off).expect("below 4 GiB")
    }

    /// `path` as a C string at `off`.
    fn path(&self, off: usize, path: &Path) -> u32 {
        self.put(off, CString::new(path.as_os_str().as_bytes()).expect("path").as_bytes_with_nul())
    }
}

impl Drop for LowPage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

fn mine(r: &AuditRecord) -> bool {
    r.process.as_ref().is_some_and(|p| p.pid == std::process::id())
}

/// Whether record `r` says its system call came through the 32-bit entry.
fn ia32(r: &AuditRecord) -> bool {
    r.process.as_ref().is_some_and(|p| p.syscall_ia32)
}

/// This process's file record matching `pred`, and whether it is marked as a 32-bit call.
fn wait_file(s: &mut TestSensor, pred: impl Fn(&FileEvent) -> bool) -> (FileEvent, bool) {
    let r = s.wait_for(WAIT, |r| mine(r) && matches!(&r.event, Some(Event::File(f)) if pred(f)));
    match r.map(|r| (ia32(&r), r.event)) {
        Some((ia32, Some(Event::File(f)))) => (f, ia32),
        _ => panic!("no such file record of this process; seen: {:#?}", summary(&s.seen)),
    }
}

/// This process's network record matching `pred`, and whether it is marked as a 32-bit call.
fn wait_net(s: &mut TestSensor, pred: impl Fn(&NetworkEvent) -> bool) -> (NetworkEvent, bool) {
    let r = s.wait_for(WAIT, |r| mine(r) && matches!(&r.event, Some(Event::Network(n)) if pred(n)));
    match r.map(|r| (ia32(&r), r.event)) {
        Some((ia32, Some(Event::Network(n)))) => (n, ia32),
        _ => panic!("no such network record of this process; seen: {:#?}", summary(&s.seen)),
    }
}

fn summary(seen: &[AuditRecord]) -> Vec<String> {
    seen.iter()
        .filter(|r| mine(r) || matches!(r.event, Some(Event::Loss(_))))
        .map(|r| match &r.event {
            Some(Event::File(f)) => format!("file {} {} {} {}", f.syscall, f.op, f.path, f.path2),
            Some(Event::Network(n)) => format!("net {} {} {}", n.syscall, n.op, n.remote_port),
            other => format!("{other:?}").chars().take(120).collect(),
        })
        .collect()
}

#[test]
fn file_and_network_calls_through_int_0x80_are_reported() {
    let mut s = TestSensor::start(Options { ignore_self: false, ..Options::default() });
    let syscalls = s.running.as_ref().expect("running").attached.syscalls;
    assert!(["fentry", "raw syscall dispatcher", "syscall tracepoints"].contains(&syscalls), "{syscalls}");
    if syscalls == "syscall tracepoints" {
        // They never see 32-bit calls (README, "Supported kernels").
        eprintln!("32-bit system calls are not watched through the {syscalls}: nothing to test");
        return;
    }
    let dir = scratch_dir();
    let page = LowPage::new();
    let created = dir.path().join("ia32-created");
    let renamed = dir.path().join("ia32-renamed");
    let (a, b) = (page.path(0, &created), page.path(1024, &renamed));

    let fd = int80(NR_CREAT, a, 0o644, 0);
    if fd == -ENOSYS {
        eprintln!("this kernel has no 32-bit system calls (IA32 emulation off): nothing to watch");
        return;
    }
    assert!(fd >= 0, "creat through int 0x80: {fd}");
    // SAFETY: the fd just created.
    unsafe { libc::close(fd) };
    assert_eq!(int80(NR_RENAME, a, b, 0), 0, "rename");
    // SAFETY: plain libc calls.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(int80(NR_CHOWN32, b, uid, u32::MAX), 0, "chown32");
    // A length above 4 GiB: truncate64 splits it over two registers.
    let length = (1u64 << 32) + 5;
    assert_eq!(int80(NR_TRUNCATE64, b, length as u32, (length >> 32) as u32), 0, "truncate64");
    assert_eq!(int80(NR_UNLINK, b, 0, 0), 0, "unlink");

    let real = |p: &Path| {
        let dir = std::fs::canonicalize(p.parent().expect("parent")).expect("canonical");
        dir.join(p.file_name().expect("name")).to_string_lossy().into_owned()
    };
    let (created, renamed) = (real(&created), real(&renamed));
    let (f, marked) = wait_file(&mut s, |f| f.op == "open" && f.path == created);
    assert_eq!(f.syscall, "creat");
    assert_eq!(f.mode, 0o644);
    assert!(marked, "process.syscall_ia32 on a 32-bit call's record");
    let (f, _) = wait_file(&mut s, |f| f.op == "rename" && f.path == created);
    assert_eq!(f.path2, renamed);
    let (f, _) = wait_file(&mut s, |f| f.op == "chown" && f.path == renamed);
    assert_eq!((f.uid, f.gid), (uid, u32::MAX), "uid set, gid unchanged ({gid} stays)");
    let (f, _) = wait_file(&mut s, |f| f.op == "truncate" && f.path == renamed);
    assert_eq!(f.length, length, "the 64-bit length from its two halves");
    let (_, marked) = wait_file(&mut s, |f| f.op == "unlink" && f.path == renamed);
    assert!(marked);

    // connect through socketcall (its argument array at the very end of the page: only the
    // call's own three words may be read) and through the i386 connect.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let mut sa = [0u8; 16];
    sa[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[4..8].copy_from_slice(&[127, 0, 0, 1]);
    let sa_addr = page.put(2048, &sa);
    let sockets: Vec<_> = (0..2).map(|_| socket2_stream()).collect();
    let words: Vec<u8> =
        [sockets[0].as_raw_fd() as u32, sa_addr, 16].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let args = page.put(4096 - 12, &words);
    assert_eq!(int80(NR_SOCKETCALL, SYS_CONNECT, args, 0), 0, "socketcall(SYS_CONNECT)");
    assert_eq!(int80(NR_CONNECT, sockets[1].as_raw_fd() as u32, sa_addr, 16), 0, "connect");
    // Two records: each socket's, by its local port.
    for socket in &sockets {
        let local = u32::from(socket.local_addr_port());
        let (seen, marked) = wait_net(&mut s, |e| {
            e.op == "connect" && e.remote_port == u32::from(port) && e.result == 0 && e.local_port == local
        });
        assert_eq!(seen.remote_address, "127.0.0.1");
        assert_eq!(seen.syscall, "connect");
        assert!(marked);
    }
    // The listener's own bind went through the 64-bit entry: not marked.
    let (_, marked) = wait_net(&mut s, |e| e.op == "bind" && e.local_port == u32::from(port));
    assert!(!marked, "a 64-bit call's record is not marked");
    drop(listener);
}

/// A TCP socket of this process (not connected).
fn socket2_stream() -> OwnedSocket {
    // SAFETY: plain libc call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    OwnedSocket(fd)
}

struct OwnedSocket(i32);

impl OwnedSocket {
    fn as_raw_fd(&self) -> i32 {
        self.0
    }

    /// The local port once connected.
    fn local_addr_port(&self) -> u16 {
        let mut sa = [0u8; 16];
        let mut len = 16u32;
        // SAFETY: a 16-byte buffer for a sockaddr_in.
        let rc = unsafe { libc::getsockname(self.0, sa.as_mut_ptr().cast(), &raw mut len) };
        assert_eq!(rc, 0, "getsockname");
        u16::from_be_bytes([sa[2], sa[3]])
    }
}

impl Drop for OwnedSocket {
    fn drop(&mut self) {
        // SAFETY: the socket opened in `socket2_stream`.
        unsafe { libc::close(self.0) };
    }
}
