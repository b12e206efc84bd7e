//! Enrichment: kernel events → the process and event parts of a record.
//!
//! Adds what the kernel event does not carry by itself: the stable process GUID, wall-clock
//! times, and facts read from `/proc` while the process is still the one that produced the event
//! (checked by its start time).

pub mod clock;
pub mod guid;
pub mod hasher;
pub mod host;
pub mod process_table;
mod procfs;
pub mod session;
pub mod users;

use sensor_proto::v1::{ExecEvent, LossEvent, Process, audit_record::Event};

use crate::{
    decode::{ExecRaw, KernelEvent},
    pipeline::{LossReport, PipelineEvent},
    record::text::text,
};
use clock::BootClock;
use guid::GuidMaker;

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
}

impl Enricher {
    pub fn new(clock: BootClock, boot_id: &str) -> Self {
        Self {
            clock,
            guids: GuidMaker::new(boot_id),
        }
    }

    pub fn enrich(&mut self, ev: PipelineEvent) -> Enriched {
        match ev {
            PipelineEvent::Kernel(KernelEvent::Exec(e)) => self.exec(e),
            PipelineEvent::Loss(l) => loss(l),
        }
    }

    fn exec(&mut self, e: ExecRaw) -> Enriched {
        let pid = e.header.tgid;
        let (argv, argv_raw) = texts(e.argv);
        let (filename, filename_raw) = raw_split(e.filename);
        let live = procfs::live_view(pid, e.start_boottime_ns).unwrap_or_default();
        let (exe, exe_raw) = match live.exe {
            Some(exe) => raw_split(exe),
            None => (filename.clone(), filename_raw.clone()),
        };
        let process = Process {
            guid: self.guids.guid(pid, e.start_boottime_ns),
            pid,
            tid: e.header.tid,
            ppid: e.ppid,
            exe,
            exe_raw,
            argv_truncated: e.args_truncated,
            cwd: live.cwd.map(|c| raw_split(c).0).unwrap_or_default(),
            uid: e.uid,
            euid: e.euid,
            gid: e.gid,
            egid: e.egid,
            auid: e.auid,
            session_id: e.sessionid,
            start_time: Some(self.clock.wall(e.start_boottime_ns)),
            start_boot_ns: e.start_boottime_ns,
            comm: text(&e.comm).0,
            ..Default::default()
        };
        let event = Event::Exec(ExecEvent {
            filename,
            filename_raw,
            argc: u32::try_from(argv.len()).unwrap_or(u32::MAX),
            args_total_bytes: e.args_total_len,
            old_pid: e.old_pid,
            filename_truncated: e.filename_truncated,
            argv_unreadable: e.args_unreadable,
            ..Default::default()
        });
        let process = Process {
            argv,
            argv_raw,
            ..process
        };
        Enriched {
            boot_ns: e.header.boot_ns,
            process: Some(process),
            event,
        }
    }
}

/// Texts of byte strings; the raw bytes are kept (all of them, index-aligned) only when some
/// text had to be escaped.
fn texts(items: Vec<Vec<u8>>) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut any_escaped = false;
    let out = items
        .iter()
        .map(|a| {
            let (s, escaped) = text(a);
            any_escaped |= escaped;
            s
        })
        .collect();
    (out, if any_escaped { items } else { Vec::new() })
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
