//! The install test (part of `cargo xtask test`, as root): installs the package built by
//! [`super::package`] on this machine with `dpkg -i`, checks what it put where, runs the unit's
//! `ExecStart` by hand with the unit's capability bounding set (no systemd in CI), checks the
//! records that run wrote, purges, and checks that nothing is left.
//!
//! Whatever happens, the package is purged and the sensor stopped before it returns ([`Cleanup`]
//! runs on drop). A `/var/lib/sensor` or `/etc/sensor` that existed before (e.g. from
//! `cargo xtask run`) is moved aside for the test and put back afterwards. Runs of this test
//! from several worktrees at once are serialised with a lock file (dpkg is one per machine).

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use super::{BINARY, CONFIG, MAINTAINER, PACKAGE, RULES_DIR, STATE_DIR, UNIT};
use crate::{setup, util};

/// Paths the package owns outright, or that its maintainer scripts create.
const OWNED: &[&str] = &["/etc/sensor", "/var/lib/sensor", "/usr/share/doc/sensor"];
/// Where deb-systemd-helper records an enabled unit (checked gone after purge).
const ENABLED_LINK: &str = "/etc/systemd/system/multi-user.target.wants/sensor.service";
const HELPER_STATE: &[&str] = &[
    "/var/lib/systemd/deb-systemd-helper-enabled/sensor.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/sensor.service",
    "/var/lib/systemd/deb-systemd-helper-masked/sensor.service",
    "/etc/systemd/system/sensor.service",
];
const LOCK: &str = "/run/lock/sensor-xtask-install-test.lock";

pub fn install_test(ws: &Path, deb: &Path) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the install test runs dpkg -i and must run as root");
    }
    ensure_systemd_analyze()?;
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK)?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the install test")?;
    purge_leftover()?;

    let work = ws.join("target/package/install-test");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let mut cleanup = Cleanup { saved: vec![], sensor: None, purged: false };
    for path in ["/var/lib/sensor", "/etc/sensor"] {
        cleanup.save(Path::new(path))?;
    }

    eprintln!("install test: dpkg -i {}", deb.display());
    util::run(Command::new("dpkg").arg("-i").arg(deb))?;
    let listed = util::output(Command::new("dpkg").args(["-L", PACKAGE]))?;
    check_installed(&listed)?;
    run_exec_start(&work, &mut cleanup)?;

    cleanup.purge();
    check_gone(&listed)?;
    drop(cleanup); // puts back what was moved aside
    eprintln!("install test: passed (installed, checked, ran, purged, nothing left)");
    Ok(())
}

fn ensure_systemd_analyze() -> anyhow::Result<()> {
    if util::output(Command::new("systemd-analyze").arg("--version")).is_ok() {
        return Ok(());
    }
    eprintln!("install test: installing systemd (for systemd-analyze verify)");
    setup::apt_install(&["systemd"]).context("installing systemd-analyze")
}

/// A package named sensor left by an interrupted run of this test is purged; one from
/// elsewhere stops the test.
fn purge_leftover() -> anyhow::Result<()> {
    let Ok(maint) = util::output(Command::new("dpkg-query").args(["-W", "-f=${Maintainer}", PACKAGE])) else {
        return Ok(());
    };
    if maint.trim() != MAINTAINER {
        bail!("a package named {PACKAGE} from {maint:?} is installed; the install test would replace it");
    }
    eprintln!("install test: purging a {PACKAGE} package left by an earlier run");
    util::run(Command::new("dpkg").args(["--purge", PACKAGE]))
}

