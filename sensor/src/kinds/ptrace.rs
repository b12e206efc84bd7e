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
