//! Pinning: a SIGKILLed sensor restarted at once, during a file-write storm, loses no write (each
//! is in the records or counted by a loss record), the killed run is reported at the next start
//! and by `records verify`, and the SIGKILL itself is alerted (its event waited in the pinned
//! ring). Also: one reader per pin directory, and pins of another version are replaced.
//!
//! Every test uses its own pin directory under /sys/fs/bpf and removes it with `sensor cleanup`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor_tests::{link_exists, sensor_bin, spawn_sensor, unique};
use serde_json::Value;

/// A pin directory of this test, removed (with everything pinned in it) on drop.
struct Pins(PathBuf);

impl Pins {
    fn new(tag: &str) -> Self {
        Self(PathBuf::from("/sys/fs/bpf").join(unique(tag)))
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(sensor_bin()).arg("cleanup").arg("--pin-dir").arg(&self.0).status();
    }
}

fn signal(child: &Child, sig: Signal) {
    nix::sys::signal::kill(Pid::from_raw(child.id() as i32), sig).expect("signal");
}

fn records(dir: &Path) -> Vec<Value> {
    let out = Command::new(sensor_bin()).args(["records", "cat"]).arg(dir).output().expect("records cat");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn run_args(records: &Path, pins: Option<&Pins>) -> Vec<String> {
    let mut a = vec!["run".to_owned(), "--output".to_owned(), format!("file:{}", records.display())];
    if let Some(p) = pins {
        a.extend(["--pin-dir".to_owned(), p.0.display().to_string()]);
    }
    a
}

/// Creates `n` files in `dir`, one every `pause`.
fn storm(dir: PathBuf, n: usize, pause: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for i in 0..n {
            std::fs::File::create(dir.join(format!("f{i:05}"))).expect("create");
            std::thread::sleep(pause);
        }
    })
}

struct Outcome {
    writes: usize,
    recorded: usize,
    lost: u64,
    pinning: String,
    records: Vec<Value>,
    verify: String,
}

/// A storm of `writes` file creations; the sensor is SIGKILLed 1 s in and a new one starts at
/// once with the same settings; both write to one record directory.
fn kill_and_restart_during_a_storm(pins: Option<&Pins>) -> Outcome {
    let scratch = sensor_tests::scratch_dir();
    let rec_dir = scratch.path().join("records");
    let storm_dir = scratch.path().join("storm");
    std::fs::create_dir(&storm_dir).expect("storm dir");
    let writes = 3000;
    let first = spawn_sensor(run_args(&rec_dir, pins));
    let storm = storm(storm_dir.clone(), writes, Duration::from_millis(1));
    std::thread::sleep(Duration::from_secs(1));
    let mut first = first;
    signal(&first, Signal::SIGKILL);
    first.wait().expect("wait killed sensor");
    let second = spawn_sensor(run_args(&rec_dir, pins));
    storm.join().expect("storm");
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = second;
    signal(&second, Signal::SIGINT);
    assert!(second.wait().expect("wait").success());

    let records = records(&rec_dir);
    let prefix = format!("{}/", storm_dir.display());
    let mut paths: Vec<&str> = records
        .iter()
        .filter(|r| r["file"]["op"] == "open")
        .filter_map(|r| r["file"]["path"].as_str())
        .filter(|p| p.starts_with(&prefix))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    // Which writes have no record: where in the storm (before or after the kill) tells why.
    let missing: Vec<usize> =
        (0..writes).filter(|i| paths.binary_search(&format!("{prefix}f{i:05}").as_str()).is_err()).collect();
    if !missing.is_empty() {
        eprintln!("writes without a record (of {writes}, in order): {missing:?}");
        prog_misses();
        for r in records.iter().filter(|r| r["loss"].is_object() || r["previous_run"].is_object()) {
            eprintln!("{r}");
        }
    }
    let lost = records
        .iter()
        // File events lost, and skipped dispatcher runs (system calls of any kind, file ones too).
        .filter(|r| r["loss"]["kind"] == "file" || r["loss"]["kind"] == "syscall")
        .filter_map(|r| {
            r["loss"]["count"].as_str().and_then(|c| c.parse::<u64>().ok()).or(r["loss"]["count"].as_u64())
        })
        .sum();
    // Each run says how system calls reach the programs (an adopting one from the pinned links),
    // and both the same way (the SIGKILLed run's start record may not have reached the disk).
    let ways: Vec<&str> = records.iter().filter_map(|r| r["sensor_start"]["syscalls"].as_str()).collect();
    assert!(
        ways.last().is_some_and(|w| !w.is_empty()) && ways.iter().all(|w| Some(w) == ways.last()),
        "sensor_start syscalls: {ways:?}"
    );
    let pinning = records
        .iter()
        .filter_map(|r| r["sensor_start"]["pinning"]["mode"].as_str())
        .next_back()
        .unwrap_or("")
        .to_owned();
    let verify =
        Command::new(sensor_bin()).args(["records", "verify"]).arg(&rec_dir).output().expect("verify");
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    Outcome {
        writes,
        recorded: paths.len(),
        lost,
        pinning,
        records,
        verify: String::from_utf8_lossy(&verify.stdout).into_owned(),
    }
}

