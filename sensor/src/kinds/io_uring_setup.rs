//! The `io_uring_setup` record: the process set up an io_uring instance. What it then submits
//! through the ring (opens, connects, reads, writes) does not pass the system call tracepoints,
//! so this record is the sensor's only sight of that channel.

use super::prelude::*;
use crate::{decode::fixed, decode::task::TaskRaw, enrich::file::error_name};

/// `IORING_SETUP_SQPOLL`: a kernel thread polls the submission queue.
const IORING_SETUP_SQPOLL: u32 = 1 << 1;

/// A decoded `io_uring_setup` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoUringSetupRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub entries: u32,
    pub flags: u32,
    pub result: i32,
}

impl Decode for kind::IoUringSetup {
    type Raw = IoUringSetupRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::IoUringSetupEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        let (e, _) = fixed::<sc::syscalls::IoUringSetupEvent>(buf)?;
        Ok(IoUringSetupRaw {
            task: (&e.task).into(),
            entries: e.entries,
            flags: e.flags,
            result: e.result,
            header,
        })
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::IoUringSetup {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        let event = Event::IoUringSetup(IoUringSetupEvent {
            entries: raw.entries,
            flags: raw.flags,
            sqpoll: raw.flags & IORING_SETUP_SQPOLL != 0,
            result: raw.result,
            error: error_name(raw.result.into()),
        });
        Some(cx.by_process(&raw.header, &raw.task, event))
    }
}

impl Attachable for kind::IoUringSetup {
    fn attach() -> Attach {
        syscall_collector(|a| {
            use sc::syscalls::{PROG_SYS_ENTER_IO_URING_SETUP, PROG_SYS_EXIT_IO_URING_SETUP};
            a.syscall_pair(PROG_SYS_ENTER_IO_URING_SETUP, PROG_SYS_EXIT_IO_URING_SETUP, "io_uring_setup")
        })
    }
}

impl SyslogSeverity for IoUringSetupEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for IoUringSetupEvent {
    const FIELDS: &'static [Field] = &[
        Field {
            name: "IoUringEntries",
            scope: Scope::Only(&[Category::IoUring]),
            doc: "submission queue entries asked for",
            get: |v| ev!(v, Event::IoUringSetup(u) => int(u.entries)),
        },
        Field {
            name: "IoUringFlags",
            scope: Scope::Only(&[Category::IoUring]),
            doc: "IORING_SETUP_* flags (a number)",
            get: |v| ev!(v, Event::IoUringSetup(u) => int(u.flags)),
        },
        Field {
            name: "IoUringSqpoll",
            scope: Scope::Only(&[Category::IoUring]),
            doc: "`true` when a kernel thread polls the ring (no system call needed to submit)",
            get: |v| ev!(v, Event::IoUringSetup(u) => boolean(u.sqpoll)),
        },
    ];

    fn categories(&self) -> &'static [Category] {
        &[Category::IoUring]
    }

    fn result(&self) -> Option<i64> {
        Some(i64::from(self.result))
    }

    fn error(&self) -> Option<&str> {
        Some(&self.error)
    }

    fn syscall(&self) -> Option<&str> {
        None
    }
}

impl Traced for IoUringSetupEvent {
    fn fact(&self) -> Option<Fact> {
        let mode = if self.sqpoll { ", kernel polling (SQPOLL)" } else { "" };
        let item =
            format!("{} entries{mode}{}", self.entries, result_note(i64::from(self.result), &self.error));
        Some(Fact::simple(Kind::Kernel, format!("io_uring {item}"), "set up io_uring", item))
    }
}

impl Ocsf for IoUringSetupEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        let err = (!self.error.is_empty()).then(|| self.error.clone());
        (&PROCESS, activity(99, "Other"), Some(result(i64::from(self.result), err)))
    }
}
