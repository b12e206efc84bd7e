//! The `dns` record: a DNS query sent by the process.

use super::prelude::*;

impl SyslogSeverity for DnsEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for DnsEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::DnsQuery]
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

impl Traced for DnsEvent {
    fn fact(&self) -> Option<Fact> {
        let item = if self.malformed {
            "(malformed query)".into()
        } else {
            format!("{} ({})", self.name, self.r#type)
        };
        let mut f = Fact::simple(Kind::Dns, item.clone(), "resolved", item);
        f.many = "names".into();
        Some(f)
    }
}

impl Ocsf for DnsEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert(
            "query".into(),
            json!({ "hostname": self.name, "type": self.r#type, "packet_uid": self.id }),
        );
        ev.insert("dst_endpoint".into(), json!({ "ip": self.server_address, "port": self.server_port }));
        (&DNS, activity(1, "Query"), None)
    }
}
