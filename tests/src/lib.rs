//! Helpers shared by the integration tests: start the real sensor in-process with a channel
//! sink, run processes, and wait for the records they cause.

pub mod actor;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

use sensor::{
    pipeline::{self, Options, Running},
    sinks::{Sink, memory::ChannelSink},
};
use sensor_proto::{AuditRecord, v1::audit_record::Event};

/// A sensor running in this process, and the records it produced.
pub struct TestSensor {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub records: Receiver<AuditRecord>,
    /// Records already taken off the channel by earlier waits.
    pub seen: Vec<AuditRecord>,
}

impl TestSensor {
    /// Starts the sensor with `opts` plus a channel sink (outputs in `opts` are kept).
    /// `SENSOR_TEST_SYSCALL_FENTRY=false` in the environment switches the fentry path off (the
    /// VM matrix runs the system call tests a second time so, where the kernel has both paths).
    pub fn start(mut opts: Options) -> Self {
        if std::env::var("SENSOR_TEST_SYSCALL_FENTRY").is_ok_and(|v| v == "false") {
            opts.syscall_fentry = sensor::options::SyscallFentry::Off;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = channel();
        opts.extra_sinks.push(Box::new(ChannelSink::new(tx)) as Box<dyn Sink>);
        let running = rt.block_on(pipeline::start(opts)).expect("sensor starts (are you root?)");
        Self { rt, running: Some(running), records: rx, seen: Vec::new() }
    }

    /// Default options.
    pub fn start_default() -> Self {
        Self::start(Options::default())
    }

    /// Waits up to `timeout` for a record matching `pred`; returns it.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&AuditRecord) -> bool,
    ) -> Option<AuditRecord> {
        if let Some(r) = self.seen.iter().find(|r| pred(r)) {
            return Some(r.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.records.recv_timeout(left) {
                Ok(r) => {
                    let hit = pred(&r);
                    self.seen.push(r.clone());
                    if hit {
                        return Some(r);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Runs `attempt` (which acts and waits for the records it expects, `None` when one did not
    /// come) and runs it again, at most `tries` times in all, only when it failed and, meanwhile,
    /// the sensor reported that the kernel skipped runs of a `loss_kind` program. A kernel that
    /// runs syscall tracepoint programs preemptibly (7.2) skips a program on a CPU where another
    /// task is inside it, which an emulated guest makes likely: the sensor reports that loss,
    /// and the record cannot come. Without such a loss report a missing record fails as before.
    pub fn retry_on_skip<T>(
        &mut self,
        tries: usize,
        loss_kind: &str,
        mut attempt: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<T> {
        for _ in 0..tries {
            let from = self.seen.len();
            if let Some(v) = attempt(self) {
                return Some(v);
            }
            if lost(&self.seen[from..], loss_kind, Some("kernel_skipped")) == 0 {
                return None;
            }
            eprintln!("the kernel skipped runs of a {loss_kind} program and a record did not come: again");
        }
        None
    }

    /// [`Self::retry_on_skip`] for one action and the one record it causes.
    pub fn act_until(
        &mut self,
        timeout: Duration,
        tries: usize,
        loss_kind: &str,
        mut act: impl FnMut(),
        pred: impl Fn(&AuditRecord) -> bool,
    ) -> Option<AuditRecord> {
        self.retry_on_skip(tries, loss_kind, |s| {
            act();
            s.wait_for(timeout, &pred)
        })
    }

    /// Stops the sensor (final drain and flush) and returns every record it produced.
    pub fn stop(mut self) -> Vec<AuditRecord> {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.stop()).expect("clean stop");
        }
        self.seen.extend(self.records.try_iter());
        self.seen
    }
}

/// The exec record of process `pid`, if `r` is one.
pub fn is_exec_of(r: &AuditRecord, pid: u32) -> bool {
    matches!(r.event, Some(Event::Exec(_))) && r.process.as_ref().is_some_and(|p| p.pid == pid)
}

/// Events of `kind` that loss records account for (with `reason`, when given).
pub fn lost(records: &[AuditRecord], kind: &str, reason: Option<&str>) -> u64 {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Some(Event::Loss(l)) if l.kind == kind && reason.is_none_or(|x| l.reason == x) => Some(l.count),
            _ => None,
        })
        .sum()
}

/// A string no other process on the machine will have in its argv.
pub fn unique(tag: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// The `sensor` binary built next to the test binaries (`cargo xtask test` builds it first).
pub fn sensor_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/sensor
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("sensor");
    assert!(
        bin.exists(),
        "{} missing: run `cargo xtask test` (it builds the workspace first)",
        bin.display()
    );
    bin
}

/// A sensor started by [`spawn_sensor`]: used as its `Child`, and killed when dropped while still
/// running, so a failing test does not leave a sensor tracing the machine under every later
/// test (it happened: a sensor from a failed test ran on for half an hour and slowed a bench run
/// about threefold).
#[derive(Debug)]
pub struct SpawnedSensor(Option<std::process::Child>);

impl SpawnedSensor {
    /// [`std::process::Child::wait_with_output`], which takes the child.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        self.0.take().expect("the child is there until taken").wait_with_output()
    }
}

impl std::ops::Deref for SpawnedSensor {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("the child is there until taken")
    }
}

impl std::ops::DerefMut for SpawnedSensor {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("the child is there until taken")
    }
}

impl Drop for SpawnedSensor {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0
            && matches!(c.try_wait(), Ok(None))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the `sensor` binary with `args` (e.g. `["run", "--output", ...]`) and returns once it
/// says its programs are attached; its stderr is drained in the background from then on.
pub fn spawn_sensor<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> SpawnedSensor {
    use std::io::{BufRead as _, BufReader};
    let mut sensor = std::process::Command::new(sensor_bin())
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sensor");
    let mut stderr = BufReader::new(sensor.stderr.take().expect("stderr"));
    let mut line = String::new();
    // Generous: on the fentry path the kernel may still be detaching the programs of a sensor
    // stopped just before (15 s in the emulated 6.1 guest), and this one attaches after that.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !line.contains("streaming records") {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("read stderr") > 0, "sensor exited early");
        assert!(Instant::now() < deadline, "sensor did not start");
    }
    // The sensor's log goes to the test's captured output: shown when the test fails.
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            eprintln!("sensor: {l}");
        }
    });
    SpawnedSensor(Some(sensor))
}

