//! The workloads: storms timed in ns/op, and a mixed load paced at a fixed event rate. Each runs
//! in this process (or its children), so what a tracer delivered for it can be found by pid.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Directory of the write storm (tmpfs).
pub const WRITE_DIR: &str = "/dev/shm/sensor-bench";
/// Directory of the mixed load (tmpfs).
pub const MIXED_DIR: &str = "/dev/shm/sensor-bench-mixed";
/// The file the read-only storm opens.
pub const NOISE_FILE: &str = "/etc/hostname";

/// The timed storms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storm {
    Exec,
    Write,
    Noise,
    Connect,
}

impl Storm {
    pub const ALL: [Self; 4] = [Self::Exec, Self::Write, Self::Noise, Self::Connect];

    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "fork+exec storm (/bin/true)",
            Self::Write => "create+write+close storm on tmpfs",
            Self::Noise => "read-only open storm (noise)",
            Self::Connect => "loopback TCP connect storm",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Write => "write",
            Self::Noise => "noise",
            Self::Connect => "connect",
        }
    }

    /// Events a tracer should deliver per op (the noise must be filtered: none).
    pub fn expected_per_op(self) -> u64 {
        match self {
            Self::Noise => 0,
            Self::Exec | Self::Write | Self::Connect => 1,
        }
    }

    pub fn run(self, dur: Duration) -> anyhow::Result<StormResult> {
        match self {
            Self::Exec => timed(dur, 1, exec_one),
            Self::Write => {
                std::fs::create_dir_all(WRITE_DIR)?;
                let buf = [0x5au8; 4096];
                let mut i = 0u32;
                let res = timed(dur, 64, || {
                    i = (i + 1) % 64;
                    let mut f = std::fs::File::create(Path::new(WRITE_DIR).join(format!("f{i}")))?;
                    f.write_all(&buf)?;
                    Ok(())
                });
                let _ = std::fs::remove_dir_all(WRITE_DIR);
                res
            }
            Self::Noise => {
                let mut buf = [0u8; 256];
                timed(dur, 256, || {
                    let mut f = std::fs::File::open(NOISE_FILE)?;
                    let _ = f.read(&mut buf)?;
                    Ok(())
                })
            }
            Self::Connect => {
                let acceptor = Acceptor::start()?;
                let addr = acceptor.addr;
                let res = timed(dur, 1, || connect_and_reset(addr));
                acceptor.stop(res.as_ref().map_or(0, |r| r.ops));
                res
            }
        }
    }
}

/// Ops done and their mean cost.
#[derive(Debug, Clone, Copy)]
pub struct StormResult {
    pub ops: u64,
    pub ns_per_op: f64,
}

/// Runs `op` in batches of `batch` until `dur` has passed.
fn timed(
    dur: Duration,
    batch: u64,
    mut op: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<StormResult> {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < dur {
        for _ in 0..batch {
            op()?;
        }
        ops += batch;
    }
    let ns = start.elapsed().as_nanos() as f64;
    Ok(StormResult { ops, ns_per_op: ns / ops.max(1) as f64 })
}

/// Connects and closes with a reset, leaving no TIME_WAIT socket behind. Without it, tens of
/// thousands of them pile up across rounds and tracers and the port search of every later
/// connect slows down: the cost then grows with the round order, not the tracer (measured
/// before: 102 µs per connect with no tracer, 660 µs with auditd, 819 µs with the sensor).
fn connect_and_reset(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let s = TcpStream::connect(addr)?;
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &libc::linger { l_onoff: 1, l_linger: 0 },
    )?;
    Ok(())
}

fn exec_one() -> anyhow::Result<()> {
    let status = Command::new("/bin/true").stdin(Stdio::null()).status().context("spawning /bin/true")?;
    if !status.success() {
        bail!("/bin/true failed");
    }
    Ok(())
}

