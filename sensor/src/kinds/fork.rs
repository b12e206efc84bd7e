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
