//! The `signal` record: a signal generated for the sensor.

use super::prelude::*;

impl SyslogSeverity for SignalEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for SignalEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::Signal]
    }

    fn result(&self) -> Option<i64> {
        // A signal's `result` is the kernel's delivery verdict, not a return value.
        None
    }

    fn error(&self) -> Option<&str> {
        None
    }

    fn syscall(&self) -> Option<&str> {
        None
    }
}

impl Traced for SignalEvent {
    fn fact(&self) -> Option<Fact> {
        let item = format!("{} to pid {} {}", self.name, self.target_pid, self.target_exe);
        Some(Fact::simple(Kind::Kernel, item.clone(), "signalled the sensor", item))
    }
}

impl Ocsf for SignalEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert(
            "process".into(),
            json!({ "pid": self.target_pid, "uid": self.target_guid, "file": file_obj(&self.target_exe) }),
        );
        ev.insert("message".into(), json!(format!("{} sent to pid {}", self.name, self.target_pid)));
        (&PROCESS, activity(99, "Signal"), None)
    }
}

impl Decode for kind::Signal {
    type Raw = decode::SignalRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::tamper::SignalEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::tamper::decode_signal(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Signal {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.signal(raw))
    }
}

impl Attachable for kind::Signal {
    fn attach() -> Attach {
        Attach::Collector { attach: attach_signal, syscalls: false }
    }
}
