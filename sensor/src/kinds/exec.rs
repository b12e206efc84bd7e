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
