//! The `previous_run` record: the previous run ended without a final checkpoint.

use super::prelude::*;

impl SyslogSeverity for PreviousRunEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_WARNING
    }
}

impl Detectable for PreviousRunEvent {
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

impl Traced for PreviousRunEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for PreviousRunEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("app".into(), json!({ "name": "sensor" }));
        ev.insert(
            "message".into(),
            json!(format!("previous run {} ended without a final checkpoint", self.instance_id)),
        );
        (&APP_LIFECYCLE, activity(4, "Stop"), Some((false, Some("no final checkpoint".to_owned()))))
    }
}
