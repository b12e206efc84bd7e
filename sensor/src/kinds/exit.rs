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
