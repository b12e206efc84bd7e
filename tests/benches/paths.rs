//! The system call paths side by side: storms timed with no sensor, with the sensor on the
//! fentry path and on the path it falls back to (`syscall_fentry = false`), interleaved in
//! rounds. `cargo xtask vm-test --bench` runs it in the QEMU guests, whose kernels take the
//! fentry path (the development host refuses tracing programs); emulation makes absolute times
//! meaningless, so it prints each path's cost as a ratio to no sensor within the same run.
//!
//! Run directly (as root): `cargo bench -p sensor-tests --bench paths [-- SECS ROUNDS]`.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use sensor::options::SyscallFentry;
use sensor_tests::TestSensor;

/// A storm: one system call pattern repeated.
#[derive(Clone, Copy)]
enum Storm {
    /// `getppid`: a call no collector watches, which only the syscall slow path makes dearer.
    Unwatched,
    /// Read-only open+read+close of a non-sensitive file: dropped in the kernel.
    Noise,
    /// Create+write+close on tmpfs: a record per op.
    Write,
    /// Loopback TCP connect+close: a record per op.
    Connect,
}

impl Storm {
    const ALL: [Self; 4] = [Self::Unwatched, Self::Noise, Self::Write, Self::Connect];

    fn name(self) -> &'static str {
        match self {
            Self::Unwatched => "getppid (unwatched)",
            Self::Noise => "read-only open (noise)",
            Self::Write => "create+write+close",
            Self::Connect => "loopback connect",
        }
    }

    /// Mean nanoseconds per op over `dur`.
    fn run(self, dur: Duration, listener: &TcpListener) -> f64 {
        let dir = std::env::temp_dir().join(format!("paths-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench dir");
        let addr = listener.local_addr().expect("listener address");
        let buf = [0x5au8; 512];
        let mut small = [0u8; 64];
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < dur {
            for i in 0..16u64 {
                match self {
                    // SAFETY: a system call without arguments.
                    Self::Unwatched => drop(unsafe { libc::getppid() }),
                    Self::Noise => {
                        let mut f = std::fs::File::open("/etc/hostname").expect("open");
                        let _ = f.read(&mut small);
                    }
                    Self::Write => {
                        let mut f = std::fs::File::create(dir.join(format!("f{i}"))).expect("create");
                        f.write_all(&buf).expect("write");
                    }
                    Self::Connect => {
                        let s = TcpStream::connect(addr).expect("connect");
                        // Reset rather than TIME_WAIT: thousands of those slow every later connect.
                        let reset = libc::linger { l_onoff: 1, l_linger: 0 };
                        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &reset)
                            .expect("linger");
                        let _ = listener.accept();
                    }
                }
            }
            ops += 16;
        }
        let ns = start.elapsed().as_nanos() as f64 / ops as f64;
        let _ = std::fs::remove_dir_all(&dir);
        ns
    }
}

/// A configuration a round runs: no sensor, or the sensor with the fentry path on or off.
#[derive(Clone, Copy)]
enum Tracer {
    None,
    Sensor(SyscallFentry),
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let dur = Duration::from_secs_f64(secs);
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let tracers = [Tracer::None, Tracer::Sensor(SyscallFentry::Auto), Tracer::Sensor(SyscallFentry::Off)];
    // [storm][tracer] → samples (ns/op).
    let mut samples = vec![vec![Vec::new(); tracers.len()]; Storm::ALL.len()];
    let mut paths = vec![String::new(); tracers.len()];
    // Start (to attached) and stop (to released) per tracer, seconds.
    let mut starts = vec![Vec::new(); tracers.len()];
    let mut stops = vec![Vec::new(); tracers.len()];
    // Stop to the last link detached by the kernel, seconds.
    let mut detached = vec![Vec::new(); tracers.len()];
    for round in 0..rounds {
        for (t, tracer) in tracers.iter().enumerate() {
            let sensor = match tracer {
                Tracer::None => None,
                Tracer::Sensor(fentry) => {
                    let opts = sensor::pipeline::Options { syscall_fentry: *fentry, ..Default::default() };
                    let started = Instant::now();
                    let s = TestSensor::start(opts);
                    starts[t].push(started.elapsed().as_secs_f64());
                    Some(s)
                }
            };
            if let Some(r) = sensor.as_ref().and_then(|s| s.running.as_ref()) {
                paths[t] = r.attached.syscalls.to_owned();
            }
            for (i, storm) in Storm::ALL.iter().enumerate() {
                samples[i][t].push(storm.run(dur, &listener));
            }
            if let Some(s) = sensor {
                let links: Vec<u32> = sensor::guard::held_links().iter().map(|l| l.id).collect();
                let stopping = Instant::now();
                drop(s.stop());
                stops[t].push(stopping.elapsed().as_secs_f64());
                // The kernel detaches the links after the stop: the next round (no sensor, or the
                // other path) must not run beside them.
                assert!(sensor_tests::wait_detached(&links, Duration::from_secs(300)), "links left attached");
                detached[t].push(stopping.elapsed().as_secs_f64());
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nns per op, median of {rounds} interleaved rounds of {secs} s; ratio to no sensor");
    println!(
        "{:<24} {:>10} {:>20} {:>20}",
        "storm",
        "no sensor",
        format!("sensor: {}", short(&paths[1])),
        format!("sensor: {}", short(&paths[2]))
    );
    for (i, storm) in Storm::ALL.iter().enumerate() {
        let base = median(&samples[i][0]);
        let cell = |t: usize| {
            let m = median(&samples[i][t]);
            format!("{m:.0} ({:.2})", m / base)
        };
        println!("{:<24} {:>10.0} {:>20} {:>20}", storm.name(), base, cell(1), cell(2));
    }
    let secs = |v: &[f64]| format!("{:.2} s", median(v));
    println!("{:<24} {:>10} {:>20} {:>20}", "start (median)", "", secs(&starts[1]), secs(&starts[2]));
    println!("{:<24} {:>10} {:>20} {:>20}", "stop (median)", "", secs(&stops[1]), secs(&stops[2]));
    println!("{:<24} {:>10} {:>20} {:>20}", "detached (median)", "", secs(&detached[1]), secs(&detached[2]));
}

/// The path's name in a column.
fn short(syscalls: &str) -> &str {
    match syscalls {
        "raw syscall dispatcher" => "dispatcher",
        "syscall tracepoints" => "tracepoints",
        other => other,
    }
}
