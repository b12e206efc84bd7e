//! Login sessions (audit session ids): one [`SessionEvent`] the first time a session is seen,
//! with the login user, the service that started it and, for sshd, the client's address.
//!
//! The client address comes from the sshd processes of the session: their socket fds
//! (`/proc/PID/fd/* -> socket:[INODE]`) are looked up in that process's `net/tcp` and
//! `net/tcp6` tables, and the established connection's remote end is the client.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

use sensor_proto::v1::{Ancestor, Process, SessionEvent};

use super::{
    guid::NS_PER_TICK,
    process_table::{ProcessTable, UNSET, ancestor_of, seed::read_stat},
    users::NameCache,
};

/// Sessions remembered by default (older ones are forgotten first).
pub const DEFAULT_MAX_SESSIONS: usize = 65536;
/// How long the record of a new sshd session without a terminal waits for one (boot ns): with
/// `ssh -t`, PAM opens the session — and runs programs in it, e.g. pam_motd's scripts — before
/// the pty is allocated. The record is written with the terminal of the session's first process
/// that has one, or without a terminal after this long (`ssh host cmd`, sftp).
pub const TTY_WAIT_NS: u64 = 2_000_000_000;

/// A session record held back until the session's terminal is known.
#[derive(Debug)]
pub struct Deferred {
    /// When the session was first seen, and by which process.
    pub boot_ns: u64,
    pub process: Process,
    pub event: SessionEvent,
}

/// Remembers which sessions were already reported.
#[derive(Debug)]
pub struct SessionTracker {
    seen: HashSet<u32>,
    order: VecDeque<u32>,
    max_sessions: usize,
    names: NameCache,
    proc_root: PathBuf,
    deferred: Vec<Deferred>,
}

impl SessionTracker {
    /// A tracker reading processes from `proc_root` (normally `/proc`).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self::with_limit(proc_root, DEFAULT_MAX_SESSIONS)
    }

    /// A tracker remembering at most `max_sessions` sessions.
    pub fn with_limit(proc_root: impl Into<PathBuf>, max_sessions: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            max_sessions: max_sessions.max(1),
            names: NameCache::default(),
            proc_root: proc_root.into(),
            deferred: Vec::new(),
        }
    }

    /// The user name cache the tracker uses (to share lookups with other stages).
    pub fn names(&mut self) -> &mut NameCache {
        &mut self.names
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// No session remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// A [`SessionEvent`] if `process` belongs to a session not seen before; `existing` says the
    /// session predates the sensor (found while seeding from `/proc`; feed those oldest first so
    /// the leader is the session's first process).
    pub fn observe(
        &mut self,
        process: &Process,
        table: &ProcessTable,
        existing: bool,
    ) -> Option<SessionEvent> {
        let sid = process.session_id;
        if sid == UNSET || !self.seen.insert(sid) {
            return None;
        }
        self.order.push_back(sid);
        while self.order.len() > self.max_sessions {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let chain = chain(process, table);
        let outside = chain.iter().position(|a| a.session_id != sid);
        let service = match outside {
            // Started directly by init: name the session's own first program (e.g. login).
            Some(i) if chain[i].pid == 1 => match i.checked_sub(1) {
                Some(leader) => basename(&chain[leader].exe),
                None => basename(&process.exe),
            },
            Some(i) => basename(&chain[i].exe),
            None => String::new(),
        };
        let upto = outside.map_or(chain.len(), |i| i + 1);
        let sshd: Vec<Ancestor> = std::iter::once(ancestor_of(process))
            .chain(chain.into_iter().take(upto))
            .filter(|a| basename(&a.exe).starts_with("sshd"))
            .filter(|a| self.still_running(a, table, process))
            .collect();
        let remote = sshd.iter().find_map(|a| client_of(&self.proc_root, a.pid));
        // `ssh -t`: PAM opens the session (and may run programs in it) before the shell gets
        // its terminal; the pty is already allocated and held by the session's sshd.
        let tty = if process.tty.is_empty() {
            sshd.iter().find_map(|a| pty_of(&self.proc_root, a.pid)).unwrap_or_default()
        } else {
            process.tty.clone()
        };
        Some(SessionEvent {
            session_id: sid,
            auid: process.auid,
            user: self.names.user(process.auid).unwrap_or_default().to_owned(),
            tty,
            remote_address: remote.map(|r| r.ip().to_string()).unwrap_or_default(),
            remote_port: remote.map_or(0, |r| u32::from(r.port())),
            service,
            leader_guid: process.guid.clone(),
            existing,
        })
    }

    /// Holds a session record back while its terminal is unknown (see [`TTY_WAIT_NS`]); false
    /// when the record should be written now.
    pub fn defer(&mut self, boot_ns: u64, process: &Process, event: &SessionEvent) -> bool {
        if !event.tty.is_empty() || !event.service.starts_with("sshd") || event.existing {
            return false;
        }
        self.deferred.push(Deferred { boot_ns, process: process.clone(), event: event.clone() });
        true
    }

    /// Session records held back.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Held-back session records that can go now: the session of `by` (a process about to get a
    /// record) when it has a terminal — the record takes it — and those that waited
    /// [`TTY_WAIT_NS`] by `now_boot_ns`; all of them with `all` (at stop).
    pub fn ready(&mut self, by: Option<&Process>, now_boot_ns: u64, all: bool) -> Vec<Deferred> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.deferred.len() {
            let d = &mut self.deferred[i];
            let tty = by.filter(|p| p.session_id == d.event.session_id && !p.tty.is_empty());
            if let Some(p) = tty {
                d.event.tty.clone_from(&p.tty);
            }
            if all || tty.is_some() || now_boot_ns >= d.boot_ns.saturating_add(TTY_WAIT_NS) {
                out.push(self.deferred.remove(i));
            } else {
                i += 1;
            }
        }
        out
    }

    /// `a` is still the process with that pid (not a reuse): its start time matches.
    fn still_running(&self, a: &Ancestor, table: &ProcessTable, acting: &Process) -> bool {
        let start = if a.guid == acting.guid {
            acting.start_boot_ns
        } else {
            match table.live_by_pid(a.pid) {
                Some(e) if e.process.guid == a.guid => e.process.start_boot_ns,
                _ => return false,
            }
        };
        read_stat(&self.proc_root, a.pid).is_some_and(|s| s.start_ticks == start / NS_PER_TICK)
    }
}

