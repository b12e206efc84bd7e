//! The `module_load` record: a kernel module was loaded.

use super::prelude::*;

impl SyslogSeverity for ModuleLoadEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for ModuleLoadEvent {
    const FIELDS: &'static [Field] = &[Field {
        name: "ModuleName",
        scope: Scope::Only(&[Category::ModuleLoad]),
        doc: "kernel module name",
        get: |v| ev!(v, Event::ModuleLoad(m) => ne(&m.name)),
    }];

    fn categories(&self) -> &'static [Category] {
        &[Category::ModuleLoad]
    }

    fn result(&self) -> Option<i64> {
        None
    }

    fn error(&self) -> Option<&str> {
        None
    }

    fn syscall(&self) -> Option<&str> {
        Some(&self.syscall)
    }
}

impl Traced for ModuleLoadEvent {
    fn fact(&self) -> Option<Fact> {
        Some(Fact::simple(
            Kind::Kernel,
            format!("mod {}", self.name),
            "loaded kernel module",
            self.name.clone(),
        ))
    }
}

impl Ocsf for ModuleLoadEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("driver".into(), json!({ "file": { "name": self.name, "type_id": 1 } }));
        (&KERNEL_EXT, activity(1, "Load"), None)
    }
}

impl Decode for kind::ModuleLoad {
    type Raw = decode::ModuleRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::ModuleEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::syscalls::decode_module(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::ModuleLoad {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.by_process(&raw.header, &raw.task, events::module_load(raw)))
    }
}

impl Attachable for kind::ModuleLoad {
    fn attach() -> Attach {
        Attach::Collector {
            attach: |a| a.tracepoint(names::PROG_MODULE_LOAD, "module", "module_load"),
            syscalls: false,
        }
    }
}
