//! The `alert` record: a detection rule matched: the sensor's verdict.

use super::prelude::*;

impl SyslogSeverity for AlertEvent {
    fn syslog_severity(&self) -> u8 {
        alert_syslog_severity(&self.level)
    }
}

impl Detectable for AlertEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        // The sensor's own verdicts: never evaluated, so it never alerts on its alerts.
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

impl Traced for AlertEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for AlertEvent {
    fn ocsf(&self, actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        finding(self, actor, ev);
        (&FINDING, activity(1, "Create"), None)
    }

    fn ocsf_severity(&self) -> (u32, &'static str) {
        alert_ocsf_severity(&self.level)
    }
}

/// Syslog severity of an alert: it follows the rule's Sigma level.
fn alert_syslog_severity(level: &str) -> u8 {
    match level {
        "critical" => SEVERITY_CRITICAL,
        "high" => SEVERITY_ERROR,
        "medium" => SEVERITY_WARNING,
        "low" => SEVERITY_NOTICE,
        _ => SEVERITY_INFO,
    }
}

/// OCSF severity of an alert, from its Sigma level.
fn alert_ocsf_severity(level: &str) -> (u32, &'static str) {
    match level {
        "critical" => (5, "Critical"),
        "high" => (4, "High"),
        "medium" => (3, "Medium"),
        "low" => (2, "Low"),
        _ => (1, "Informational"),
    }
}
