//! The `privilege` record: credentials changed (setuid family, capset).

use super::prelude::*;

impl SyslogSeverity for PrivilegeEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for PrivilegeEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::PrivilegeChange]
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

impl Traced for PrivilegeEvent {
    fn fact(&self) -> Option<Fact> {
        let (o, n) = (self.old.unwrap_or_default(), self.new.unwrap_or_default());
        let item = format!(
            "{}: uid {}→{} euid {}→{} gid {}→{}",
            self.syscall, o.uid, n.uid, o.euid, n.euid, o.gid, n.gid
        );
        Some(Fact::simple(Kind::Privilege, item.clone(), "changed credentials", item))
    }
}

impl Ocsf for PrivilegeEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        if let Some(p) = actor {
            ev.insert("process".into(), process(p, &[]));
        }
        (&PROCESS, activity(5, "Set User ID"), Some((true, None)))
    }
}

impl Decode for kind::Cred {
    type Raw = decode::CredRaw;

    const FIXED_PART: (usize, bool) = (size_of::<sc::syscalls::CredEvent>(), false);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::syscalls::decode_cred(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Cred {
    const BULK: bool = false;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.by_process(&raw.header, &raw.task, events::privilege(raw)))
    }
}

impl Attachable for kind::Cred {
    fn attach() -> Attach {
        syscall_collector(attach_cred)
    }
}
