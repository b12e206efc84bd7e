//! The `exec` record: a program was executed (execve/execveat).

use super::prelude::*;

impl SyslogSeverity for ExecEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for ExecEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::ProcessCreation]
    }

    fn result(&self) -> Option<i64> {
        None
    }

    fn error(&self) -> Option<&str> {
        None
    }

    fn syscall(&self) -> Option<&str> {
        None
    }
}

impl Traced for ExecEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for ExecEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        (&PROCESS, activity(1, "Launch"), Some((true, None)))
    }
}

impl Decode for kind::Exec {
    type Raw = decode::ExecRaw;

    const FIXED_PART: (usize, bool) = (sc::exec::EXEC_FIXED_SIZE, true);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::exec::decode(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Exec {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.exec(raw, out))
    }
}

impl Attachable for kind::Exec {
    fn attach() -> Attach {
        Attach::Lifecycle
    }
}