/// A loopback listener that accepts and drops connections on a thread. It polls a
/// non-blocking socket, so stopping it needs no extra connection (which a tracer would report).
struct Acceptor {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl Acceptor {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // A deep accept queue (std listens with 128): when a tracer's threads keep the acceptor
        // off the CPU for a few ms, a full queue drops SYNs and each drop costs the connecting
        // side a 1 s retransmit — a scheduling artifact that swamped the per-connect cost.
        nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(4096)?)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        // The kernel completes handshakes without us: a short nap costs the
                        // connecting side nothing.
                        Err(_) => std::thread::sleep(Duration::from_micros(200)),
                    }
                }
            })
        };
        Ok(Self { addr, stop, accepted, thread })
    }

    /// Waits (up to 2 s) until `connects` connections were accepted, then stops the thread;
    /// returns the connections it accepted.
    fn stop(self, connects: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.accepted.load(Ordering::Relaxed) < connects && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.accepted.load(Ordering::Relaxed)
    }
}

/// What the mixed load did: events a tracer should have reported, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct MixedResult {
    pub file_events: u64,
    pub connects: u64,
    pub accepts: u64,
    pub execs: u64,
    pub elapsed: Duration,
}

impl MixedResult {
    pub fn expected(&self) -> u64 {
        self.file_events + self.connects + self.accepts + self.execs
    }

    pub fn rate(&self) -> f64 {
        self.expected() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `f` on a thread of its own, a task created after the tracer started. The kernel decides
/// when a task is created whether its syscalls are audited, and only once auditing has been
/// enabled in this boot: a task older than the first auditd run (this process's main thread, on
/// a freshly booted machine) is never audited, and auditd would seem to cost nothing.
pub fn on_new_task<T: Send>(f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(f).join().unwrap_or_else(|_| Err(anyhow::anyhow!("the workload thread panicked")))
    })
}

/// Events in one cycle of the mixed load: 240 × (create, chmod, rename, unlink) on tmpfs,
/// 18 loopback connects (each also an accept) and 4 fork+execs.
pub const CYCLE_EVENTS: u64 = 240 * 4 + 18 * 2 + 4;

/// Runs the mixed load at `rate` events/s for `dur`, in 1000-event cycles paced to the clock.
/// `tick` is called about once a second (the caller samples memory there).
pub fn mixed(rate: u64, dur: Duration, mut tick: impl FnMut()) -> anyhow::Result<MixedResult> {
    let dir = Path::new(MIXED_DIR);
    // Kept if it exists (every cycle removes its own files): a tracer filtering by the
    // directory's inode (the soak) keeps seeing the same directory.
    std::fs::create_dir_all(dir)?;
    let acceptor = Acceptor::start()?;
    let cycle_time = Duration::from_secs_f64(CYCLE_EVENTS as f64 / rate.max(1) as f64);
    let mut res = MixedResult::default();
    let start = Instant::now();
    let mut next_tick = Duration::from_secs(1);
    let mut cycle = 0u32;
    while start.elapsed() < dur {
        for i in 0..240 {
            let tmp = dir.join(format!("t{i}"));
            let dst = dir.join(format!("d{i}"));
            std::fs::File::create(&tmp)?.write_all(b"ward report\n")?;
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            std::fs::rename(&tmp, &dst)?;
            std::fs::remove_file(&dst)?;
            res.file_events += 4;
            if i % 60 == 0 {
                exec_one()?;
                res.execs += 1;
            }
            if i % 14 == 0 && i < 14 * 18 {
                connect_and_reset(acceptor.addr)?;
                res.connects += 1;
            }
        }
        cycle += 1;
        // Pace: cycle n must not start before n × cycle_time.
        let due = cycle_time * cycle;
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        if start.elapsed() >= next_tick {
            tick();
            next_tick += Duration::from_secs(1);
        }
    }
    res.elapsed = start.elapsed();
    res.accepts = acceptor.stop(res.connects);
    // The directory stays until the tracer is stopped (`cleanup_mixed`): removing it here
    // would be one more audited unlink.
    Ok(res)
}

/// Removes what the mixed load left (call once the tracer stopped).
pub fn cleanup_mixed() {
    let _ = std::fs::remove_dir_all(MIXED_DIR);
}
