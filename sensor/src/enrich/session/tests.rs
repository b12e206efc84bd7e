use std::{
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
};

use super::*;
use crate::enrich::{
    guid::GuidMaker,
    process_table::{ProcEntry, TableLimits, UNSET},
};

const TCP_HEADER: &str =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

#[cfg(target_endian = "little")]
#[test]
fn parses_tcp_and_tcp6_lines() {
    let listen = "   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20321 1 0000000000000000 100 0 0 10 0";
    let s = parse_tcp_line(listen).expect("listen line");
    assert_eq!(s.local, "127.0.0.1:3306".parse().expect("addr"));
    assert_eq!((s.state, s.inode), (0x0A, 20321));
    assert!(s.remote.ip().is_unspecified());
    let est = "   1: 0F02000A:0016 0202000A:C51A 01 00000000:00000000 02:000A7214 00000000     0        0 28847 4 0000000000000000 20 4 29 10 -1";
    let s = parse_tcp_line(est).expect("established line");
    assert_eq!(s.local, "10.0.2.15:22".parse().expect("addr"));
    assert_eq!(s.remote, "10.0.2.2:50458".parse().expect("addr"));
    assert_eq!((s.state, s.inode), (1, 28847));
    let mapped = "   2: 0000000000000000FFFF00000F02000A:0016 0000000000000000FFFF00000202000A:C51A 01 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 20 4 30 10 -1";
    let s = parse_tcp_line(mapped).expect("mapped line");
    assert_eq!(s.remote.to_string(), "10.0.2.2:50458");
    assert_eq!(s.local.ip().to_string(), "10.0.2.15");
    let v6 = "   3: B80D0120000000000000000001000000:0016 B80D0120000000000000000002000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1";
    let s = parse_tcp_line(v6).expect("v6 line");
    assert_eq!(s.local.to_string(), "[2001:db8::1]:22");
    assert_eq!(s.remote.ip().to_string(), "2001:db8::2");
    assert_eq!(s.remote.port(), 0xD431);
    let any6 = "   4: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20325 1 0000000000000000 100 0 0 10 0";
    assert!(parse_tcp_line(any6).expect("any").remote.ip().is_unspecified());
    assert_eq!(parse_tcp_line(TCP_HEADER), None);
    assert_eq!(parse_tcp_line("   5: 0100007F:XYZ 00000000:0000 0A"), None);
    assert_eq!(parse_tcp_line("   6: 0100:0016 00000000:0000 0A 0 0 0 0 0 1"), None);
}

#[test]
fn finds_the_remote_end_of_our_own_connections() {
    let me = std::process::id();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, peer) = listener.accept().expect("accept");
    assert_eq!(peer, client.local_addr().expect("client addr"));
    let fd = |s: &TcpStream| u32::try_from(s.as_raw_fd()).expect("fd");
    let remotes = established_remotes(Path::new("/proc"), me);
    assert!(remotes.contains(&(fd(&server), peer)), "{remotes:?}");
    let to_listener = (fd(&client), listener.local_addr().expect("addr"));
    assert!(remotes.contains(&to_listener), "{remotes:?}");
    let listener_fd = u32::try_from(listener.as_raw_fd()).expect("fd");
    assert!(remotes.iter().all(|&(f, _)| f != listener_fd), "listening is not established");
    assert!(established_remotes(Path::new("/proc"), u32::MAX).is_empty());

    // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d: reported as IPv4.
    let Ok(dual) = TcpListener::bind("[::]:0") else {
        return; // no IPv6 here
    };
    let port = dual.local_addr().expect("addr").port();
    let Ok(client4) = TcpStream::connect(("127.0.0.1", port)) else {
        return; // IPv6-only sockets (net.ipv6.bindv6only=1)
    };
    let (server6, _) = dual.accept().expect("accept");
    let want = (fd(&server6), client4.local_addr().expect("addr"));
    assert!(want.1.is_ipv4());
    let remotes = established_remotes(Path::new("/proc"), me);
    assert!(remotes.contains(&want), "{want:?} in {remotes:?}");
}

/// A fake proc tree: stat files with start times, fds and tcp tables.
struct FakeProc(tempfile::TempDir);

