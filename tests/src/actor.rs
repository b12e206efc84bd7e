//! Child processes that act for a test: the test binary started again, doing one thing the
//! sensor must record (a fileless exec, a ptrace attach, a BPF program load).
//!
//! The test process is the sensor, whose own actions are not recorded, so the act must come
//! from another process; these children need nothing but the test binary itself, so they run
//! the same in the minimal guests of `cargo xtask vm-test` (no interpreter there) as on a host.
//!
//! A test binary that uses them has one test, named [`ACTOR_TEST`], whose body is
//! [`act_if_asked`]: run normally it returns at once; run by [`actor`] it does the act and exits.

use std::{
    ffi::{CString, c_long},
    io::Error,
    process::Command,
};

/// The name of the test that [`actor`] runs in the child.
pub const ACTOR_TEST: &str = "child_actor";
const ACT: &str = "SENSOR_TEST_ACT";

/// An act a child can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `memfd_create` with flags the kernel refuses (named "refused"), then a memfd named
    /// "payload" holding `/bin/true`, executed through `/proc/self/fd` with argv
    /// `["payload", ARG]`.
    MemfdExec,
    /// `ptrace(PTRACE_ATTACH)` to the process ARG, wait for it to stop, detach; then load a
    /// two-instruction socket filter named "sensor_probe". Prints the attach result and the
    /// program's fd.
    PtraceAndBpf,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Self::MemfdExec => "memfd-exec",
            Self::PtraceAndBpf => "ptrace-bpf",
        }
    }
}

/// This test binary started as a child that does `act` with `arg`.
pub fn actor(act: Act, arg: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current exe"));
    c.args(["--exact", ACTOR_TEST, "--nocapture", "--test-threads=1", "--quiet"])
        .env(ACT, format!("{}:{arg}", act.name()));
    c
}

/// In a child started by [`actor`]: does its act (and exits where the act is an exec).
/// Elsewhere: nothing.
pub fn act_if_asked() {
    let Ok(asked) = std::env::var(ACT) else { return };
    let (name, arg) = asked.split_once(':').expect("ACT is NAME:ARG");
    match [Act::MemfdExec, Act::PtraceAndBpf].into_iter().find(|a| a.name() == name) {
        Some(Act::MemfdExec) => memfd_exec(arg),
        Some(Act::PtraceAndBpf) => ptrace_and_bpf(arg.parse().expect("pid")),
        None => panic!("unknown act {name}"),
    }
}

fn memfd_exec(tag: &str) {
    // The kernel refuses the flags before it reads the name, so the name is one this process
    // has written (on its heap), as any program's would be that built it; a name the kernel
    // never reads is only readable by the sensor in memory the process has touched.
    let refused = CString::new("refused").expect("name");
    // SAFETY: plain system calls on a NUL-terminated name.
    let refused = unsafe { libc::memfd_create(refused.as_ptr(), 0x7f00_0000) };
    assert_eq!(refused, -1, "the kernel took invalid memfd flags");
    // The name is in a page this process has not touched, as a string constant of a program
    // that just started may be: a file mapped and not read. The probe read of the call's enter
    // finds no page there (it cannot fault one in); the kernel faults it in to read the name.
    let name = crate::untouched_page(b"payload\0").cast::<libc::c_char>();
    // SAFETY: as above; `name` is a mapping that holds a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(name.cast(), 0) };
    assert!(fd >= 0, "memfd_create: {}", Error::last_os_error());
    let bin = std::fs::read("/bin/true").expect("read /bin/true");
    let mut done = 0;
    while done < bin.len() {
        // SAFETY: writes from a live buffer within its length.
        let n = unsafe { libc::write(fd, bin[done..].as_ptr().cast(), bin.len() - done) };
        assert!(n > 0, "write to the memfd: {}", Error::last_os_error());
        done += n.unsigned_abs();
    }
    let path = CString::new(format!("/proc/self/fd/{fd}")).expect("path");
    let argv = [CString::new("payload").expect("arg"), CString::new(tag).expect("tag")];
    let argv: Vec<*const libc::c_char> =
        argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: a NUL-terminated path and a NULL-terminated argv of live strings.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    panic!("exec of the memfd: {}", Error::last_os_error());
}

fn ptrace_and_bpf(target: libc::pid_t) {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace requests on another process; no memory is passed.
    let attached = unsafe { libc::ptrace(libc::PTRACE_ATTACH, target, null, null) };
    let attach_err = Error::last_os_error();
    if attached == 0 {
        let mut status = 0;
        // SAFETY: waits for the tracee's stop into a local.
        unsafe { libc::waitpid(target, &raw mut status, libc::__WALL) };
        // SAFETY: as the attach.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, target, null, null) };
    }
    // BPF_PROG_LOAD of `r0 = 0; exit` as a socket filter, named "sensor_probe".
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // prog_type: socket filter
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes()); // insn_cnt
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..60].copy_from_slice(b"sensor_probe"); // prog_name (after log and version fields)
    // SAFETY: bpf(BPF_PROG_LOAD) with a zeroed attribute block of the size passed, whose
    // pointers point at live locals.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5 as c_long, attr.as_ptr(), attr.len()) };
    let bpf_err = Error::last_os_error();
    println!("attach={attached} ({attach_err}) bpf_fd={fd} ({bpf_err})");
}
