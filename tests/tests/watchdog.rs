//! `sensor run` under systemd's notify protocol, with the test as the service manager: a
//! datagram socket in `NOTIFY_SOCKET` and a watchdog period in `WATCHDOG_USEC`. The sensor says
//! READY=1 once records stream, pings WATCHDOG=1 while it runs, stops pinging while it is frozen
//! (`kill -STOP`, an attacker's way to blind it without killing it: systemd then restarts it),
//! pings again once thawed, and says STOPPING=1 on SIGTERM.

use std::{
    os::unix::net::UnixDatagram,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use sensor_tests::{scratch_dir, sensor_bin};

/// Kills the sensor if the test fails (SIGKILL also ends a stopped process).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reap {
    fn signal(&self, s: Signal) {
        nix::sys::signal::kill(Pid::from_raw(i32::try_from(self.0.id()).expect("pid")), s).expect("kill");
    }
}

/// Waits up to `timeout` for a message containing `what`; the messages read meanwhile.
fn wait_for(sock: &UnixDatagram, what: &str, timeout: Duration) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == what) {
                return Ok(());
            }
            seen.push(msg);
        }
    }
    Err(seen)
}

#[test]
fn readiness_and_watchdog_pings_that_stop_while_the_sensor_is_frozen() {
    let dir = scratch_dir();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    // WATCHDOG_PID must be the sensor's own pid, as systemd sets it: the shell's, kept by exec.
    let child = Command::new("/bin/sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run --output jsonl:/dev/null"])
        .arg(sensor_bin())
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .expect("start sensor");
    let sensor = Reap(child);

    wait_for(&sock, "READY=1", Duration::from_secs(60)).expect("READY=1 once records stream");
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5)).expect("a watchdog ping every 200 ms");

    sensor.signal(Signal::SIGSTOP);
    // What was sent before the stop is still queued: read it away, then nothing may come.
    let _ = wait_for(&sock, "-", Duration::from_millis(500));
    let frozen = wait_for(&sock, "WATCHDOG=1", Duration::from_secs(2));
    assert!(frozen.is_err(), "a frozen sensor pinged the watchdog");

    sensor.signal(Signal::SIGCONT);
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5)).expect("pings resume once thawed");

    sensor.signal(Signal::SIGTERM);
    wait_for(&sock, "STOPPING=1", Duration::from_secs(10)).expect("STOPPING=1 on SIGTERM");
    let mut sensor = sensor;
    let status = sensor.0.wait().expect("wait");
    assert!(status.success(), "{status}");
}
