//! The `bpf_load` record: a BPF program was loaded by another process.

use super::prelude::*;

impl SyslogSeverity for BpfLoadEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for BpfLoadEvent {
    const FIELDS: &'static [Field] = &[
        Field {
            name: "BpfProgramType",
            scope: Scope::Only(&[Category::BpfLoad]),
            doc: "enum bpf_prog_type number (e.g. 2 = kprobe, 26 = tracing)",
            get: |v| ev!(v, Event::BpfLoad(b) => int(b.prog_type)),
        },
        Field {
            name: "BpfProgramName",
            scope: Scope::Only(&[Category::BpfLoad]),
            doc: "the program name the loader gave",
            get: |v| ev!(v, Event::BpfLoad(b) => ne(&b.prog_name)),
        },
    ];

    fn categories(&self) -> &'static [Category] {
        &[Category::BpfLoad]
    }

    fn result(&self) -> Option<i64> {
        Some(i64::from(self.result))
    }

    fn error(&self) -> Option<&str> {
        None
    }

    fn syscall(&self) -> Option<&str> {
        None
    }
}

impl Traced for BpfLoadEvent {
    fn fact(&self) -> Option<Fact> {
        let item = format!(
            "{} (type {}){}",
            self.prog_name,
            self.prog_type,
            result_note(i64::from(self.result), "")
        );
        Some(Fact::simple(Kind::Kernel, format!("bpf {item}"), "loaded BPF program", item))
    }
}

impl Ocsf for BpfLoadEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert(
            "driver".into(),
            json!({ "file": { "name": self.prog_name, "type_id": 99, "type": "BPF program" } }),
        );
        (&KERNEL_EXT, activity(1, "Load"), Some(result(i64::from(self.result), None)))
    }
}

impl Decode for kind::BpfLoad {
    type Raw = decode::BpfLoadRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::BpfLoadEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::syscalls::decode_bpf(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::BpfLoad {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.by_process(&raw.header, &raw.task, events::bpf_load(raw)))
    }
}

impl Attachable for kind::BpfLoad {
    fn attach() -> Attach {
        syscall_collector(|a| a.syscall_pair(names::PROG_SYS_ENTER_BPF, names::PROG_SYS_EXIT_BPF, "bpf"))
    }
}
