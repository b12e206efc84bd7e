//! The `bpf_access` record: a `bpf()` command touching the sensor's objects.

use super::prelude::*;

impl SyslogSeverity for BpfAccessEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_WARNING
    }
}

impl Detectable for BpfAccessEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::BpfAccess]
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

impl Traced for BpfAccessEvent {
    fn fact(&self) -> Option<Fact> {
        let item = format!(
            "{} {} {}{}",
            self.command,
            self.object_type,
            self.object_id,
            result_note(i64::from(self.result), "")
        );
        Some(Fact::simple(Kind::Kernel, item.clone(), "touched the sensor's BPF objects", item))
    }
}

impl Ocsf for BpfAccessEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        let name = format!("{} {}", self.object_type, self.object_id);
        let file = if self.path.is_empty() {
            json!({ "name": name, "type_id": 99, "type": "BPF object" })
        } else {
            json!({ "name": name, "path": self.path, "type_id": 99, "type": "BPF object" })
        };
        ev.insert("driver".into(), json!({ "file": file }));
        (&KERNEL_EXT, activity(99, "Access"), Some(result(i64::from(self.result), None)))
    }
}

impl Decode for kind::BpfAccess {
    type Raw = decode::BpfCmdRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::tamper::BpfCmdEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::tamper::decode_bpf_cmd(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::BpfAccess {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        cx.bpf_access(raw)
    }
}

impl Attachable for kind::BpfAccess {
    fn attach() -> Attach {
        // Reported by `bpf_load`'s programs, attached with them.
        Attach::Shared
    }
}
