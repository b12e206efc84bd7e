//! The `sensor_stop` record: the sensor is stopping.

use super::prelude::*;

impl SyslogSeverity for SensorStopEvent {
    fn syslog_severity(&self) -> u8 {
        if self.reason == "error" { SEVERITY_ERROR } else { SEVERITY_NOTICE }
    }
}

impl Detectable for SensorStopEvent {
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

impl Traced for SensorStopEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for SensorStopEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("app".into(), json!({ "name": "sensor" }));
        ev.insert("message".into(), json!(format!("stopping: {}", self.reason)));
        (&APP_LIFECYCLE, activity(4, "Stop"), Some((self.reason != "error", None)))
    }
}
