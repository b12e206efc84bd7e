//! The `checkpoint` record: chain checkpoint written by the sensor.

use super::prelude::*;

impl SyslogSeverity for CheckpointEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for CheckpointEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        // The sensor's own chain checkpoints: never evaluated.
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

impl Traced for CheckpointEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for CheckpointEvent {
    fn ocsf(&self, _actor: Option<&Process>, _ev: &mut Map<String, Value>) -> Mapping {
        (&BASE, activity(99, "Checkpoint"), None)
    }
}
