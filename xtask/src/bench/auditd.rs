//! auditd as the peer tracer: installed if missing (Debian package `auditd`), started by the
//! harness with its own config directory and log file, given rules for the same activity the
//! sensor reports, and stopped with its rules removed afterwards (also on error, by `Drop`).

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::util;

/// Key prefix of the harness's rules (`-k sb_*`).
pub const KEY_PREFIX: &str = "sb_";

/// Makes sure auditd and auditctl are installed (idempotent) and that no auditd is running
/// that the harness did not start.
pub fn prepare() -> anyhow::Result<()> {
    if let Some(pid) = find_process("auditd") {
        bail!(
            "auditd is already running (pid {pid}): the bench starts and stops its own. Stop it \
             first (if an interrupted bench left it: `auditctl -D; kill {pid}; auditctl -e 0`), \
             or run with --no-auditd"
        );
    }
    if tool("auditd").is_none() || tool("auditctl").is_none() {
        eprintln!("xtask bench: installing auditd (apt-get)");
        crate::setup::apt_install(&["auditd"]).context("apt-get install auditd")?;
    }
    if tool("auditd").is_none() || tool("auditctl").is_none() {
        bail!("auditd/auditctl not found after installing the auditd package");
    }
    // The package's scripts may have started it (where an init system runs): stop that one.
    if let Some(pid) = find_process("auditd") {
        eprintln!("xtask bench: stopping the auditd the package started (pid {pid})");
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        wait_gone(pid);
    }
    Ok(())
}

/// `/sbin` and `/usr/sbin` may be missing from PATH.
fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn auditctl(args: &[&str]) -> anyhow::Result<String> {
    let bin = tool("auditctl").context("auditctl not found")?;
    util::output(Command::new(bin).args(args))
}

/// The kernel audit status (`auditctl -s`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Status {
    pub enabled: u32,
    pub pid: u32,
    pub lost: u64,
    /// Records queued in the kernel for auditd.
    pub backlog: u64,
}

pub fn status() -> anyhow::Result<Status> {
    let text = auditctl(&["-s"])?;
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
    };
    Ok(Status {
        enabled: field("enabled").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        pid: field("pid").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        lost: field("lost").unwrap_or(0),
        backlog: field("backlog").unwrap_or(0),
    })
}

/// The rules: the activity the sensor reports (exec, opens for writing, unlink, rename, chmod,
/// connect, accept, bind, listen), with Debian's default buffer settings.
pub fn rules() -> String {
    let legacy = std::env::consts::ARCH == "x86_64";
    let mut r = vec![
        "-D".to_owned(),
        "-b 8192".to_owned(),
        "--backlog_wait_time 60000".to_owned(),
        "-f 1".to_owned(),
        "-a always,exit -F arch=b64 -S execve,execveat -k sb_exec".to_owned(),
        // O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
        "-a always,exit -F arch=b64 -S openat -F a2&0x243 -k sb_wopen".to_owned(),
        "-a always,exit -F arch=b64 -S openat2 -k sb_wopen".to_owned(),
        "-a always,exit -F arch=b64 -S unlinkat -k sb_unlink".to_owned(),
        "-a always,exit -F arch=b64 -S renameat,renameat2 -k sb_rename".to_owned(),
        "-a always,exit -F arch=b64 -S fchmod,fchmodat -k sb_chmod".to_owned(),
        "-a always,exit -F arch=b64 -S connect -k sb_connect".to_owned(),
        "-a always,exit -F arch=b64 -S accept,accept4 -k sb_accept".to_owned(),
        "-a always,exit -F arch=b64 -S bind -k sb_bind".to_owned(),
        "-a always,exit -F arch=b64 -S listen -k sb_listen".to_owned(),
    ];
    if legacy {
        r.extend(
            [
                "-a always,exit -F arch=b64 -S open -F a1&0x243 -k sb_wopen",
                "-a always,exit -F arch=b64 -S creat -k sb_wopen",
                "-a always,exit -F arch=b64 -S unlink -k sb_unlink",
                "-a always,exit -F arch=b64 -S rename -k sb_rename",
                "-a always,exit -F arch=b64 -S chmod -k sb_chmod",
            ]
            .map(str::to_owned),
        );
    }
    r.join("\n") + "\n"
}

/// A running auditd started by the harness, with the rules loaded.
pub struct Auditd {
    child: Option<Child>,
    prev_enabled: u32,
    pub log: PathBuf,
    pub kauditd: Option<u32>,
    lost_at_start: u64,
}

