//! The `memfd_create` record: an anonymous memory file was created.

use super::prelude::*;
use crate::{
    decode::{
        fixed,
        task::{TaskRaw, until_nul},
    },
    enrich::file::error_name,
    text::text,
};

/// A decoded `memfd_create` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemfdRaw {
    pub header: EventHeader,
    pub task: TaskRaw,
    pub flags: u32,
    pub result: i32,
    pub name: Vec<u8>,
}

fn decode_memfd(header: EventHeader, buf: &[u8]) -> Result<MemfdRaw, DecodeError> {
    let (e, _) = fixed::<sc::syscalls::MemfdEvent>(buf)?;
    Ok(MemfdRaw {
        task: (&e.task).into(),
        flags: e.flags,
        result: e.result,
        name: until_nul(&e.name).to_vec(),
        header,
    })
}

/// The record's event part.
fn memfd_create(m: &MemfdRaw) -> Event {
    Event::MemfdCreate(MemfdCreateEvent {
        name: text(&m.name).0,
        flags: m.flags,
        result: m.result,
        error: error_name(m.result.into()),
    })
}

impl SyslogSeverity for MemfdCreateEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for MemfdCreateEvent {
    const FIELDS: &'static [Field] = &[
        Field {
            name: "MemfdName",
            scope: Scope::Only(&[Category::MemfdCreate]),
            doc: "name given to memfd_create",
            get: |v| ev!(v, Event::MemfdCreate(m) => s(&m.name)),
        },
        Field {
            name: "MemfdFlags",
            scope: Scope::Only(&[Category::MemfdCreate]),
            doc: "MFD_* flags (a number)",
            get: |v| ev!(v, Event::MemfdCreate(m) => int(m.flags)),
        },
    ];

    fn categories(&self) -> &'static [Category] {
        &[Category::MemfdCreate]
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

impl Traced for MemfdCreateEvent {
    fn fact(&self) -> Option<Fact> {
        Some(Fact::simple(Kind::Kernel, format!("memfd {}", self.name), "memfd_create", self.name.clone()))
    }
}

impl Ocsf for MemfdCreateEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        (&PROCESS, activity(99, "Other"), Some(result(i64::from(self.result), None)))
    }
}

impl Decode for kind::MemfdCreate {
    type Raw = MemfdRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::MemfdEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode_memfd(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::MemfdCreate {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.by_process(&raw.header, &raw.task, memfd_create(raw)))
    }
}

impl Attachable for kind::MemfdCreate {
    fn attach() -> Attach {
        syscall_collector(|a| {
            a.syscall_pair(
                sc::syscalls::PROG_SYS_ENTER_MEMFD,
                sc::syscalls::PROG_SYS_EXIT_MEMFD,
                "memfd_create",
            )
        })
    }
}