/// What `dpkg -i` put in place: files, modes, conffile, enabled unit, man pages, the binary.
fn check_installed(listed: &str) -> anyhow::Result<()> {
    let mode = |p: &str| fs::metadata(p).map(|m| (m.permissions().mode() & 0o7777, m.uid(), m.gid()));
    for (path, want) in [
        (BINARY, 0o755),
        (UNIT, 0o644),
        (CONFIG, 0o600),
        (RULES_DIR, 0o755),
        (STATE_DIR, 0o700),
        ("etc/sensor", 0o755),
    ] {
        let path = format!("/{path}");
        let got = mode(&path).with_context(|| format!("{path} is not installed"))?;
        ensure!(
            got == (want, 0, 0),
            "{path}: mode {:o} owner {}:{}, want {want:o} root:root",
            got.0,
            got.1,
            got.2
        );
        ensure!(listed.lines().any(|l| l == path), "{path} is not listed by dpkg -L");
    }
    let conffiles = util::output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))?;
    ensure!(conffiles.contains(&format!("/{CONFIG} ")), "{CONFIG} is not a conffile: {conffiles:?}");
    let shipped = fs::read_to_string(format!("/{CONFIG}"))?;
    ensure!(shipped.contains("[[output]]"), "/{CONFIG} is not the documented example");

    // What the installed binary needs from the system: glibc <= 2.31 symbols, no other library.
    let needs = super::elf::needs(Path::new(&format!("/{BINARY}")))?;
    super::elf::check(&needs)?;
    eprintln!("install test: /{BINARY} needs {:?}, glibc symbols up to {:?}", needs.libraries, needs.glibc);

    let version = util::output(Command::new(format!("/{BINARY}")).arg("--version"))?;
    ensure!(
        version.trim() == format!("sensor {}", env!("CARGO_PKG_VERSION")),
        "sensor --version printed {version:?}"
    );
    util::output(Command::new(format!("/{BINARY}")).args(["config", "check", &format!("/{CONFIG}")]))
        .context("the shipped configuration does not pass `sensor config check`")?;
    // systemd-analyze also checks that ExecStart's binary and the Documentation= pages exist.
    util::run(Command::new("systemd-analyze").args(["verify", &format!("/{UNIT}")]))
        .context("systemd-analyze verify")?;

    // One man page per subcommand, at every level, as `sensor help` lists them.
    let mut pages = vec!["sensor".to_owned()];
    let mut stack = vec![vec![]];
    while let Some(path) = stack.pop() {
        for sub in subcommands(&path)? {
            let mut p = path.clone();
            p.push(sub);
            pages.push(format!("sensor-{}", p.join("-")));
            stack.push(p);
        }
    }
    for page in &pages {
        let file = format!("/usr/share/man/man8/{page}.8.gz");
        ensure!(Path::new(&file).exists(), "no man page {file}");
    }
    let man = util::output(Command::new("zcat").arg("/usr/share/man/man8/sensor-run.8.gz"))?;
    ensure!(man.contains("\\-\\-config") || man.contains("--config"), "sensor-run(8) lacks --config");
    for f in [
        "/usr/share/bash-completion/completions/sensor",
        "/usr/share/zsh/vendor-completions/_sensor",
        "/usr/share/fish/vendor_completions.d/sensor.fish",
    ] {
        let text = fs::read_to_string(f).with_context(|| format!("no completion {f}"))?;
        ensure!(text.contains("records"), "{f} does not complete the subcommands");
    }
    if Path::new("/usr/bin/deb-systemd-helper").exists() {
        ensure!(
            fs::symlink_metadata(ENABLED_LINK).is_ok(),
            "postinst did not enable the unit ({ENABLED_LINK})"
        );
    }
    eprintln!(
        "install test: {} files and directories, {} man pages, unit verified",
        listed.lines().count(),
        pages.len()
    );
    Ok(())
}

/// Subcommand names of `sensor PATH... --help` (the "Commands:" section, without `help`).
fn subcommands(path: &[String]) -> anyhow::Result<Vec<String>> {
    let help = util::output(Command::new(format!("/{BINARY}")).args(path).arg("--help"))?;
    Ok(help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(ToOwned::to_owned)
        .collect())
}