/// Ancestors of `process` by the session rule, computed from its parent so that the session id
/// of `process` as given is the one that counts.
fn chain(process: &Process, table: &ProcessTable) -> Vec<Ancestor> {
    let by_guid = |g: &str| (!g.is_empty()).then(|| table.get(g)).flatten();
    let parent = by_guid(&process.parent_guid)
        .or_else(|| {
            let own = table.get(&process.guid)?;
            by_guid(own.parent_guid.as_deref()?)
        })
        .or_else(|| table.live_by_pid(process.ppid))
        .filter(|p| p.process.guid != process.guid);
    let Some(parent) = parent else {
        return Vec::new();
    };
    let mut out = vec![ancestor_of(&parent.process)];
    if parent.process.session_id == process.session_id {
        out.extend(table.ancestors(&parent.process.guid));
    }
    out.truncate(table.limits().max_ancestors);
    out
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel TCP state (1 = established, 10 = listen).
    pub state: u8,
    pub inode: u64,
}

/// Parses a socket line of `/proc/net/tcp{,6}` (`None` for the header or a malformed line).
/// Addresses are printed as 32-bit words in host byte order; IPv4-mapped IPv6 addresses are
/// returned as IPv4.
pub fn parse_tcp_line(line: &str) -> Option<TcpSocket> {
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    Some(TcpSocket {
        local: parse_endpoint(f.get(1)?)?,
        remote: parse_endpoint(f.get(2)?)?,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Established TCP connections of `pid` as (fd, remote address), by fd number. Reads the
/// process's own network namespace (`PID/net/tcp{,6}`).
pub fn established_remotes(proc_root: &Path, pid: u32) -> Vec<(u32, SocketAddr)> {
    let dir = proc_root.join(pid.to_string());
    let mut sockets: HashMap<u64, u32> = HashMap::new();
    let Ok(fds) = fs::read_dir(dir.join("fd")) else {
        return Vec::new();
    };
    for ent in fds.flatten() {
        let Some(fd) = ent.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(target) = fs::read_link(ent.path()) else {
            continue;
        };
        let inode = target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
        if let Some(inode) = inode {
            sockets.entry(inode).or_insert(fd);
        }
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(dir.join("net").join(table)) else {
            continue;
        };
        for s in text.lines().filter_map(parse_tcp_line) {
            let remote_set = !s.remote.ip().is_unspecified() && s.remote.port() != 0;
            if let (1, true, Some(&fd)) = (s.state, remote_set, sockets.get(&s.inode)) {
                out.push((fd, s.remote));
            }
        }
    }
    out.sort_unstable();
    out
}

/// The pseudo-terminal `pid` holds, named as the kernel names a tty (`pts3`): a slave it has
/// open (`/dev/pts/3`), or the slave index of a master (`/dev/ptmx`, from the fd's `tty-index`).
pub fn pty_of(proc_root: &Path, pid: u32) -> Option<String> {
    let dir = proc_root.join(pid.to_string());
    let mut fds: Vec<(u32, PathBuf)> = fs::read_dir(dir.join("fd"))
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, fs::read_link(e.path()).ok()?)))
        .collect();
    fds.sort_unstable();
    fds.iter().find_map(|(fd, target)| {
        let t = target.to_str()?;
        if let Some(n) = t.strip_prefix("/dev/pts/").filter(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            return Some(format!("pts{n}"));
        }
        if t == "/dev/ptmx" || t == "/dev/pts/ptmx" {
            let info = fs::read_to_string(dir.join("fdinfo").join(fd.to_string())).ok()?;
            let n: u32 = info.lines().find_map(|l| l.strip_prefix("tty-index:"))?.trim().parse().ok()?;
            return Some(format!("pts{n}"));
        }
        None
    })
}

/// The client of a connection-serving process: the remote end of its established TCP
/// connection with the lowest fd (sshd keeps the client's socket on fd 0).
pub fn client_of(proc_root: &Path, pid: u32) -> Option<SocketAddr> {
    established_remotes(proc_root, pid).first().map(|&(_, addr)| addr)
}

#[cfg(test)]
mod tests;
