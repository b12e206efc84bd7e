//! The `file` record: a security-relevant file operation.

use super::prelude::*;

impl SyslogSeverity for FileEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for FileEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        file_categories(self)
    }

    fn result(&self) -> Option<i64> {
        Some(self.result)
    }

    fn error(&self) -> Option<&str> {
        Some(&self.error)
    }

    fn syscall(&self) -> Option<&str> {
        Some(&self.syscall)
    }
}

impl Traced for FileEvent {
    fn fact(&self) -> Option<Fact> {
        Some(file_fact(self))
    }
}

impl Ocsf for FileEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("file".into(), file_obj(&self.path));
        if !self.path2.is_empty() {
            ev.insert("file_result".into(), file_obj(&self.path2));
        }
        let err = (!self.error.is_empty()).then(|| self.error.clone());
        (&FILE, file_activity(&self.op, &self.flags), Some(result(self.result, err)))
    }
}

impl Decode for kind::File {
    type Raw = decode::FileRaw;

    const FIXED_PART: (usize, bool) = (sc::file::FILE_FIXED_SIZE, true);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::file::decode(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::File {
    const BULK: bool = true;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, _out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.file(raw))
    }
}

impl Attachable for kind::File {
    fn attach() -> Attach {
        syscall_collector(attach_file)
    }
}
