//! Network events → `network` and `dns` records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sensor_common::net::{DNS_PORT, op};
use sensor_proto::v1::{DnsEvent, NetworkEvent, audit_record::Event};

use super::dns;
use crate::decode::net::NetRaw;

const AF_INET: u16 = 2;

fn op_name(op: u32) -> &'static str {
    match op {
        op::CONNECT => "connect",
        op::ACCEPT => "accept",
        op::BIND => "bind",
        op::LISTEN => "listen",
        op::SEND => "send",
        _ => "unknown",
    }
}

/// Address text; an IPv4-mapped IPv6 address is shown as IPv4 (and flagged).
fn addr(family: u16, raw: &[u8; 16]) -> (String, bool) {
    if family == AF_INET {
        return (Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string(), false);
    }
    let v6 = Ipv6Addr::from(*raw);
    match v6.to_ipv4_mapped() {
        Some(v4) => (IpAddr::V4(v4).to_string(), true),
        None => (v6.to_string(), false),
    }
}

/// The record events for a network event: datagrams to port 53 become `dns`; the first datagram
/// of a flow to another port is a `network` record, followed by a `dns` record when its payload
/// is shaped like a DNS query (DNS to a non-standard port); the rest are `network`.
/// `malformed_dns` is incremented for port-53 payloads that do not decode.
pub fn network(n: &NetRaw, malformed_dns: &mut u64) -> (Event, Option<Event>) {
    if n.op == op::SEND
        && n.remote_port != DNS_PORT
        && let Some(q) = dns::dns_shaped_query(&n.payload)
    {
        let (remote, _) = addr(n.family, &n.remote_addr);
        let dns = Event::Dns(dns_query(q, remote, n.remote_port));
        return (one(n, malformed_dns), Some(dns));
    }
    (one(n, malformed_dns), None)
}

/// The record of a well-formed DNS query sent to `server`:`port`.
fn dns_query(q: dns::Question, server: String, port: u16) -> DnsEvent {
    DnsEvent {
        name: q.name,
        r#type: dns::qtype_name(q.qtype),
        id: u32::from(q.id),
        server_address: server,
        server_port: u32::from(port),
        malformed: false,
        error: String::new(),
    }
}

fn one(n: &NetRaw, malformed_dns: &mut u64) -> Event {
    let (local, local_mapped) = addr(n.family, &n.local_addr);
    let (remote, remote_mapped) = addr(n.family, &n.remote_addr);
    if n.op == op::SEND && n.remote_port == DNS_PORT && !n.payload.is_empty() {
        return Event::Dns(match dns::parse_query(&n.payload) {
            Ok(q) => dns_query(q, remote, n.remote_port),
            Err(e) => {
                *malformed_dns += 1;
                DnsEvent {
                    server_address: remote,
                    server_port: u32::from(n.remote_port),
                    malformed: true,
                    error: e.to_string(),
                    ..Default::default()
                }
            }
        });
    }
    Event::Network(NetworkEvent {
        op: op_name(n.op).to_owned(),
        protocol: match n.protocol {
            6 => "tcp".into(),
            17 => "udp".into(),
            p => p.to_string(),
        },
        family: if n.family == AF_INET { "ipv4".into() } else { "ipv6".into() },
        local_address: local,
        local_port: u32::from(n.local_port),
        remote_address: remote,
        remote_port: u32::from(n.remote_port),
        result: i64::from(n.result),
        error: super::file::error_name(n.result.into()),
        syscall: crate::file_syscalls::name(n.syscall_nr).unwrap_or_default().to_owned(),
        v4_mapped: local_mapped || remote_mapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_render() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(addr(2, &v4), ("127.0.0.1".into(), false));
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        assert_eq!(addr(10, &mapped), ("10.1.2.3".into(), true));
        assert_eq!(addr(10, &Ipv6Addr::LOCALHOST.octets()), ("::1".into(), false));
    }
}