/// Runs the unit's ExecStart as systemd would for the parts that matter here: the capability
/// bounding set and no_new_privs. Then starts processes whose
/// executables only CAP_SYS_PTRACE (a process with more capabilities than the sensor) and
/// CAP_DAC_READ_SEARCH (a binary only its owner may read) let the sensor hash, stops it with
/// SIGTERM, and checks its records.
fn run_exec_start(work: &Path, cleanup: &mut Cleanup) -> anyhow::Result<()> {
    let unit = fs::read_to_string(format!("/{UNIT}"))?;
    let exec_start = unit_value(&unit, "ExecStart").context("the unit has no ExecStart")?;
    let caps = unit_value(&unit, "CapabilityBoundingSet").context("no CapabilityBoundingSet")?;
    ensure!(unit_value(&unit, "NoNewPrivileges") == Some("yes"), "NoNewPrivileges is not yes");
    let bounding: Vec<String> = caps
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();

    if Path::new("/run/systemd/system").exists() {
        // A systemd machine: postinst started the unit. Check it, then stop it for the hand run.
        let active = util::output(Command::new("systemctl").args(["is-active", "sensor.service"]));
        ensure!(active.is_ok_and(|s| s.trim() == "active"), "sensor.service is not active after install");
        util::run(Command::new("systemctl").args(["stop", "sensor.service"]))?;
    }

    // The processes to hash: a root-owned copy of sleep (run with every capability), and one
    // that only its owner (nobody) may read and search.
    let sleep = fs::read("/usr/bin/sleep")?;
    let private = work.join("private");
    fs::create_dir_all(&private)?;
    let nobody_sleep = private.join("sleep-private");
    fs::write(&nobody_sleep, &sleep)?;
    for p in [&nobody_sleep, &private] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o700))?;
        std::os::unix::fs::chown(p, Some(65534), Some(65534))?;
    }
    // The record directory on a tmpfs: this machine's disk may be below the sensor's default
    // free-space reserve (5 %), where it rightly stops writing (shared CI machines are).
    let records_mount = TmpfsMount::new(Path::new(&format!("/{STATE_DIR}/records")))?;
    let log_path = work.join("sensor.log");
    let log = fs::File::create(&log_path)?;
    // Limits (LimitNOFILE, LimitMEMLOCK) are left out: raising them needs CAP_SYS_RESOURCE,
    // which root lacks on this machine kind; systemd sets them as pid 1.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--no-new-privs", "--inh-caps=-all"])
        .arg(format!("--bounding-set=-all,{}", bounding.join(",")))
        .args(exec_start.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    eprintln!("install test: running {cmd:?}");
    let child = cmd.spawn().context("starting the unit's ExecStart")?;
    let pid = child.id();
    cleanup.sensor = Some(child);
    wait_for_log(&log_path, "streaming records", Duration::from_secs(60), cleanup)?;

    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    eprintln!(
        "install test: sensor pid {pid}, {}",
        status.lines().find(|l| l.starts_with("CapEff")).unwrap_or("")
    );
    let mut started = vec![];
    for exe in [Path::new("/usr/bin/sleep"), nobody_sleep.as_path()] {
        let c = Command::new(exe).arg("2").spawn().with_context(|| format!("running {}", exe.display()))?;
        started.push((c, exe.to_owned()));
    }
    let mut pids = vec![];
    for (mut c, exe) in started {
        pids.push((c.id(), exe));
        c.wait()?;
    }
    std::thread::sleep(Duration::from_secs(1));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        let sensor = cleanup.sensor.as_mut().context("sensor")?;
        if let Some(status) = sensor.try_wait()? {
            cleanup.sensor = None;
            break status;
        }
        ensure!(Instant::now() < deadline, "the sensor did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    ensure!(exit.success(), "the sensor exited with {exit} after SIGTERM; its log:\n{log}");
    ensure!(!log.contains(" ERROR "), "the sensor logged errors:\n{log}");

    let records = format!("/{STATE_DIR}/records");
    let mode = fs::metadata(&records)?.permissions().mode() & 0o777;
    ensure!(mode == 0o700, "{records} has mode {mode:o}");
    util::output(Command::new(format!("/{BINARY}")).args(["records", "verify", &records]))
        .context("records verify")?;
    let json = util::output(Command::new(format!("/{BINARY}")).args(["records", "cat", &records]))?;
    drop(records_mount);
    for (pid, exe) in pids {
        let want = util::output(Command::new("sha256sum").arg(&exe))?;
        let want = want.split_whitespace().next().unwrap_or_default();
        let hash = exit_hash(&json, pid).with_context(|| {
            format!("no exit record of {} (pid {pid}); sensor log:\n{log}", exe.display())
        })?;
        ensure!(hash == want, "exit record of {} has exe_sha256 {hash:?}, want {want}", exe.display());
    }
    eprintln!("install test: ExecStart ran with {caps}; records verified, executables hashed");
    Ok(())
}

/// `exe_sha256` of the exit record of `pid` in `records cat` output.
fn exit_hash(json_lines: &str, pid: u32) -> Option<String> {
    json_lines.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|r| {
        let p = r.get("process")?;
        (r.get("exit").is_some() && p.get("pid")?.as_u64()? == u64::from(pid))
            .then(|| p.get("exe_sha256").and_then(|h| h.as_str()).unwrap_or_default().to_owned())
    })
}