/// Diagnostic printed when writes are missing: every loaded BPF program's name and recursion
/// misses (Linux 5.12+, read from its fdinfo as the sensor's loss poller does): the runs the
/// kernel skipped because the same program was already running on that CPU (e.g. preempted).
fn prog_misses() {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        let Ok(fd) = info.fd() else { continue };
        let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd()));
        let misses = fdinfo.ok().and_then(|t| sensor::sources::loss::recursion_misses(&t));
        let name = info.name_as_str().unwrap_or("?");
        eprintln!("BPF program {} {name}: recursion misses {misses:?}", info.id());
    }
}

fn check_killed_run_reported(o: &Outcome) {
    let prev = o.records.iter().find(|r| r["previous_run"].is_object()).expect("previous_run record");
    assert_eq!(prev["previous_run"]["same_boot"], true, "{prev:#}");
    assert!(o.verify.contains("unfinished: run "), "verify does not report the killed run: {}", o.verify);
    assert!(
        o.records.iter().any(|r| r["alert"]["rule_id"] == "sensor.tamper.abnormal_end"),
        "no abnormal_end alert"
    );
}

#[test]
fn a_sigkill_and_restart_with_pins_loses_no_write() {
    let pins = Pins::new("sensor-pin-storm");
    let o = kill_and_restart_during_a_storm(Some(&pins));
    check_killed_run_reported(&o);
    eprintln!(
        "with pins ({}): {} of {} writes recorded, {} counted lost",
        o.pinning, o.recorded, o.writes, o.lost
    );
    if o.pinning == "off" {
        eprintln!("pinning is off on this kernel (see sensor_start.pinning.reason): hole not checked");
        return;
    }
    assert_eq!(o.pinning, "adopted", "the second sensor adopted the pins");
    assert!(
        o.recorded as u64 + o.lost >= o.writes as u64,
        "{} recorded + {} counted < {} writes",
        o.recorded,
        o.lost,
        o.writes
    );
    // The SIGKILL was generated before the sensor died: its event waited in the pinned ring.
    assert!(
        o.records.iter().any(|r| r["alert"]["rule_id"] == "sensor.tamper.kill_stop"
            && r["process"]["pid"] == std::process::id()),
        "no kill_stop alert for the SIGKILL"
    );
}

#[test]
fn a_sigkill_and_restart_without_pins_is_reported() {
    let o = kill_and_restart_during_a_storm(None);
    check_killed_run_reported(&o);
    eprintln!(
        "without pins: {} of {} writes recorded, {} counted lost, {} missing",
        o.recorded,
        o.writes,
        o.lost,
        (o.writes as u64).saturating_sub(o.recorded as u64 + o.lost)
    );
}

