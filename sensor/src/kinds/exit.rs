//! The `exit` record: a process ended.

use super::prelude::*;

impl SyslogSeverity for ExitEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for ExitEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::ProcessExit]
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

impl Traced for ExitEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for ExitEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        ev.insert("exit_code".into(), json!(self.code));
        (&PROCESS, activity(2, "Terminate"), None)
    }
}

impl Decode for kind::Exit {
    type Raw = decode::ExitRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::process::ExitEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::process::decode_exit(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Exit {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.exit(raw))
    }
}

impl Attachable for kind::Exit {
    fn attach() -> Attach {
        Attach::Lifecycle
    }
}
