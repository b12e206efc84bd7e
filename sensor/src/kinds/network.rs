//! The `network` record: a connect, accept, bind, listen or first UDP datagram.

use super::prelude::*;

impl SyslogSeverity for NetworkEvent {
    fn syslog_severity(&self) -> u8 {
        SEVERITY_INFO
    }
}

impl Detectable for NetworkEvent {
    const FIELDS: &'static [Field] = &[];

    fn categories(&self) -> &'static [Category] {
        &[Category::NetworkConnection]
    }

    fn result(&self) -> Option<i64> {
        Some(self.result)
    }

    fn error(&self) -> Option<&str> {
        Some(&self.error)
    }

    fn syscall(&self) -> Option<&str> {
        Some(&self.syscall)
    }
}

impl Traced for NetworkEvent {
    fn fact(&self) -> Option<Fact> {
        Some(net_fact(self))
    }
}

impl Ocsf for NetworkEvent {
    fn ocsf(&self, _actor: Option<&Process>, ev: &mut Map<String, Value>) -> Mapping {
        ev.insert("src_endpoint".into(), json!({ "ip": self.local_address, "port": self.local_port }));
        if !self.remote_address.is_empty() {
            ev.insert("dst_endpoint".into(), json!({ "ip": self.remote_address, "port": self.remote_port }));
        }
        ev.insert(
            "connection_info".into(),
            json!({
                "protocol_name": self.protocol,
                "protocol_ver_id": if self.family == "ipv6" { 6 } else { 4 },
                "direction_id": if self.op == "accept" { 1 } else { 2 },
            }),
        );
        let err = (!self.error.is_empty()).then(|| self.error.clone());
        let act = match (self.op.as_str(), self.result < 0, self.error.as_str()) {
            ("connect", true, "ECONNREFUSED") => activity(5, "Refuse"),
            ("connect", true, "EINPROGRESS") => activity(1, "Open"),
            (_, true, _) => activity(4, "Fail"),
            ("connect" | "accept", false, _) => activity(1, "Open"),
            ("listen", false, _) => activity(7, "Listen"),
            ("send", false, _) => activity(6, "Traffic"),
            _ => activity(99, "Bind"),
        };
        (&NET, act, Some(result(self.result, err)))
    }
}

impl Decode for kind::Net {
    type Raw = decode::net::NetRaw;

    const FIXED_PART: (usize, bool) = (sc::net::NET_FIXED_SIZE, true);

    fn decode(header: EventHeader, buf: &[u8]) -> Result<Self::Raw, DecodeError> {
        decode::net::decode(header, buf)
    }

    fn header(raw: &Self::Raw) -> &EventHeader {
        &raw.header
    }
}

impl Enrich for kind::Net {
    const BULK: bool = true;

    fn enrich(raw: &Self::Raw, cx: &mut Enricher, out: &mut Vec<Enriched>) -> Option<Enriched> {
        Some(cx.network(raw, out))
    }
}

impl Attachable for kind::Net {
    fn attach() -> Attach {
        syscall_collector(attach_net)
    }
}