/// Whether BPF link `id` still exists (`BPF_LINK_GET_FD_BY_ID`).
pub fn link_exists(id: u32) -> bool {
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    let attr = [u64::from(id), 0u64];
    // SAFETY: `bpf(2)` with an attribute block that outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_LINK_GET_FD_BY_ID, attr.as_ptr(), std::mem::size_of_val(&attr))
    };
    if fd >= 0 {
        // SAFETY: a descriptor the kernel just returned, owned here.
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}

/// Waits up to `timeout` until none of BPF links `ids` exists: a stopped sensor leaves its links
/// to the kernel, which detaches them after it (seconds on the fentry path, see
/// `sensor::links`). False on timeout.
pub fn wait_detached(ids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while ids.iter().any(|l| link_exists(*l)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Text of `/proc/self/<what>` (e.g. loginuid), trimmed.
pub fn proc_self(what: &str) -> String {
    std::fs::read_to_string(format!("/proc/self/{what}")).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Seconds since the epoch now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A temporary directory for record files written by the sensor binary: on tmpfs, so the
/// sensor's free-space reserve (by default the larger of 5 % and 256 MiB of the file system)
/// does not depend on how full the machine's disk is.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("sensor-test").tempdir_in("/dev/shm").expect("tempdir in /dev/shm")
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    pub fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(ok.success(), "mounting a tmpfs (are you root?)");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("remount");
        assert!(ok.success(), "remount");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// `bytes` in a private read-only mapping of a new file, not read by this process yet (so not
/// mapped in its page tables); the mapping is left to the process's exit. What a program's
/// static data that it has not used yet looks like to a probe read in the kernel: no page.
pub fn untouched_page(bytes: &[u8]) -> *const u8 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("name");
    std::fs::write(&path, bytes).expect("write");
    let file = std::fs::File::open(&path).expect("open");
    // SAFETY: a new private mapping of a file this process holds open; the kernel picks the
    // address.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(at, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    at.cast()
}
