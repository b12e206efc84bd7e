//! The pipeline benchmark's input: one batch of raw ring-buffer events, laid out exactly as
//! the eBPF programs write them (see the benchmark's header for what a batch holds).

use sensor_common::{
    EventHeader, EventKind, ExecFixed, TaskInfo,
    exec::EXEC_FIXED_SIZE,
    file::{FILE_DIR1_IS_TARGET, FILE_FIXED_SIZE, FileFixed, op as file_op},
    net::{NET_FIXED_SIZE, NetEvent, op as net_op},
    process::{ExitEvent, ForkEvent},
    task::AUDIT_UNSET,
};

/// Processes per batch; each contributes [`EVENTS_PER_PROCESS`] events.
const PROCESSES: u32 = 128;
const EVENTS_PER_PROCESS: u64 = 8;
/// The login: sshd started the user's shell, which starts every process of the batch.
const SSHD_PID: u32 = 8_000;
const SSHD_START_NS: u64 = 1_000_000_000;
const SHELL_PID: u32 = 9_000;
const SHELL_START_NS: u64 = 5_000_000_000;
const SESSION: u32 = 7;

/// Raw bytes of a `repr(C)` event struct.
fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: the event structs are `repr(C)`, `Copy` and laid out without padding (their
    // crate asserts their sizes), so every byte of `*v` is initialised; the slice lives only
    // while `v` is borrowed.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// Leaf-first NUL-separated components, the kernel's path encoding (`/a/b` → `b\0a\0`).
fn kernel_path(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()).rev() {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    out
}

fn fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The executable's identity as an exec event carries it (the kernel's dev_t encoding).
struct ExeId {
    dev: u32,
    ino: u64,
    size: u64,
    mtime_sec: i64,
    mtime_nsec: u32,
}

/// The identity of the file at `path` on this host, as the kernel would read it from the inode
/// at exec time, so the executable digest cache answers as it does for a real exec of a
/// program run before (a made-up identity would miss it on every exec and look at
/// `/proc/PID/exe` each time, which no real event stream does); a made-up identity per path
/// when the file is not there.
fn exe_identity(path: &str) -> ExeId {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(m) => ExeId {
            dev: (libc::major(m.dev()) << 20) | (libc::minor(m.dev()) & 0xf_ffff),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        },
        Err(_) => ExeId {
            dev: (8 << 20) | 1,
            ino: path.bytes().fold(1_000u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
            size: 35_000,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 0,
        },
    }
}

/// The cgroup v2 id (directory inode) of this process, so cgroup paths resolve from the cache.
fn own_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(str::to_owned))?
    });
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let rel = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
    root.and_then(|r| std::fs::metadata(format!("{r}{rel}")).ok()).map_or(0, |m| m.ino())
}

struct Proc {
    pid: u32,
    start_ns: u64,
    ppid: u32,
    parent_start_ns: u64,
    session: u32,
    cgroup_id: u64,
}

impl Proc {
    fn task(&self, comm: &str) -> TaskInfo {
        TaskInfo {
            start_boottime_ns: self.start_ns,
            parent_start_boottime_ns: self.parent_start_ns,
            cgroup_id: self.cgroup_id,
            ppid: self.ppid,
            uid: 1000,
            euid: 1000,
            gid: 1000,
            egid: 1000,
            auid: if self.session == AUDIT_UNSET { AUDIT_UNSET } else { 1000 },
            sessionid: self.session,
            mnt_ns: 4_026_531_841,
            pid_ns: 4_026_531_836,
            net_ns: 4_026_531_840,
            uts_ns: 4_026_531_838,
            ipc_ns: 4_026_531_839,
            cgroup_ns: 4_026_531_835,
            user_ns: 4_026_531_837,
            tty: fixed("pts3"),
            comm: fixed(comm),
            ..TaskInfo::default()
        }
    }

