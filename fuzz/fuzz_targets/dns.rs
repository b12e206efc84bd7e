//! The DNS query parser and the DNS-shape test of datagrams to other ports: captured UDP payloads
//! are untrusted. Compression loops, over-long names and truncation are errors; a parsed name is
//! bounded; anything DNS-shaped also parses as a query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = sensor::enrich::dns::parse_query(data) {
        // 255 bytes on the wire; each byte is at most 4 characters when escaped.
        assert!(q.name.len() <= 255 * 4, "{}", q.name.len());
        let _ = sensor::enrich::dns::qtype_name(q.qtype);
    }
    if let Some(q) = sensor::enrich::dns::dns_shaped_query(data) {
        assert!(q.name.len() <= 255 * 4, "{}", q.name.len());
        assert_eq!(
            sensor::enrich::dns::parse_query(data).map(|p| p.name),
            Ok(q.name),
            "shaped implies parsable"
        );
    }
});
