//! Decoding the question of a DNS query (RFC 1035 §4.1) from a captured UDP payload.
//! Untrusted bytes: every read is bounds-checked, compression pointers are followed a bounded
//! number of times, and a malformed packet is an error value.

/// The first question of a DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub name: String,
    pub qtype: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("shorter than a DNS header")]
    Short,
    #[error("not a query")]
    NotQuery,
    #[error("no question")]
    NoQuestion,
    #[error("name runs past the packet")]
    Truncated,
    #[error("compression pointer loop")]
    PointerLoop,
    #[error("label type {0:#x} not supported")]
    BadLabel(u8),
    #[error("name longer than 255 bytes")]
    TooLong,
}

/// Parses the header and first question of a query.
pub fn parse_query(p: &[u8]) -> Result<Question, DnsError> {
    if p.len() < 12 {
        return Err(DnsError::Short);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    if p[2] & 0x80 != 0 {
        return Err(DnsError::NotQuery);
    }
    if u16::from_be_bytes([p[4], p[5]]) == 0 {
        return Err(DnsError::NoQuestion);
    }
    let (name, end) = read_name(p, 12)?;
    let qtype = p.get(end..end + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(DnsError::Truncated)?;
    Ok(Question { id, name, qtype })
}

/// The question of a datagram sent to a port other than 53, when the payload is shaped exactly
/// like a standard DNS query: a query (QR 0, opcode 0) with one question, no answer or authority
/// records, at most one additional record (EDNS), class IN, CH or ANY, and nothing after the
/// question but that record. Random UDP payloads practically never pass all of this.
pub fn dns_shaped_query(p: &[u8]) -> Option<Question> {
    if p.len() < 17 {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let opcode = (p[2] >> 3) & 0x0f;
    if p[2] & 0x80 != 0 || opcode != 0 || count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let (name, end) = read_name(p, 12).ok()?;
    if name == "." {
        return None;
    }
    let qtype = u16::from_be_bytes([*p.get(end)?, *p.get(end + 1)?]);
    let qclass = u16::from_be_bytes([*p.get(end + 2)?, *p.get(end + 3)?]);
    if !matches!(qclass, 1 | 3 | 255) || qtype == 0 {
        return None;
    }
    let rest = &p[end + 4..];
    let tail_ok = match count(10) {
        0 => rest.is_empty(),
        // An EDNS OPT record: root name, type 41, class, ttl, rdlength, rdata.
        _ => {
            rest.len() >= 11
                && rest[0] == 0
                && u16::from_be_bytes([rest[1], rest[2]]) == 41
                && usize::from(u16::from_be_bytes([rest[9], rest[10]])) == rest.len() - 11
        }
    };
    tail_ok.then(|| Question { id: count(0), name, qtype })
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset after it.
fn read_name(p: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *p.get(at).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = at + 1;
                    let name = if labels.is_empty() { ".".to_owned() } else { labels.join(".") };
                    return Ok((name, end.unwrap_or(after)));
                }
                let label = p.get(at + 1..at + 1 + len as usize).ok_or(DnsError::Truncated)?;
                total += label.len() + 1;
                if total > 255 {
                    return Err(DnsError::TooLong);
                }
                labels.push(escape_label(label));
                at += 1 + len as usize;
            }
            0xc0 => {
                let lo = *p.get(at + 1).ok_or(DnsError::Truncated)?;
                if end.is_none() {
                    end = Some(at + 2);
                }
                jumps += 1;
                if jumps > 16 {
                    return Err(DnsError::PointerLoop);
                }
                at = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            }
            other => return Err(DnsError::BadLabel(other)),
        }
    }
}

/// Printable label text: letters, digits and `-_` as they are, anything else as `\DDD`.
fn escape_label(l: &[u8]) -> String {
    let mut s = String::with_capacity(l.len());
    for &b in l {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\{b:03}"));
        }
    }
    s
}

/// Name of a query type.
pub fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => other.to_string(),
    }
}

/// Builds a query packet (tests and tools).
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_query() {
        let q = parse_query(&build_query(0x1234, "patient-portal.example.org", 28)).expect("parse");
        assert_eq!(q, Question { id: 0x1234, name: "patient-portal.example.org".into(), qtype: 28 });
        assert_eq!(qtype_name(q.qtype), "AAAA");
    }

    #[test]
    fn dns_shaped_payloads_on_other_ports() {
        let q = build_query(7, "c2.example.net", 16);
        assert_eq!(dns_shaped_query(&q).map(|q| q.name), Some("c2.example.net".into()));
        let mut edns = q.clone();
        edns[11] = 1;
        edns.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert!(dns_shaped_query(&edns).is_some(), "EDNS OPT record");
        let mut trailing = q.clone();
        trailing.push(0);
        assert!(dns_shaped_query(&trailing).is_none(), "bytes after the question");
        let mut response = q.clone();
        response[2] |= 0x80;
        assert!(dns_shaped_query(&response).is_none());
        assert!(dns_shaped_query(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
        assert!(dns_shaped_query(&[0u8; 64]).is_none());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut hits = 0;
        for _ in 0..100_000 {
            let mut p = [0u8; 48];
            for b in &mut p {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            hits += usize::from(dns_shaped_query(&p).is_some());
        }
        assert_eq!(hits, 0, "random datagrams are not DNS-shaped");
    }

    #[test]
    fn malformed_packets_are_errors_never_panics() {
        let good = build_query(1, "a.example.org", 1);
        for n in 0..good.len() {
            let _ = parse_query(&good[..n]);
        }
        assert_eq!(parse_query(&good[..5]), Err(DnsError::Short));
        // A pointer to itself.
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_query(&looped), Err(DnsError::PointerLoop));
        let mut x: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..20_000 {
            let mut p = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % p.len();
                p[i] = (x >> 8) as u8;
            }
            let _ = parse_query(&p);
        }
        assert!(matches!(parse_query(&[0u8; 12]), Err(DnsError::NoQuestion)));
    }
}
