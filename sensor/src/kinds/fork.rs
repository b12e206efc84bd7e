//! The `fork` record: a process was created.

use super::prelude::*;

impl SyslogSeverity for ForkEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for ForkEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        // A fork is an edge of the process tree, not something rules match on.
        &[]
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

impl Traced for ForkEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for ForkEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        (&PROCESS, activity(1, "Launch"), Some((true, None)))
    }
}

impl Decode for kind::Fork {
    type Raw = decode::ForkRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::process::ForkEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::process::decode_fork(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Fork {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.fork(raw))
    }
}

impl Attachable for kind::Fork {
    fn attach() -> Attach {
        Attach::Lifecycle
    }
}