impl FakeProc {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tempdir"))
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn pid(&self, p: &Process, fds: &[(u32, &str)], tcp: &[&str]) {
        let dir = self.root().join(p.pid.to_string());
        fs::create_dir_all(dir.join("fd")).expect("mkdir fd");
        fs::create_dir_all(dir.join("net")).expect("mkdir net");
        let ticks = p.start_boot_ns / NS_PER_TICK;
        let stat = format!("{} (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 1 1", p.pid);
        fs::write(dir.join("stat"), stat).expect("stat");
        for (fd, target) in fds {
            std::os::unix::fs::symlink(target, dir.join("fd").join(fd.to_string())).expect("fd");
        }
        let mut text = format!("{TCP_HEADER}\n");
        for line in tcp {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(dir.join("net/tcp"), text).expect("tcp");
    }
}

struct World {
    t: ProcessTable,
}

impl World {
    fn new() -> Self {
        let mut w = Self { t: ProcessTable::new(TableLimits::default(), GuidMaker::new("boot")) };
        let init = w.p(1, 1, "/sbin/init", UNSET, 0);
        w.t.on_exec(init);
        w
    }

    /// A process (pid, start second, exe, session), forked by `ppid` and inserted.
    fn p(&mut self, pid: u32, start_s: u64, exe: &str, session_id: u32, ppid: u32) -> Process {
        let start_boot_ns = start_s * 1_000_000_000;
        let p = Process {
            guid: GuidMaker::new("boot").guid(pid, start_boot_ns),
            pid,
            ppid,
            exe: exe.to_owned(),
            session_id,
            auid: if session_id == UNSET { UNSET } else { 0 },
            start_boot_ns,
            tty: "pts/0".into(),
            ..Default::default()
        };
        if let Some(parent) = self.t.live_by_pid(ppid).map(|e| e.process.clone()) {
            self.t.on_fork(p.clone(), parent.pid, parent.start_boot_ns);
        }
        self.t.get(&p.guid).map_or(p, |e| e.process.clone())
    }
}

const EST_CLIENT: &str = "   1: 0F02000A:0016 0202000A:C51A 01 00000000:00000000 02:000A7214 00000000     0        0 777 4 0000000000000000 20 4 29 10 -1";
const EST_FORWARD: &str = "   2: 0F02000A:A000 0901A8C0:1F90 01 00000000:00000000 02:000A7214 00000000     0        0 778 4 0000000000000000 20 4 29 10 -1";
const LISTEN: &str = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0";

#[cfg(target_endian = "little")]
#[test]
fn ssh_session_is_reported_once_with_service_user_and_client() {
    let fake = FakeProc::new();
    let mut w = World::new();
    let sshd = w.p(300, 2, "/usr/sbin/sshd", UNSET, 1);
    fake.pid(&sshd, &[(3, "socket:[100]")], &[LISTEN]);
    let monitor = w.p(400, 3, "/usr/lib/openssh/sshd-session", 5, 300);
    let fds = [(7, "socket:[778]"), (0, "socket:[777]"), (1, "/dev/null")];
    fake.pid(&monitor, &fds, &[LISTEN, EST_FORWARD, EST_CLIENT]);
    let bash = w.p(410, 4, "/bin/bash", 5, 400);

    let mut tracker = SessionTracker::new(fake.root());
    let ev = tracker.observe(&bash, &w.t, false).expect("new session");
    assert_eq!(ev.session_id, 5);
    assert_eq!((ev.auid, ev.user.as_str()), (0, "root"));
    assert_eq!((ev.service.as_str(), ev.tty.as_str()), ("sshd", "pts/0"));
    assert_eq!((ev.remote_address.as_str(), ev.remote_port), ("10.0.2.2", 50458));
    assert_eq!((ev.leader_guid.as_str(), ev.existing), (bash.guid.as_str(), false));
    assert_eq!(tracker.observe(&bash, &w.t, false), None, "reported once");
    let vim = w.p(420, 5, "/usr/bin/vim", 5, 410);
    assert_eq!(tracker.observe(&vim, &w.t, true), None);
    assert_eq!(tracker.observe(&sshd, &w.t, true), None, "no session");

    // Another connection whose sshd pid was reused (start time differs): no address.
    let stale = w.p(500, 6, "/usr/sbin/sshd", 9, 300);
    fake.pid(
        &Process { start_boot_ns: 99_000_000_000, ..stale.clone() },
        &[(0, "socket:[777]")],
        &[EST_CLIENT],
    );
    let sh = w.p(510, 7, "/bin/sh", 9, 500);
    let ev = tracker.observe(&sh, &w.t, true).expect("session 9");
    assert_eq!((ev.service.as_str(), ev.remote_address.as_str(), ev.remote_port), ("sshd", "", 0));
    assert!(ev.existing);
}

#[test]
fn service_of_console_cron_and_unknown_parents() {
    let fake = FakeProc::new();
    let mut w = World::new();
    let login = w.p(600, 2, "/usr/bin/login", 6, 1);
    let bash = w.p(610, 3, "/usr/bin/bash", 6, 600);
    let cron = w.p(800, 2, "/usr/sbin/cron", UNSET, 1);
    let cron_child = w.p(810, 3, "/usr/sbin/cron", 8, 800);
    let job = Process {
        parent_guid: cron_child.guid.clone(),
        ..w.p(820, 4, "/bin/sh", 8, 0) // not in the table yet
    };
    let lone = w.p(900, 5, "/bin/sh", 10, 4242);
    let mut tracker = SessionTracker::with_limit(fake.root(), 2);
    let service = |tr: &mut SessionTracker, p: &Process| tr.observe(p, &w.t, false).map(|e| e.service);
    assert_eq!(service(&mut tracker, &bash).as_deref(), Some("login"));
    assert_eq!(service(&mut tracker, &job).as_deref(), Some("cron"));
    assert_eq!(service(&mut tracker, &lone).as_deref(), Some(""));
    assert_eq!(tracker.len(), 2, "bounded");
    // session 6 was forgotten (oldest): seen again as new; the login process itself → "login"
    assert_eq!(service(&mut tracker, &login).as_deref(), Some("login"));
    assert!(tracker.observe(&job, &w.t, false).is_some(), "session 8 was forgotten too");
    assert_eq!(tracker.len(), 2);
    assert_eq!(w.t.get(&cron.guid).map(ProcEntry::live_children), Some(1));
}

#[test]
fn the_pty_an_sshd_holds_names_the_session_terminal() {
    let root = tempfile::tempdir().expect("tmp");
    let pid = root.path().join("4242");
    std::fs::create_dir_all(pid.join("fd")).expect("fd");
    std::fs::create_dir_all(pid.join("fdinfo")).expect("fdinfo");
    assert_eq!(pty_of(root.path(), 4242), None, "no pty");
    std::os::unix::fs::symlink("socket:[123]", pid.join("fd/3")).expect("link");
    std::os::unix::fs::symlink("/dev/ptmx", pid.join("fd/9")).expect("link");
    std::fs::write(pid.join("fdinfo/9"), "pos:\t0\nflags:\t02\nmnt_id:\t1\ntty-index:\t7\n").expect("info");
    assert_eq!(pty_of(root.path(), 4242).as_deref(), Some("pts7"), "a master names its slave");
    std::os::unix::fs::symlink("/dev/pts/2", pid.join("fd/5")).expect("link");
    assert_eq!(pty_of(root.path(), 4242).as_deref(), Some("pts2"), "the lowest fd wins");
    assert_eq!(pty_of(root.path(), 1), None, "no such process");
}

#[test]
fn an_sshd_session_without_a_terminal_waits_for_one() {
    let mut w = World::new();
    let monitor = w.p(400, 3, "/usr/sbin/sshd", 5, 1);
    let motd = Process { tty: String::new(), ..w.p(401, 4, "/bin/sh", 5, 400) };
    let mut tracker = SessionTracker::new("/nonexistent");
    let ev = tracker.observe(&motd, &w.t, false).expect("new session");
    assert_eq!((ev.service.as_str(), ev.tty.as_str()), ("sshd", ""));
    assert!(tracker.defer(4_000_000_000, &motd, &ev), "held back for its terminal");
    assert_eq!(tracker.deferred(), 1);
    assert!(tracker.ready(Some(&motd), 4_100_000_000, false).is_empty(), "no terminal yet");
    let other = Process { session_id: 6, tty: "pts1".into(), ..motd.clone() };
    assert!(tracker.ready(Some(&other), 4_200_000_000, false).is_empty(), "another session's terminal");
    let shell = Process { tty: "pts0".into(), ..w.p(402, 5, "/bin/bash", 5, 400) };
    let ready = tracker.ready(Some(&shell), 4_300_000_000, false);
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].event.tty, "pts0", "the shell's terminal is the session's");
    assert_eq!((ready[0].boot_ns, ready[0].event.leader_guid.as_str()), (4_000_000_000, motd.guid.as_str()));
    drop(monitor);

    // `ssh host cmd`: no terminal ever; the record goes after TTY_WAIT_NS.
    let cmd = Process { tty: String::new(), ..w.p(501, 6, "/bin/sh", 7, 400) };
    let ev = tracker.observe(&cmd, &w.t, false).expect("session 7");
    assert!(tracker.defer(6_000_000_000, &cmd, &ev));
    assert!(tracker.ready(None, 6_000_000_000 + TTY_WAIT_NS - 1, false).is_empty());
    let ready = tracker.ready(None, 6_000_000_000 + TTY_WAIT_NS, false);
    assert_eq!((ready.len(), ready[0].event.tty.as_str()), (1, ""));
    // Not sshd, or with a terminal: written at once.
    let login = w.p(601, 7, "/bin/login", 8, 1);
    let ev = tracker.observe(&login, &w.t, false).expect("session 8");
    assert!(!tracker.defer(7_000_000_000, &login, &ev));
}
