//! The process part every record carries, built from the kernel's task context — in the
//! allocations of a record written before.
//!
//! A record's process part is a dozen strings (GUIDs, names, paths, the command line). Building
//! them new and freeing them for every record was the largest share of the record stage's
//! allocations; the record stage hands the process part of each written record back
//! ([`Enricher::reuse`]) and the next one is written into its strings.

use sensor_common::task::{TASK_EXE_DELETED, TASK_IA32_SYSCALL};
use sensor_proto::v1::{Namespaces, Process};

use super::{Enricher, Spares};
use crate::{decode::task::TaskRaw, text::text_into};

/// Parts of each kind kept for reuse (a record and the alerts it raises are written one at a time).
const SPARE_MAX: usize = 4;

impl Enricher {
    /// Takes parts of written records (from `from`) to build the next ones in; the rest of
    /// `from` is dropped.
    pub fn reuse(&mut self, from: &mut Spares) {
        refill(&mut self.spare, &mut from.processes);
        refill(&mut self.spare_files, &mut from.files);
    }

    /// The process part every event shares, from the kernel's task context. Every field is
    /// named (no `..Default::default()`): a field of a reused part is either set here or
    /// emptied, so nothing of the process it described before can leak into this one, and a
    /// new schema field does not compile until it is decided here.
    pub(super) fn process(&mut self, tgid: u32, tid: u32, t: &TaskRaw) -> Box<Process> {
        // Built in place in a spare box: a process part is ~450 bytes, moved at every step.
        let mut part = self.spare.pop().unwrap_or_default();
        let Process {
            mut guid,
            pid: _,
            tid: _,
            ppid: _,
            mut exe,
            mut exe_raw,
            mut argv,
            mut argv_raw,
            argv_truncated: _,
            mut cwd,
            uid: _,
            euid: _,
            gid: _,
            egid: _,
            auid: _,
            session_id: _,
            mut tty,
            mut cgroup,
            start_time: _,
            start_boot_ns: _,
            mut comm,
            mut user,
            mut group,
            mut login_user,
            exe_memfd: _,
            exe_deleted: _,
            exe_writable_tmp: _,
            mut exe_sha256,
            cgroup_id: _,
            namespaces: _,
            mut parent_guid,
            syscall_ia32: _,
        } = std::mem::take(&mut *part);
        self.guids.guid_into(tgid, t.start_boottime_ns, &mut guid);
        if t.parent_start_boottime_ns == 0 && t.ppid == 0 {
            parent_guid.clear();
        } else {
            self.guids.guid_into(t.ppid, t.parent_start_boottime_ns, &mut parent_guid);
        }
        text_into(&t.tty, &mut tty);
        text_into(&t.comm, &mut comm);
        self.cgroups.path_into(t.cgroup_id, &mut cgroup);
        // Set later from the process table (program) and the name cache.
        for s in [&mut exe, &mut cwd, &mut exe_sha256, &mut user, &mut group, &mut login_user] {
            s.clear();
        }
        exe_raw.clear();
        argv.clear();
        argv_raw.clear();
        *part = Process {
            guid,
            pid: tgid,
            tid,
            ppid: t.ppid,
            exe,
            exe_raw,
            argv,
            argv_raw,
            argv_truncated: false,
            cwd,
            uid: t.uid,
            euid: t.euid,
            gid: t.gid,
            egid: t.egid,
            auid: t.auid,
            session_id: t.sessionid,
            tty,
            cgroup,
            start_time: Some(self.clock.wall(t.start_boottime_ns)),
            start_boot_ns: t.start_boottime_ns,
            comm,
            user,
            group,
            login_user,
            exe_memfd: false,
            exe_deleted: t.flags & TASK_EXE_DELETED != 0,
            exe_writable_tmp: false,
            exe_sha256,
            cgroup_id: t.cgroup_id,
            namespaces: Some(Namespaces {
                mnt: t.mnt_ns,
                pid: t.pid_ns,
                net: t.net_ns,
                uts: t.uts_ns,
                ipc: t.ipc_ns,
                cgroup: t.cgroup_ns,
                user: t.user_ns,
            }),
            parent_guid,
            syscall_ia32: t.flags & TASK_IA32_SYSCALL != 0,
        };
        part
    }
}

/// Moves parts from `from` into `into` up to [`SPARE_MAX`]; drops the rest of `from`.
fn refill<T>(into: &mut Vec<T>, from: &mut Vec<T>) {
    while into.len() < SPARE_MAX
        && let Some(part) = from.pop()
    {
        into.push(part);
    }
    from.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decode::task::Padded,
        enrich::{EnrichConfig, clock::BootClock},
    };

    fn task(start: u64, tty: &[u8], comm: &[u8]) -> TaskRaw {
        TaskRaw {
            start_boottime_ns: start,
            parent_start_boottime_ns: 1_000,
            ppid: 1,
            uid: 1000,
            euid: 0,
            auid: 1000,
            sessionid: 3,
            mnt_ns: 9,
            flags: TASK_EXE_DELETED,
            tty: Padded::new(tty),
            comm: Padded::new(comm),
            ..TaskRaw::default()
        }
    }

    /// A process part built in a reused one is exactly the part a fresh one gives: nothing of
    /// the process it described before (program, names, flags) carries over.
    #[test]
    fn a_reused_process_part_keeps_nothing_of_its_last_process() {
        let clock = BootClock::now();
        let mut e = Enricher::new(clock, "boot", EnrichConfig::default());
        let mut old = e.process(4242, 4243, &task(5_000_000_000, b"pts/7", b"tar\xff"));
        old.exe = "/usr/bin/tar".into();
        old.exe_raw = b"/usr/bin/tar".to_vec();
        old.argv = vec!["tar".into(), "czf".into(), "/tmp/x.tgz".into()];
        old.argv_raw = vec![b"tar".to_vec()];
        old.argv_truncated = true;
        old.cwd = "/srv/records".into();
        old.user = "nurse".into();
        old.group = "ward".into();
        old.login_user = "nurse".into();
        old.exe_memfd = true;
        old.exe_writable_tmp = true;
        old.exe_sha256 = "ab".repeat(32);
        e.reuse(&mut Spares { processes: vec![old], files: Vec::new() });

        let t = TaskRaw { tty: Padded::default(), flags: 0, ..task(7_000_000_000, b"", b"cron") };
        let reused = e.process(77, 78, &t);
        let fresh = Enricher::new(clock, "boot", EnrichConfig::default()).process(77, 78, &t);
        assert_eq!(reused, fresh);
        assert!(e.spare.is_empty(), "the spare part was used");
    }

    #[test]
    fn reuse_keeps_a_bounded_number_of_parts() {
        let mut e = Enricher::new(BootClock::now(), "boot", EnrichConfig::default());
        let mut parts = Spares {
            processes: vec![Box::<Process>::default(); SPARE_MAX + 3],
            files: vec![sensor_proto::v1::FileEvent::default(); SPARE_MAX + 1],
        };
        e.reuse(&mut parts);
        assert_eq!(e.spare.len(), SPARE_MAX);
        assert_eq!(e.spare_files.len(), SPARE_MAX);
        assert!(
            parts.processes.is_empty() && parts.files.is_empty(),
            "the rest are dropped, not handed back again"
        );
    }
}
