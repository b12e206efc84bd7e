//! The `session` record: a login session was first seen.

use super::prelude::*;

impl SyslogSeverity for SessionEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for SessionEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::Session]
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

impl Traced for SessionEvent {
    fn fact(&self) -> Option<Fact> {
        None
    }
}

impl Ocsf for SessionEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("user".into(), json!({ "name": self.user, "uid": self.auid.to_string() }));
        ev.insert("session".into(), json!({ "uid": self.session_id.to_string(), "terminal": self.tty }));
        ev.insert("logon_process".into(), json!({ "name": self.service, "uid": self.leader_guid }));
        if !self.remote_address.is_empty() {
            ev.insert("src_endpoint".into(), json!({ "ip": self.remote_address, "port": self.remote_port }));
        }
        (&AUTH, activity(1, "Logon"), Some((true, None)))
    }
}
