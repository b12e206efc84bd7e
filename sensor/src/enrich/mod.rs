//! Enrichment: kernel events → the process and event parts of a record.
//!
//! Adds what the kernel event does not carry by itself: the stable process GUID, wall-clock
//! times, and facts read from `/proc` while the process is still the one that produced the event
//! (checked by its start time).

pub mod clock;
pub mod guid;
pub mod host;
mod procfs;

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
        Self { clock, guids: GuidMaker::new(boot_id) }
    }

    pub fn enrich(&mut self, ev: PipelineEvent) -> Enriched {
        match ev {
            PipelineEvent::Kernel(KernelEvent::Exec(e)) => self.exec(e),
            PipelineEvent::Loss(l) => loss(l),
        }
    }

    fn exec(&mut self, e: ExecRaw) -> Enriched {
        let pid = e.header.tgid;
        let mut argv = Vec::with_capacity(e.argv.len());
        let mut argv_raw = Vec::new();
        let mut any_escaped = false;
        for a in &e.argv {
            let (s, escaped) = text(a);
            any_escaped |= escaped;
            argv.push(s);
        }
        if any_escaped {
            argv_raw = e.argv.clone();
        }
        let (filename, filename_escaped) = text(&e.filename);
        let live = procfs::live_view(pid, e.start_boottime_ns);
        let (exe, exe_raw) = match live.as_ref().and_then(|l| l.exe.clone()) {
            Some(exe) => raw_split(exe),
            None => (filename.clone(), if filename_escaped { e.filename.clone() } else { Vec::new() }),
        };
        let process = Process {
            guid: self.guids.guid(pid, e.start_boottime_ns),
            pid,
            tid: e.header.tid,
            ppid: e.ppid,
            exe,
            exe_raw,
            argv,
            argv_raw,
            argv_truncated: e.args_truncated,
            cwd: live.as_ref().and_then(|l| l.cwd.clone()).map(|c| raw_split(c).0).unwrap_or_default(),
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
            filename_raw: if filename_escaped { e.filename.clone() } else { Vec::new() },
            argc: u32::try_from(e.argv.len()).unwrap_or(u32::MAX),
            args_total_bytes: e.args_total_len,
            old_pid: e.old_pid,
            filename_truncated: e.filename_truncated,
            argv_unreadable: e.args_unreadable,
        });
        Enriched { boot_ns: e.header.boot_ns, process: Some(process), event }
    }
}

/// Text and raw bytes for a path read from `/proc`.
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