fn wait_for_log(path: &Path, text: &str, limit: Duration, cleanup: &mut Cleanup) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let log = fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return Ok(());
        }
        if let Some(status) = cleanup.sensor.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            cleanup.sensor = None;
            bail!("the sensor exited ({status}) before it started:\n{log}");
        }
        ensure!(Instant::now() < deadline, "the sensor did not start within {limit:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of `key=` in a unit file (the last one wins, as in systemd).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::trim).next_back()
}

/// After the purge: nothing the package listed (but shared directories), nothing its scripts
/// made, no trace of the unit in systemd's directories, and dpkg knows no such package.
fn check_gone(listed: &str) -> anyhow::Result<()> {
    let mut left: Vec<String> = listed
        .lines()
        .filter(|p| {
            let path = Path::new(p);
            path.exists() && !path.is_dir() || OWNED.contains(p) && path.exists()
        })
        .map(ToOwned::to_owned)
        .collect();
    left.extend(
        OWNED
            .iter()
            .chain([ENABLED_LINK].iter())
            .chain(HELPER_STATE)
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .map(|p| (*p).to_owned()),
    );
    // The packaged configuration pins the programs; removal unpins them (prerm).
    left.extend(["/sys/fs/bpf/sensor"].into_iter().filter(|p| Path::new(p).exists()).map(ToOwned::to_owned));
    left.sort();
    left.dedup();
    ensure!(left.is_empty(), "left after purge: {left:?}");
    ensure!(
        util::output(Command::new("dpkg-query").args(["-W", PACKAGE])).is_err(),
        "dpkg still knows the package after purge"
    );
    Ok(())
}

/// Stops the sensor, purges the package and puts back what was moved aside, on every path out
/// of the test.
struct Cleanup {
    saved: Vec<(PathBuf, PathBuf)>,
    sensor: Option<Child>,
    purged: bool,
}

impl Cleanup {
    fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let aside = PathBuf::from(format!("{}.xtask-install-test-saved", path.display()));
        ensure!(
            !aside.exists(),
            "{} exists (from an interrupted install test?): look at it, move it back",
            aside.display()
        );
        eprintln!("install test: moving {} aside to {} for the test", path.display(), aside.display());
        fs::rename(path, &aside)?;
        self.saved.push((path.to_owned(), aside));
        Ok(())
    }
}

impl Cleanup {
    /// Stops the sensor if it runs and purges the package (once).
    fn purge(&mut self) {
        if let Some(mut c) = self.sensor.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.purged {
            self.purged = true;
            if let Err(e) = util::run(Command::new("dpkg").args(["--purge", PACKAGE])) {
                eprintln!("install test: dpkg --purge {PACKAGE} failed: {e:#}");
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.purge();
        for (path, aside) in self.saved.drain(..) {
            if path.exists() {
                // Left by a failed purge: keep it beside, restore the original.
                let _ = fs::rename(&path, format!("{}.xtask-install-test-left", path.display()));
            }
            if let Err(e) = fs::rename(&aside, &path) {
                eprintln!("install test: could not move {} back to {}: {e}", aside.display(), path.display());
            }
        }
    }
}

/// A tmpfs mounted for the length of the test (unmounted on drop).
struct TmpfsMount(std::path::PathBuf);

impl TmpfsMount {
    fn new(path: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(path)?;
        util::run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=2g,mode=0700", "tmpfs"]).arg(path))?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_values_and_exit_hashes() {
        let unit = "[Service]\nExecStart=/usr/sbin/sensor run\nLimitNOFILE=1\nLimitNOFILE=2\n";
        assert_eq!(unit_value(unit, "ExecStart"), Some("/usr/sbin/sensor run"));
        assert_eq!(unit_value(unit, "LimitNOFILE"), Some("2"));
        assert_eq!(unit_value(unit, "Exec"), None);
        let lines = "{\"process\":{\"pid\":7,\"exe_sha256\":\"ab\"},\"exec\":{}}\n\
                     {\"process\":{\"pid\":7,\"exe_sha256\":\"cd\"},\"exit\":{}}\n";
        assert_eq!(exit_hash(lines, 7).as_deref(), Some("cd"));
        assert_eq!(exit_hash(lines, 8), None);
    }
}
