//! The floor: **empty** eBPF programs on exactly the tracepoints the sensor attaches.
//!
//! Enabling any syscall tracepoint puts every syscall of every task through the kernel's slow
//! path (`syscall_trace_enter`/`syscall_exit_work`), and every attached program costs a call per
//! hit; no tracepoint-based sensor can go below that. The floor measures it: one program that
//! returns 0 (`r0 = 0; exit`), loaded as a tracepoint program and as a raw-tracepoint program,
//! attached the way the sensor's loader attaches its own (a perf event per tracepoint with the
//! program set on it; `BPF_RAW_TRACEPOINT_OPEN` for raw tracepoints).
//!
//! The list of tracepoints comes from the sensor itself: its loader logs every attachment at
//! debug level (`attached tracepoint=syscalls/sys_enter_openat`, `attached
//! raw_tracepoint=sched_process_exec`), and [`from_sensor_log`] reads them back — so the floor
//! follows the sensor when it attaches more, fewer or other tracepoints.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// One attachment point of the sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// A classic tracepoint: category and name (`syscalls`, `sys_enter_openat`).
    Tracepoint(String, String),
    /// A raw tracepoint by name (`sched_process_exec`).
    Raw(String),
}

impl Hook {
    pub fn label(&self) -> String {
        match self {
            Self::Tracepoint(c, n) => format!("{c}/{n}"),
            Self::Raw(n) => format!("raw:{n}"),
        }
    }
}

/// The hooks named by the sensor's log (`attached` lines of `sensor::loader` at debug level).
pub fn from_sensor_log(log: &str) -> Vec<Hook> {
    let field = |line: &str, key: &str| {
        let v = line.split(&format!(" {key}=")).nth(1)?.split_whitespace().next()?;
        Some(v.trim_matches('"').to_owned())
    };
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains(" attached")) {
        let hook = if let Some(tp) = field(line, "tracepoint") {
            let Some((c, n)) = tp.split_once('/') else { continue };
            Hook::Tracepoint(c.to_owned(), n.to_owned())
        } else if let Some(raw) = field(line, "raw_tracepoint") {
            Hook::Raw(raw)
        } else {
            continue;
        };
        if !out.contains(&hook) {
            out.push(hook);
        }
    }
    out
}