impl Auditd {
    /// Starts auditd with a config directory in `dir` (logging to `dir/audit.log`) and loads
    /// the rules.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let prev_enabled = status().map_or(0, |s| s.enabled);
        let log = dir.join("audit.log");
        write_config(dir, &log)?;
        let bin = tool("auditd").context("auditd not found")?;
        let out = fs::File::create(dir.join("auditd.out"))?;
        let child = Command::new(bin)
            .arg("-n")
            .arg("-c")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting auditd")?;
        let pid = child.id();
        let mut me = Self {
            child: Some(child),
            prev_enabled,
            log,
            kauditd: find_process("kauditd"),
            lost_at_start: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while status().map_or(0, |s| s.pid) != pid {
            if Instant::now() > deadline {
                let text = fs::read_to_string(dir.join("auditd.out")).unwrap_or_default();
                bail!("auditd (pid {pid}) did not register with the kernel:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rules_file = dir.join("bench.rules");
        fs::write(&rules_file, rules())?;
        let rules_path = rules_file.to_str().context("rules path is not UTF-8")?;
        auditctl(&["-R", rules_path]).context("loading the audit rules")?;
        me.kauditd = find_process("kauditd");
        me.lost_at_start = status().map_or(0, |s| s.lost);
        Ok(me)
    }

    /// The auditd process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Records queued in the kernel for auditd.
    pub fn backlog(&self) -> u64 {
        status().map_or(0, |s| s.backlog)
    }

    /// Records the kernel dropped since the start (backlog full).
    pub fn lost(&self) -> u64 {
        status().map_or(0, |s| s.lost.saturating_sub(self.lost_at_start))
    }

    /// Removes the rules, stops auditd (it flushes its log) and restores the audit-enabled flag.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let deleted = auditctl(&["-D"]);
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        // It writes out what it has queued first; give it time on a busy disk.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                eprintln!("xtask bench: auditd did not exit 60 s after SIGTERM: killing it");
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // auditd leaves auditing enabled; put the flag back as it was (0: the syscall hooks
        // return at once, so the next rounds are not taxed).
        auditctl(&["-e", &self.prev_enabled.min(1).to_string()])?;
        deleted.map(drop)
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("xtask bench: cleaning up auditd: {e:#}");
        }
    }
}

/// The system's auditd.conf with the log moved to `log`, no rotation, and no log group.
fn write_config(dir: &Path, log: &Path) -> anyhow::Result<()> {
    let system = fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_default();
    let overrides = [
        ("log_file", log.display().to_string()),
        ("log_group", "root".to_owned()),
        ("max_log_file_action", "IGNORE".to_owned()),
        ("max_log_file", "100000".to_owned()),
        ("space_left_action", "IGNORE".to_owned()),
        ("admin_space_left_action", "IGNORE".to_owned()),
        ("disk_full_action", "IGNORE".to_owned()),
        ("plugin_dir", dir.join("plugins.d").display().to_string()),
    ];
    let mut out = String::new();
    for line in system.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        if !overrides.iter().any(|(k, _)| *k == key) {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (k, v) in overrides {
        out.push_str(&format!("{k} = {v}\n"));
    }
    fs::create_dir_all(dir.join("plugins.d"))?;
    let conf = dir.join("auditd.conf");
    fs::write(&conf, out)?;
    // auditd refuses a config that others can write.
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o640))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750))?;
    Ok(())
}

/// Pid of the first process whose comm is `name`.
pub fn find_process(name: &str) -> Option<u32> {
    fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `type=SYSCALL` record of the log: the fields the counts need.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub pid: u32,
    pub ppid: u32,
    pub success: bool,
    pub key: String,
    pub exe: String,
}

/// Parses a `type=SYSCALL` line (raw or enriched format); `None` for other lines.
pub fn parse_syscall(line: &str) -> Option<SyscallRecord> {
    let raw = line.strip_prefix("type=SYSCALL ")?;
    // Enriched logs append the interpreted fields after a 0x1d separator.
    let raw = raw.split('\u{1d}').next().unwrap_or(raw);
    let mut rec = SyscallRecord::default();
    for field in raw.split_ascii_whitespace() {
        let Some((k, v)) = field.split_once('=') else { continue };
        let unq = || v.trim_matches('"').to_owned();
        match k {
            "pid" => rec.pid = v.parse().unwrap_or(0),
            "ppid" => rec.ppid = v.parse().unwrap_or(0),
            "success" => rec.success = v == "yes",
            "key" if v != "(null)" => rec.key = unq(),
            "exe" => rec.exe = unq(),
            _ => {}
        }
    }
    Some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_enriched_syscall_lines() {
        let line = "type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes \
                    exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=100 pid=200 auid=4294967295 uid=0 \
                    comm=\"true\" exe=\"/usr/bin/true\" subj=unconfined key=\"sb_exec\"\u{1d}ARCH=x86_64 \
                    SYSCALL=execve";
        let rec = parse_syscall(line).expect("a syscall record");
        assert_eq!(
            rec,
            SyscallRecord {
                pid: 200,
                ppid: 100,
                success: true,
                key: "sb_exec".into(),
                exe: "/usr/bin/true".into()
            }
        );
        assert_eq!(parse_syscall("type=PATH msg=audit(1:2): item=0 name=\"/x\""), None);
    }

    #[test]
    fn rules_cover_every_class() {
        let r = rules();
        for key in ["exec", "wopen", "unlink", "rename", "chmod", "connect", "accept", "bind", "listen"] {
            assert!(r.contains(&format!("-k {KEY_PREFIX}{key}")), "{key}");
        }
    }
}