#[test]
fn one_sensor_per_pin_directory_and_other_versions_are_replaced() {
    let pins = Pins::new("sensor-pin-lock");
    let scratch = sensor_tests::scratch_dir();
    let rec = scratch.path().join("records");
    let mut args = run_args(&rec, Some(&pins));
    args.extend(["--args-max".to_owned(), "200".to_owned()]);
    let mut first = spawn_sensor(args);
    let second = Command::new(sensor_bin())
        .args(run_args(&scratch.path().join("other"), Some(&pins)))
        .args(["--duration", "5"])
        .output()
        .expect("second sensor");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second sensor started on the same pins");
    assert!(err.contains(&format!("another sensor (pid {})", first.id())), "{err}");
    signal(&first, Signal::SIGINT);
    assert!(first.wait().expect("wait").success());
    let versions = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| r.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = versions(&pins.0);
    // While no sensor runs, the pinned programs keep recording into their rings.
    let quiet = scratch.path().join("while-stopped");
    std::fs::create_dir(&quiet).expect("mkdir");
    for i in 0..20 {
        std::fs::write(quiet.join(format!("f{i}")), b"x").expect("write");
    }
    // Another version (other load settings): it loads its own programs and removes the old
    // pins, counting what their rings held (it cannot decode another version's events).
    let third_rec = scratch.path().join("third");
    let third = Command::new(sensor_bin())
        .args(run_args(&third_rec, Some(&pins)))
        .args(["--duration", "2"])
        .output()
        .expect("third sensor");
    assert!(third.status.success(), "third sensor: {}", String::from_utf8_lossy(&third.stderr));
    // Pins stay after a clean stop.
    let after = versions(&pins.0);
    if before.is_empty() {
        eprintln!("pinning is off on this kernel: version replacement not checked");
        return;
    }
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(before, after, "the pins of the other version were replaced");
    let replaced: u64 = records(&third_rec)
        .iter()
        .filter(|r| r["loss"]["kind"] == "file" && r["loss"]["reason"] == "replaced")
        .filter_map(|r| {
            r["loss"]["count"].as_str().and_then(|c| c.parse::<u64>().ok()).or(r["loss"]["count"].as_u64())
        })
        .sum();
    assert!(replaced >= 20, "the 20 writes left in the replaced rings are counted: {replaced}");
    let started = Instant::now();
    let out =
        Command::new(sensor_bin()).arg("cleanup").arg("--pin-dir").arg(&pins.0).output().expect("cleanup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!pins.0.exists(), "cleanup removed the pin directory");
    eprintln!("cleanup took {} ms", started.elapsed().as_millis());
}

/// Opens a pinned object the way `bpftool map show pinned PATH` does (`BPF_OBJ_GET`), from a
/// child process; returns its pid and the result. With `untouched`, the path is in memory the
/// child has not touched (as an intruder's tool could place it, to blind a read at the call's
/// start).
fn obj_get_in_child(path: &Path, untouched: bool) -> (u32, i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let at = if untouched { sensor_tests::untouched_page(c.as_bytes_with_nul()) } else { c.as_ptr().cast() };
    // `union bpf_attr` for BPF_OBJ_GET: `__aligned_u64 pathname`, `__u32 bpf_fd`, `__u32 file_flags`.
    let attr: [u64; 2] = [at as u64, 0];
    let mut pipe = [0i32; 2];
    // SAFETY: a pipe into a valid array; the child only makes async-signal-safe calls.
    unsafe {
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0, "pipe");
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let r = libc::syscall(libc::SYS_bpf, 7, attr.as_ptr(), 16);
            let bytes = r.to_ne_bytes();
            libc::write(pipe[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
        libc::close(pipe[1]);
        let mut bytes = [0u8; 8];
        assert_eq!(libc::read(pipe[0], bytes.as_mut_ptr().cast(), 8), 8, "child result");
        libc::close(pipe[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        (pid as u32, i64::from_ne_bytes(bytes))
    }
}

#[test]
fn opening_a_pinned_object_is_alerted() {
    let pins = Pins::new("sensor-pin-objget");
    let scratch = sensor_tests::scratch_dir();
    let rec = scratch.path().join("records");
    let mut sensor = spawn_sensor(run_args(&rec, Some(&pins)));
    let sensor_pid = sensor.id();
    let map = std::fs::read_dir(&pins.0)
        .expect("pin dir")
        .filter_map(Result::ok)
        .map(|e| e.path().join("map-CONTROL"))
        .find(|p| p.exists());
    let Some(map) = map else {
        signal(&sensor, Signal::SIGINT);
        let _ = sensor.wait();
        eprintln!("pinning is off on this kernel: obj_get not checked");
        return;
    };
    // The second opener's path is in a page it has not touched: the enter cannot read it, the
    // exit does (fails without it: the record's path is empty).
    let openers = [obj_get_in_child(&map, false), obj_get_in_child(&map, true)];
    for (_, fd) in openers {
        assert!(fd >= 0, "BPF_OBJ_GET failed: {fd}");
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&sensor, Signal::SIGINT);
    assert!(sensor.wait().expect("wait").success());
    let records = records(&rec);
    for (pid, _) in openers {
        let access = records
            .iter()
            .find(|r| r["bpf_access"]["command"] == "obj_get" && r["process"]["pid"] == pid)
            .unwrap_or_else(|| panic!("no obj_get record for pid {pid}"));
        assert_eq!(access["bpf_access"]["object_type"], "pin");
        assert_eq!(access["bpf_access"]["path"], map.display().to_string());
        assert!(
            records
                .iter()
                .any(|r| r["alert"]["rule_id"] == "sensor.tamper.bpf_access" && r["process"]["pid"] == pid),
            "no sensor.tamper.bpf_access alert for pid {pid}"
        );
    }
    // The sensor's own use of its objects (pinning, adopting) is not reported.
    let own: Vec<&Value> =
        records.iter().filter(|r| r["bpf_access"].is_object() && r["process"]["pid"] == sensor_pid).collect();
    assert!(own.is_empty(), "bpf_access records of the sensor itself: {own:?}");
}

#[test]
fn one_sensor_per_record_directory() {
    let scratch = sensor_tests::scratch_dir();
    let rec = scratch.path().join("records");
    let mut first = spawn_sensor(run_args(&rec, None));
    let second = Command::new(sensor_bin())
        .args(run_args(&rec, None))
        .args(["--duration", "5"])
        .output()
        .expect("second");
    signal(&first, Signal::SIGINT);
    assert!(first.wait().expect("wait").success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second sensor wrote the same record directory");
    assert!(
        err.contains(&format!(
            "another sensor (pid {}) is using record directory {}",
            first.id(),
            rec.display()
        )),
        "{err}"
    );
}

/// The ids of the BPF links process `pid` holds (its descriptors' `link_id:` lines).
fn links_held_by(pid: u32) -> Vec<u32> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo");
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| t.lines().find_map(|l| l.strip_prefix("link_id:")?.trim().parse().ok()))
        .collect()
}

/// A sensor whose programs detach at stop (unpinned, or pinned with `--unpin-on-stop`) hands its
/// links' last references to the kernel (an io_uring instance's fixed files; see
/// `sensor::links`): it says so, and every link of its programs is detached soon after it has
/// exited.
fn stop_leaves_links_to_the_kernel(pins: Option<&Pins>) {
    use std::io::{BufRead as _, BufReader, Read as _};
    let dir = sensor_tests::scratch_dir();
    let mut args = run_args(&dir.path().join("records"), pins);
    if pins.is_some() {
        args.push("--unpin-on-stop".to_owned());
    }
    let mut child = Command::new(sensor_bin())
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sensor");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    while !log.contains("streaming records") {
        assert!(stderr.read_line(&mut log).expect("read stderr") > 0, "sensor exited early:\n{log}");
    }
    let links = links_held_by(child.id());
    assert!(links.len() > 2, "the sensor holds its links: {links:?}");
    assert!(links.iter().all(|l| link_exists(*l)));
    signal(&child, Signal::SIGINT);
    stderr.read_to_string(&mut log).expect("read stderr");
    assert!(child.wait().expect("wait").success(), "{log}");
    // io_uring switched off by the administrator: the links go with the process, as before.
    let uring_off =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").is_ok_and(|v| v.trim() != "0");
    assert!(uring_off || log.contains("the kernel detaches these links after this process ends"), "{log}");
    assert!(
        sensor_tests::wait_detached(&links, Duration::from_secs(120)),
        "links still attached 120 s after the stop: {:?}",
        links.iter().filter(|l| link_exists(**l)).collect::<Vec<_>>()
    );
}

#[test]
fn an_unpinned_sensor_leaves_its_links_to_the_kernel_and_they_detach() {
    stop_leaves_links_to_the_kernel(None);
}

#[test]
fn unpin_on_stop_leaves_the_links_to_the_kernel_and_they_detach() {
    let pins = Pins::new("unpin-on-stop");
    stop_leaves_links_to_the_kernel(Some(&pins));
    let versions = std::fs::read_dir(&pins.0).map_or(0, Iterator::count);
    assert_eq!(versions, 0, "the pins of {} are removed at stop", pins.0.display());
}