/// Empty programs attached to every hook; detached (every fd closed) on drop.
pub struct Floor {
    /// Perf events and raw-tracepoint fds first, then the two programs.
    _attachments: Vec<OwnedFd>,
    _programs: [OwnedFd; 2],
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
/// `_IOW('$', 8, __u32)` and `_IO('$', 0)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// `r0 = 0; exit`: `BPF_ALU64 | BPF_MOV | BPF_K` with dst r0, imm 0; `BPF_JMP | BPF_EXIT`.
const EMPTY_PROGRAM: [u64; 2] = [0xb7, 0x95];

impl Floor {
    pub fn attach(hooks: &[Hook]) -> anyhow::Result<Self> {
        if hooks.is_empty() {
            bail!("no tracepoints to attach the floor to (did the sensor log its attachments?)");
        }
        let tp_prog = load(BPF_PROG_TYPE_TRACEPOINT).context("loading the empty tracepoint program")?;
        let raw_prog =
            load(BPF_PROG_TYPE_RAW_TRACEPOINT).context("loading the empty raw-tracepoint program")?;
        let mut attachments = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let fd = match hook {
                Hook::Tracepoint(c, n) => attach_tracepoint(&tp_prog, c, n),
                Hook::Raw(n) => attach_raw(&raw_prog, n),
            }
            .with_context(|| format!("attaching the floor to {}", hook.label()))?;
            attachments.push(fd);
        }
        Ok(Self { _attachments: attachments, _programs: [tp_prog, raw_prog] })
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` image of 128 bytes that outlives the
    // call; the kernel reads (and for some commands writes) only within that size.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of::<[u64; 16]>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just returned, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).map_err(std::io::Error::other)?) })
}

/// `BPF_PROG_LOAD` of [`EMPTY_PROGRAM`] as `prog_type`.
fn load(prog_type: u32) -> std::io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = [0u64; 16];
    // prog_type (u32), insn_cnt (u32); insns (u64); license (u64); log fields left zero.
    attr[0] = u64::from(prog_type) | ((EMPTY_PROGRAM.len() as u64) << 32);
    attr[1] = EMPTY_PROGRAM.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    bpf(BPF_PROG_LOAD, &mut attr)
}

fn attach_raw(prog: &OwnedFd, name: &str) -> anyhow::Result<OwnedFd> {
    let name = CString::new(name)?;
    let mut attr = [0u64; 16];
    // raw_tracepoint.name (u64), raw_tracepoint.prog_fd (u32).
    attr[0] = name.as_ptr() as u64;
    attr[1] = u64::try_from(prog.as_raw_fd())?;
    Ok(bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)?)
}

fn attach_tracepoint(prog: &OwnedFd, category: &str, name: &str) -> anyhow::Result<OwnedFd> {
    let id_path = event_dir(category, name).join("id");
    let id: u64 = std::fs::read_to_string(&id_path)
        .with_context(|| format!("reading {}", id_path.display()))?
        .trim()
        .parse()
        .with_context(|| format!("parsing {}", id_path.display()))?;
    // struct perf_event_attr, as aya fills it for a tracepoint: type, size, config,
    // sample_period 1, sample_type RAW, wakeup_events 1.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PERF_TYPE_TRACEPOINT.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&id.to_ne_bytes());
    attr[16..24].copy_from_slice(&1u64.to_ne_bytes());
    attr[24..32].copy_from_slice(&PERF_SAMPLE_RAW.to_ne_bytes());
    attr[48..52].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: perf_event_open reads `size` (128) bytes of the owned buffer.
    let fd = unsafe {
        libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), -1i32, 0i32, -1i32, PERF_FLAG_FD_CLOEXEC)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("perf_event_open");
    }
    // SAFETY: a new fd the kernel just returned, owned by nothing else.
    let event = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd)?) };
    // SAFETY: ioctls on the owned perf event fd with an int argument.
    unsafe {
        if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) != 0 {
            return Err(std::io::Error::last_os_error()).context("PERF_EVENT_IOC_SET_BPF");
        }
        if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) != 0 {
            return Err(std::io::Error::last_os_error()).context("PERF_EVENT_IOC_ENABLE");
        }
    }
    Ok(event)
}

fn event_dir(category: &str, name: &str) -> PathBuf {
    let primary = Path::new("/sys/kernel/tracing/events").join(category).join(name);
    if primary.is_dir() {
        return primary;
    }
    Path::new("/sys/kernel/debug/tracing/events").join(category).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_from_the_loader_log() {
        let log = "\
2026-12-01T18:00:00Z DEBUG sensor::loader: attached prog=\"sched_process_exec\" raw_tracepoint=sched_process_exec
2026-12-01T18:00:00Z DEBUG sensor::loader: attached prog=\"sys_enter_file\" tracepoint=syscalls/sys_enter_openat
2026-12-01T18:00:00Z DEBUG sensor::loader: attached prog=\"sys_exit_file\" tracepoint=syscalls/sys_exit_openat
2026-12-01T18:00:00Z DEBUG sensor::loader: attached prog=\"sys_exit_file\" tracepoint=syscalls/sys_exit_openat
2026-12-01T18:00:00Z  INFO sensor::loader: programs attached elapsed_ms=20
";
        assert_eq!(
            from_sensor_log(log),
            vec![
                Hook::Raw("sched_process_exec".into()),
                Hook::Tracepoint("syscalls".into(), "sys_enter_openat".into()),
                Hook::Tracepoint("syscalls".into(), "sys_exit_openat".into()),
            ]
        );
    }
}
