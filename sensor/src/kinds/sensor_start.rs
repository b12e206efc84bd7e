//! The `sensor_start` record: the sensor started.

use super::prelude::*;

impl SyslogSeverity for SensorStartEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_NOTICE
    }
}

impl Detectable for SensorStartEvent {
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

impl Traced for SensorStartEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for SensorStartEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("app".into(), json!({ "name": "sensor", "version": self.version }));
        (&APP_LIFECYCLE, activity(3, "Start"), None)
    }
}
