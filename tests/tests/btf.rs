//! Kernels without built-in BTF: kernel struct offsets come from a BTF file given with `--btf`
//! (raw BTF, the format BTFHub distributes once extracted). Each test runs the `sensor` binary
//! in a private mount namespace where `/sys/kernel/btf` is an empty tmpfs, so the sensor cannot
//! see the kernel's own BTF; the file it is given is a copy of that BTF taken beforehand.

use std::{
    io::{BufRead as _, BufReader},
    net::{TcpListener, TcpStream, UdpSocket},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor::enrich::dns::build_query;
use sensor_tests::{sensor_bin, unique};
use serde_json::Value;

const SYSFS_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Runs the command with `/sys/kernel/btf` hidden behind an empty tmpfs (private mount ns).
fn hide_sysfs_btf(cmd: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe system calls with static strings run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c"tmpfs".as_ptr(),
                c"/sys/kernel/btf".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ))
        })
    }
}

/// A copy of this kernel's BTF in `dir`, or `None` (test skipped) when the kernel has none.
fn btf_copy(dir: &Path) -> Option<PathBuf> {
    if !Path::new(SYSFS_BTF).exists() {
        eprintln!("skipped: no {SYSFS_BTF} to copy on this kernel");
        return None;
    }
    let file = dir.join(format!("{}.btf", nix::sys::utsname::uname().ok()?.release().to_string_lossy()));
    std::fs::copy(SYSFS_BTF, &file).expect("copy the kernel's BTF");
    Some(file)
}

/// A sensor process, killed if the test panics before stopping it.
struct Sensor(Option<Child>);

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the sensor with the sysfs BTF hidden; returns it and its start-up log once it streams.
fn start_hidden(args: &[String]) -> (Sensor, String) {
    let mut sensor = hide_sysfs_btf(Command::new(sensor_bin()).args(args))
        .env("SENSOR_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sensor");
    let mut stderr = BufReader::new(sensor.stderr.take().expect("stderr"));
    let sensor = Sensor(Some(sensor));
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !log.contains("streaming records") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).expect("read stderr") > 0, "sensor exited early:\n{log}");
        log.push_str(&line);
        assert!(Instant::now() < deadline, "sensor did not start:\n{log}");
    }
    std::thread::spawn(move || for _ in stderr.lines() {});
    (sensor, log)
}

fn stop(mut sensor: Sensor) {
    let mut sensor = sensor.0.take().expect("running");
    nix::sys::signal::kill(Pid::from_raw(sensor.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = sensor.wait().expect("wait sensor");
    assert!(status.success(), "sensor exit status {status}");
}

fn records(jsonl: &Path) -> Vec<Value> {
    std::fs::read_to_string(jsonl)
        .expect("jsonl written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

#[test]
fn offsets_come_from_the_btf_file_when_the_kernel_publishes_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(btf) = btf_copy(dir.path()) else { return };
    let jsonl = dir.path().join("out.jsonl");
    let args =
        ["run", "--btf", &btf.display().to_string(), "--output", &format!("jsonl:{}", jsonl.display())]
            .map(str::to_owned);
    let (sensor, log) = start_hidden(&args);
    assert!(log.contains(&btf.display().to_string()), "the start-up log names the BTF file:\n{log}");
    let attached = log.lines().find(|l| l.contains("programs attached")).expect("attach line");
    for c in ["sched_process_exec", "sched_process_fork", "sched_process_exit", "\"file\"", "\"network\""] {
        assert!(attached.contains(c), "{c} attached:\n{log}");
    }

    // Process lifecycle, a file write and a child exec, from a shell of our own.
    let tag = unique("btf");
    let written = dir.path().join("written.txt");
    let mut sh = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("echo {tag} > {}; /bin/true {tag}; exit 7", written.display()))
        .spawn()
        .expect("spawn sh");
    let sh_pid = sh.id();
    assert_eq!(sh.wait().expect("wait sh").code(), Some(7));
    // Network: a TCP connect and a DNS query from this process.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    udp.send_to(&build_query(0x5151, "ward-7.example.org", 28), "127.0.0.1:53").expect("dns query");
    std::thread::sleep(Duration::from_millis(1500));
    stop(sensor);

    let all = records(&jsonl);
    let pid_of = |r: &Value| r["process"]["pid"].as_u64();
    let exec_true = all
        .iter()
        .find(|r| {
            r["exec"].is_object()
                && r["process"]["argv"][1] == tag.as_str()
                && r["process"]["argv"][0] == "/bin/true"
        })
        .expect("exec record of /bin/true");
    let p = &exec_true["process"];
    assert_eq!(p["exe"], "/usr/bin/true");
    assert_eq!(p["ppid"].as_u64(), Some(u64::from(sh_pid)), "parent read through task_struct.real_parent");
    assert_eq!(p["uid"].as_u64(), Some(0));
    assert_eq!(exec_true["ancestors"][0]["pid"].as_u64(), Some(u64::from(sh_pid)));
    assert_eq!(exec_true["ancestors"][1]["pid"].as_u64(), Some(u64::from(std::process::id())));

    let exit_sh = all
        .iter()
        .find(|r| r["exit"].is_object() && pid_of(r) == Some(u64::from(sh_pid)))
        .expect("exit of sh");
    assert_eq!(exit_sh["exit"]["code"], 7);

    let path = written.display().to_string();
    let file = all
        .iter()
        .find(|r| r["file"]["path"] == path.as_str())
        .unwrap_or_else(|| panic!("file record for {path}"));
    assert_eq!(pid_of(file), Some(u64::from(sh_pid)));
    assert_eq!(file["file"]["op"], "open");

    let me = Some(u64::from(std::process::id()));
    let connect = all
        .iter()
        .find(|r| pid_of(r) == me && r["network"]["op"] == "connect" && r["network"]["remote_port"] == port)
        .expect("connect record");
    // proto3 JSON leaves zero values out: no `result` is a successful connect.
    let result = connect["network"]["result"].as_i64().unwrap_or(0);
    assert_eq!((connect["network"]["remote_address"].as_str(), result), (Some("127.0.0.1"), 0));
    let dns = all
        .iter()
        .find(|r| pid_of(r) == me && r["dns"]["name"] == "ward-7.example.org")
        .expect("dns record: the payload of the datagram to port 53");
    assert_eq!(dns["dns"]["type"], "AAAA");
}

#[test]
fn without_any_btf_the_sensor_says_what_to_give_it() {
    if !Path::new(SYSFS_BTF).exists() {
        eprintln!("skipped: this kernel has no {SYSFS_BTF} to hide");
        return;
    }
    let out = hide_sysfs_btf(Command::new(sensor_bin()).args([
        "run",
        "--duration",
        "1",
        "--output",
        "jsonl:/dev/null",
    ]))
    .env("NO_COLOR", "1")
    .output()
    .expect("run sensor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the sensor must not start without BTF:\n{stderr}");
    for needle in [SYSFS_BTF, "--btf", "CONFIG_DEBUG_INFO_BTF"] {
        assert!(stderr.contains(needle), "`{needle}` in the message:\n{stderr}");
    }
}