    fn header(&self, kind: EventKind, size: usize, at_ns: u64, flags: u32) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            boot_ns: self.start_ns + at_ns,
            tgid: self.pid,
            tid: self.pid,
            cpu: 1,
            flags,
        }
    }

    fn fork(&self) -> Vec<u8> {
        let size = size_of::<ForkEvent>();
        bytes_of(&ForkEvent {
            header: self.header(EventKind::Fork, size, 0, 0),
            task: self.task("bash"),
            parent_tgid: self.ppid,
            _reserved: 0,
        })
    }

    fn exec(&self) -> Vec<u8> {
        self.exec_of(
            "/usr/bin/python3",
            "/usr/bin/python3.11",
            "/opt/ward-app",
            b"python3\0/opt/ward-app/export.py\0--ward\0north-3\0--since\x002026-11-23\0",
        )
    }

    fn exec_of(&self, filename: &str, exe: &str, cwd: &str, args: &[u8]) -> Vec<u8> {
        let filename = filename.as_bytes();
        let comm = exe.rsplit('/').next().unwrap_or(exe);
        let id = exe_identity(exe);
        let exe = kernel_path(exe);
        let cwd = kernel_path(cwd);
        let size = EXEC_FIXED_SIZE + filename.len() + exe.len() + cwd.len() + args.len();
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX);
        let fixed = ExecFixed {
            header: self.header(EventKind::Exec, size, 200_000, 0),
            task: self.task(comm),
            exe_fs_magic: 0xef53,
            exe_ino: id.ino,
            exe_size: id.size,
            exe_mtime_sec: id.mtime_sec,
            exe_mtime_nsec: id.mtime_nsec,
            exe_dev: id.dev,
            old_pid: self.pid,
            argc: u32::try_from(args.iter().filter(|&&b| b == 0).count()).unwrap_or(0),
            filename_len: len(filename),
            exe_len: len(&exe),
            cwd_len: len(&cwd),
            args_len: len(args),
            args_total_len: len(args),
            ..ExecFixed::default()
        };
        let mut b = bytes_of(&fixed);
        for part in [filename, &exe, &cwd, args] {
            b.extend_from_slice(part);
        }
        b
    }

    /// A file event: `dir1` walked by the kernel (the target itself when `target`), `name1`
    /// as passed; `dir2`/`name2` for renames.
    #[expect(clippy::too_many_arguments, reason = "one call per file op, all fields visible")]
    fn file(
        &self,
        at_ns: u64,
        op: u32,
        syscall_nr: u32,
        target: bool,
        dir1: &str,
        name1: &str,
        path2: Option<(&str, &str)>,
        flags: u32,
        mode: u32,
    ) -> Vec<u8> {
        let dir1 = kernel_path(dir1);
        let (dir2, name2) = path2.map_or((Vec::new(), ""), |(d, n)| (kernel_path(d), n));
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX);
        let size = FILE_FIXED_SIZE + dir1.len() + name1.len() + dir2.len() + name2.len();
        let fixed = FileFixed {
            header: self.header(EventKind::File, size, at_ns, if target { FILE_DIR1_IS_TARGET } else { 0 }),
            task: self.task("python3"),
            result: if op == file_op::OPEN { 3 } else { 0 },
            ino: 1_048_576 + u64::from(self.pid),
            dev: 0x803,
            op,
            flags,
            mode,
            uid: 1000,
            gid: 1000,
            dir1_len: len(&dir1),
            name1_len: len(name1.as_bytes()),
            dir2_len: len(&dir2),
            name2_len: len(name2.as_bytes()),
            syscall_nr,
            ..FileFixed::default()
        };
        let mut b = bytes_of(&fixed);
        for part in [&dir1[..], name1.as_bytes(), &dir2, name2.as_bytes()] {
            b.extend_from_slice(part);
        }
        b
    }

    fn files(&self) -> [Vec<u8>; 4] {
        let tmp = format!("export-{}.tmp", self.pid);
        let out = format!("export-{}.csv", self.pid);
        let dir = "/var/lib/ward-app/exports";
        let creat = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u32;
        [
            self.file(300_000, file_op::OPEN, 257, true, &format!("{dir}/{tmp}"), &tmp, None, creat, 0o644),
            self.file(400_000, file_op::CHMOD, 90, false, dir, &tmp, None, 0, 0o600),
            self.file(500_000, file_op::RENAME, 316, false, dir, &tmp, Some((dir, &out)), 0, 0),
            self.file(600_000, file_op::UNLINK, 263, false, dir, &out, None, 0, 0),
        ]
    }

    fn connect(&self) -> Vec<u8> {
        let mut remote = [0u8; 16];
        remote[..4].copy_from_slice(&[10, 20, 30, 40]);
        let mut local = [0u8; 16];
        local[..4].copy_from_slice(&[10, 20, 1, 7]);
        let ev = NetEvent {
            header: self.header(EventKind::Net, NET_FIXED_SIZE, 700_000, 0),
            task: self.task("python3"),
            op: net_op::CONNECT,
            result: 0,
            family: 2,
            protocol: 6,
            sock_type: 1,
            local_port: 40_000 + u16::try_from(self.pid % 20_000).unwrap_or(0),
            remote_port: 443,
            syscall_nr: 42,
            local_addr: local,
            remote_addr: remote,
            ..NetEvent::default()
        };
        // Sent without payload, as the kernel sends a connect.
        bytes_of(&ev)[..NET_FIXED_SIZE].to_vec()
    }

    fn exit(&self) -> Vec<u8> {
        let size = size_of::<ExitEvent>();
        bytes_of(&ExitEvent {
            header: self.header(EventKind::Exit, size, 900_000, 0),
            task: self.task("python3"),
            exit_code: 0,
            _reserved: 0,
        })
    }
}

/// One batch of raw events, in stream order: the login (sshd, then the user's shell), then the
/// processes the shell starts, each with those two as its ancestors.
pub fn batch() -> Vec<Vec<u8>> {
    let cgroup_id = own_cgroup_id();
    let sshd = Proc {
        pid: SSHD_PID,
        start_ns: SSHD_START_NS,
        ppid: 1,
        parent_start_ns: 0,
        session: AUDIT_UNSET,
        cgroup_id,
    };
    let shell = Proc {
        pid: SHELL_PID,
        start_ns: SHELL_START_NS,
        ppid: SSHD_PID,
        parent_start_ns: SSHD_START_NS,
        session: SESSION,
        cgroup_id,
    };
    let mut out = vec![
        sshd.exec_of("/usr/sbin/sshd", "/usr/sbin/sshd", "/", b"sshd: nurse [priv]\0"),
        shell.exec_of("/bin/bash", "/usr/bin/bash", "/home/nurse", b"-bash\0"),
    ];
    for i in 0..PROCESSES {
        let p = Proc {
            pid: 20_000 + i,
            start_ns: 10_000_000_000 + u64::from(i) * 20_000_000,
            ppid: SHELL_PID,
            parent_start_ns: SHELL_START_NS,
            session: SESSION,
            cgroup_id,
        };
        out.push(p.fork());
        out.push(p.exec());
        out.extend(p.files());
        out.push(p.connect());
        out.push(p.exit());
    }
    debug_assert_eq!(out.len() as u64, 2 + u64::from(PROCESSES) * EVENTS_PER_PROCESS);
    out
}
