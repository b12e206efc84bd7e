//! The `ptrace` record: the process attached to another with ptrace.

use super::prelude::*;

impl SyslogSeverity for PtraceEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for PtraceEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::Ptrace]
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

impl Traced for PtraceEvent {
    fn fact(&self) -> Option<Fact> {
        let item = format!(
            "{} pid {} {}{}",
            self.request,
            self.target_pid,
            self.target_exe,
            result_note(i64::from(self.result), "")
        );
        Some(Fact::simple(Kind::Kernel, item.clone(), "ptrace", item))
    }
}

impl Ocsf for PtraceEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert(
            "process".into(),
            json!({ "pid": self.target_pid, "uid": self.target_guid, "file": file_obj(&self.target_exe) }),
        );
        (&PROCESS, activity(4, "Inject"), Some(result(i64::from(self.result), None)))
    }
}

impl Decode for kind::Ptrace {
    type Raw = decode::PtraceRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::PtraceEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::syscalls::decode_ptrace(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Ptrace {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.ptrace(raw))
    }
}

impl Attachable for kind::Ptrace {
    fn attach() -> Attach {
        syscall_collector(attach_ptrace)
    }
}
