//! The `loss` record: events were lost before they became records.

use super::prelude::*;

impl SyslogSeverity for LossEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_WARNING
    }
}

impl Detectable for LossEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::Loss]
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

impl Traced for LossEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for LossEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert(
            "message".into(),
            json!(format!("{} {} events lost: {}", self.count, self.kind, self.reason)),
        );
        (&BASE, activity(99, "Loss"), None)
    }

    fn ocsf_severity(&self) -> (u32, &'static str) {
        // A loss record means events are missing.
        (3, "Medium")
    }
}
