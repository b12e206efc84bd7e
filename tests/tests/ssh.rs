//! A real login through `ssh -t` (OpenSSH with PAM, as Debian configures it): the session record
//! carries the terminal the session's shell runs on, although PAM opens the session — and runs
//! pam_motd's scripts in it — before the pty exists.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use sensor_proto::v1::audit_record::Event;
use sensor_tests::{TestSensor, unique};

const WAIT: Duration = Duration::from_secs(20);

/// An sshd on a loopback port with its own host key and an authorized key for root.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Option<Self> {
        let bin = Path::new("/usr/sbin/sshd");
        if !bin.exists() || !Path::new("/usr/bin/ssh").exists() {
            eprintln!("skipped: OpenSSH is not installed (cargo xtask setup installs it)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let keygen = |name: &str| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.path().join(name))
                .status()
                .expect("ssh-keygen");
            assert!(ok.success(), "ssh-keygen");
        };
        keygen("host");
        keygen("user");
        std::fs::copy(dir.path().join("user.pub"), dir.path().join("authorized_keys")).expect("keys");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nUsePAM yes\nStrictModes no\nPidFile none\n",
                d = dir.path().display()
            ),
        )
        .expect("config");
        std::fs::create_dir_all("/run/sshd").expect("privilege separation directory");
        let child = Command::new(bin)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).expect("log"))
            .spawn()
            .expect("start sshd");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, port, dir })
    }

    /// `ssh -tt root@127.0.0.1 CMD`, its output.
    fn ssh_t(&self, cmd: &str) -> String {
        let out = Command::new("ssh")
            .arg("-tt")
            .arg("-i")
            .arg(self.dir.path().join("user"))
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
            ])
            .args(["-o", "LogLevel=ERROR", "root@127.0.0.1", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("ssh");
        let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        assert!(out.status.success(), "ssh failed: {}\nsshd: {log}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_t_login_session_record_names_the_terminal() {
    let mut sensor = TestSensor::start_default();
    let Some(sshd) = Sshd::start() else { return };
    let tag = unique("ssh-t");
    let out = sshd.ssh_t(&format!("/bin/echo {tag}; tty"));
    assert!(out.contains(&tag), "{out}");
    let exec = sensor
        .wait_for(WAIT, |r| {
            matches!(r.event, Some(Event::Exec(_)))
                && r.process.as_ref().is_some_and(|p| p.exe.ends_with("echo") && p.argv.contains(&tag))
        })
        .expect("exec record of the command run over ssh");
    let p = exec.process.expect("process");
    assert!(p.tty.starts_with("pts"), "the shell runs on a pty: {:?}", p.tty);
    let reported = out.lines().find_map(|l| l.trim().strip_prefix("/dev/pts/")).expect("tty printed");
    assert_eq!(p.tty, format!("pts{reported}"));
    let sid = p.session_id;
    let rec = sensor
        .wait_for(WAIT, |r| matches!(&r.event, Some(Event::Session(s)) if s.session_id == sid))
        .expect("session record");
    let Some(Event::Session(s)) = rec.event else { unreachable!() };
    assert_eq!(s.tty, p.tty, "the session record names the session's terminal");
    assert_eq!(s.service, "sshd");
    assert_eq!((s.user.as_str(), s.remote_address.as_str()), ("root", "127.0.0.1"));
    drop(sshd);
    sensor.stop();
}
