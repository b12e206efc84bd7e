//! The `heartbeat` record: the sensor is alive, with its counters.

use super::prelude::*;

impl SyslogSeverity for HeartbeatEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for HeartbeatEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::SensorLifecycle]
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

impl Traced for HeartbeatEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for HeartbeatEvent {
    fn ocsf(&self, _actor: Option<&Process>, _ev: &mut Map<String, Value>) -> Mapping {
        (&BASE, activity(99, "Heartbeat"), None)
    }
}
