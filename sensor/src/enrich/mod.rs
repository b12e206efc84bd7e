//! Enrichment: kernel events → the process and event parts of a record.
//!
//! Adds what a kernel event does not carry by itself: the stable process GUIDs (its own and its
//! parent's), wall-clock times, names for ids, the cgroup path, and — for events other than exec —
//! the executable and command line remembered from the process's exec or from the `/proc` seed.

pub mod cgroups;
pub mod clock;
mod events;
pub mod guid;
pub mod hasher;
pub mod host;
pub mod process_table;
mod procfs;
pub mod session;
pub mod users;

use sensor_common::task::TASK_EXE_DELETED;
use sensor_proto::v1::{LossEvent, Namespaces, Process, audit_record::Event};

use crate::{
    decode::{ExecRaw, KernelEvent, task::TaskRaw},
    pipeline::{LossReport, PipelineEvent},
    record::text::text,
};
use clock::BootClock;
use guid::GuidMaker;

/// Filesystem magic numbers of memory-backed filesystems (`include/uapi/linux/magic.h`).
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// An event with everything the record stage needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    pub boot_ns: u64,
    pub process: Option<Process>,
    pub event: Event,
}

#[derive(Debug)]
pub struct Enricher {
    clock: BootClock,
    guids: GuidMaker,
    cgroups: cgroups::CgroupPaths,
}

impl Enricher {
    pub fn new(clock: BootClock, boot_id: &str) -> Self {
        Self { clock, guids: GuidMaker::new(boot_id), cgroups: cgroups::CgroupPaths::new() }
    }

    pub fn enrich(&mut self, ev: PipelineEvent) -> Enriched {
        let ev = match ev {
            PipelineEvent::Loss(l) => return loss(l),
            PipelineEvent::Kernel(k) => k,
        };
        match ev {
            KernelEvent::Exec(e) => self.exec(e),
            KernelEvent::Fork(f) => {
                let process = self.process(f.header.tgid, f.header.tid, &f.task);
                let event = events::fork(&f, process.parent_guid.clone());
                self.done(f.header.boot_ns, process, event)
            }
            KernelEvent::Exit(x) => {
                let process = self.process(x.header.tgid, x.header.tid, &x.task);
                self.done(x.header.boot_ns, process, events::exit(&x))
            }
            KernelEvent::Cred(c) => {
                let process = self.process(c.header.tgid, c.header.tid, &c.task);
                let event = events::privilege(&c);
                self.done(c.header.boot_ns, process, event)
            }
            KernelEvent::Ptrace(p) => {
                let process = self.process(p.header.tgid, p.header.tid, &p.task);
                let (target_guid, target_exe) = self.live_identity(p.target_pid);
                self.done(p.header.boot_ns, process, events::ptrace(&p, target_guid, target_exe))
            }
            KernelEvent::ModuleLoad(m) => {
                let process = self.process(m.header.tgid, m.header.tid, &m.task);
                self.done(m.header.boot_ns, process, events::module_load(&m))
            }
            KernelEvent::BpfLoad(b) => {
                let process = self.process(b.header.tgid, b.header.tid, &b.task);
                self.done(b.header.boot_ns, process, events::bpf_load(&b))
            }
            KernelEvent::MemfdCreate(m) => {
                let process = self.process(m.header.tgid, m.header.tid, &m.task);
                self.done(m.header.boot_ns, process, events::memfd_create(&m))
            }
        }
    }

    fn done(&mut self, boot_ns: u64, process: Process, event: Event) -> Enriched {
        Enriched { boot_ns, process: Some(process), event }
    }

    /// The process part every event shares, from the kernel's task context.
    fn process(&mut self, tgid: u32, tid: u32, t: &TaskRaw) -> Process {
        Process {
            guid: self.guids.guid(tgid, t.start_boottime_ns),
            pid: tgid,
            tid,
            ppid: t.ppid,
            uid: t.uid,
            euid: t.euid,
            gid: t.gid,
            egid: t.egid,
            auid: t.auid,
            session_id: t.sessionid,
            tty: text(&t.tty).0,
            cgroup_id: t.cgroup_id,
            cgroup: self.cgroups.path(t.cgroup_id).unwrap_or_default(),
            namespaces: Some(Namespaces {
                mnt: t.mnt_ns,
                pid: t.pid_ns,
                net: t.net_ns,
                uts: t.uts_ns,
                ipc: t.ipc_ns,
                cgroup: t.cgroup_ns,
                user: t.user_ns,
            }),
            start_time: Some(self.clock.wall(t.start_boottime_ns)),
            start_boot_ns: t.start_boottime_ns,
            comm: text(&t.comm).0,
            exe_deleted: t.flags & TASK_EXE_DELETED != 0,
            parent_guid: if t.parent_start_boottime_ns == 0 && t.ppid == 0 {
                String::new()
            } else {
                self.guids.guid(t.ppid, t.parent_start_boottime_ns)
            },
            ..Default::default()
        }
    }

    /// GUID and exe of a live process (ptrace targets), from `/proc`.
    fn live_identity(&self, pid: u32) -> (String, String) {
        let Some(ticks) = procfs::start_ticks(pid) else { return (String::new(), String::new()) };
        let start = ticks * guid::NS_PER_TICK;
        let exe = procfs::live_view(pid, start).and_then(|v| v.exe).map(|e| text(&e).0).unwrap_or_default();
        (self.guids.guid(pid, start), exe)
    }

    fn exec(&mut self, e: ExecRaw) -> Enriched {
        let mut process = self.process(e.header.tgid, e.header.tid, &e.task);
        let (argv, argv_raw) = texts(&e.argv);
        let event = events::exec(&e, argv.len());
        let (exe, exe_raw) = raw_split(e.exe.path.clone());
        process.exe_memfd = e.exe.pseudo && e.exe.path.starts_with(b"memfd:");
        process.exe_deleted |= e.exe.deleted;
        process.exe_writable_tmp =
            !e.exe.readonly && matches!(e.exe_fs_magic, TMPFS_MAGIC | RAMFS_MAGIC) && !process.exe_memfd;
        process.exe = exe;
        process.exe_raw = exe_raw;
        process.cwd = raw_split(e.cwd.path.clone()).0;
        process.argv = argv;
        process.argv_raw = argv_raw;
        process.argv_truncated = e.args_truncated;
        Enriched { boot_ns: e.header.boot_ns, process: Some(process), event }
    }
}

/// Texts of byte strings; the raw bytes are kept (all of them, index-aligned) only when some
/// text had to be escaped.
fn texts(items: &[Vec<u8>]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut any_escaped = false;
    let out = items
        .iter()
        .map(|a| {
            let (s, escaped) = text(a);
            any_escaped |= escaped;
            s
        })
        .collect();
    (out, if any_escaped { items.to_vec() } else { Vec::new() })
}

/// Text and, when it had to be escaped, the exact bytes.
fn raw_split(bytes: Vec<u8>) -> (String, Vec<u8>) {
    let (s, escaped) = text(&bytes);
    (s, if escaped { bytes } else { Vec::new() })
}

fn loss(l: LossReport) -> Enriched {
    Enriched {
        boot_ns: l.last_boot_ns,
        process: None,
        event: Event::Loss(LossEvent {
            kind: l.kind.to_owned(),
            reason: l.reason.to_owned(),
            count: l.count,
            first_boot_ns: l.first_boot_ns,
            last_boot_ns: l.last_boot_ns,
        }),
    }
}
