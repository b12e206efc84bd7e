//! Reading processes from `/proc` (or a directory laid out like it) to seed the table.
//! Every read may fail because the process vanished; such processes are skipped.

use std::{
    fs,
    io::Read as _,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use sensor_proto::v1::Process;

use super::UNSET;
use crate::{
    enrich::{
        clock::BootClock,
        guid::{GuidMaker, NS_PER_TICK},
        raw_split, texts,
    },
    text::text,
};

/// Bytes of `/proc/PID/cmdline` kept (the kernel-side capture limit).
const CMDLINE_MAX: usize = 16383;

/// Fields of `/proc/PID/stat` the table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub tty_nr: u32,
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name may contain spaces and parentheses, so the other
/// fields are read after the LAST ')'.
pub(crate) fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let open = bytes.iter().position(|&c| c == b'(')?;
    let close = bytes.iter().rposition(|&c| c == b')')?;
    let comm = text(bytes.get(open + 1..close)?).0;
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state): field N is f[N - 3].
    Some(Stat {
        comm,
        ppid: f.get(1)?.parse().ok()?,
        tty_nr: f.get(4)?.parse::<i64>().ok().map(|v| v as u32)?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

/// Reads and parses `/proc/PID/stat` under `proc_root`.
pub(crate) fn read_stat(proc_root: &Path, pid: u32) -> Option<Stat> {
    parse_stat(&fs::read(proc_root.join(pid.to_string()).join("stat")).ok()?)
}

/// Ids from `/proc/PID/status`: (tgid, [uid, euid], [gid, egid]).
fn parse_status(status: &str) -> Option<(Option<u32>, [u32; 2], [u32; 2])> {
    let mut tgid = None;
    let (mut uids, mut gids) = (None, None);
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut nums = value.split_ascii_whitespace().map(str::parse::<u32>);
        let mut two = || Some([nums.next()?.ok()?, nums.next()?.ok()?]);
        match key {
            "Tgid" => tgid = value.trim().parse().ok(),
            "Uid" => uids = two(),
            "Gid" => gids = two(),
            _ => {}
        }
    }
    Some((tgid, uids?, gids?))
}

/// The terminal name (`pts/3`, `tty1`, `ttyS0`) of a `tty_nr`; empty when none or unknown.
pub(crate) fn tty_name(tty_nr: u32) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => String::new(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => String::new(),
    }
}

/// argv from a NUL-separated cmdline (the final NUL terminates, it does not start an argument).
fn split_cmdline(cmdline: &[u8]) -> Vec<Vec<u8>> {
    if cmdline.is_empty() {
        return Vec::new();
    }
    let body = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

fn read_u32(path: PathBuf) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_link(path: PathBuf) -> Vec<u8> {
    fs::read_link(path).map(|p| p.as_os_str().as_bytes().to_vec()).unwrap_or_default()
}

/// Reads `/proc/PID` of a thread-group leader; `None` if it vanished, is a thread or is
/// unreadable.
pub(crate) fn read_process(
    proc_root: &Path,
    pid: u32,
    guids: &GuidMaker,
    clock: &BootClock,
) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = read_stat(proc_root, pid)?;
    let (tgid, [uid, euid], [gid, egid]) = parse_status(&fs::read_to_string(dir.join("status")).ok()?)?;
    if tgid.is_some_and(|t| t != pid) {
        return None;
    }
    let mut cmdline = Vec::new();
    if let Ok(f) = fs::File::open(dir.join("cmdline")) {
        // a read error mid-way (process exiting) leaves what was read
        let _ = f.take(CMDLINE_MAX as u64 + 1).read_to_end(&mut cmdline);
    }
    let argv_truncated = cmdline.len() > CMDLINE_MAX;
    cmdline.truncate(CMDLINE_MAX);
    let (argv, argv_raw) = texts(&split_cmdline(&cmdline));
    let mut exe = read_link(dir.join("exe"));
    let exe_deleted = exe.ends_with(b" (deleted)");
    if exe_deleted {
        exe.truncate(exe.len() - b" (deleted)".len());
    }
    let (exe, exe_raw) = raw_split(exe);
    let cwd = text(&read_link(dir.join("cwd"))).0;
    let auid = read_u32(dir.join("loginuid")).unwrap_or(UNSET);
    let session_id = read_u32(dir.join("sessionid")).unwrap_or(UNSET);
    // the pid may have been reused while we read: then what we read is a mix
    if read_stat(proc_root, pid)?.start_ticks != stat.start_ticks {
        return None;
    }
    let start_boot_ns = stat.start_ticks.saturating_mul(NS_PER_TICK);
    Some(Process {
        guid: guids.guid(pid, start_boot_ns),
        pid,
        tid: pid,
        ppid: stat.ppid,
        exe,
        exe_raw,
        argv,
        argv_raw,
        argv_truncated,
        cwd,
        uid,
        euid,
        gid,
        egid,
        auid,
        session_id,
        tty: tty_name(stat.tty_nr),
        start_time: Some(clock.wall(start_boot_ns)),
        start_boot_ns,
        comm: stat.comm,
        exe_deleted,
        ..Default::default()
    })
}

/// Reads every numeric entry of `proc_root`: (processes read, entries skipped).
pub(crate) fn read_all(proc_root: &Path, guids: &GuidMaker, clock: &BootClock) -> (Vec<Process>, usize) {
    let (mut procs, mut skipped) = (Vec::new(), 0);
    let Ok(dir) = fs::read_dir(proc_root) else {
        return (procs, skipped);
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        match read_process(proc_root, pid, guids, clock) {
            Some(p) => procs.push(p),
            None => skipped += 1,
        }
    }
    (procs, skipped)
}
