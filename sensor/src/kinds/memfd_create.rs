//! The `memfd_create` record: an anonymous memory file was created.

use super::prelude::*;

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
