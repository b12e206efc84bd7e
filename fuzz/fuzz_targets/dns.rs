//! The DNS query parser: captured UDP payloads are untrusted. Compression loops, over-long names
//! and truncation are errors; a parsed name is bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = sensor::enrich::dns::parse_query(data) {
        // 255 bytes on the wire; each byte is at most 4 characters when escaped.
        assert!(q.name.len() <= 255 * 4, "{}", q.name.len());
        let _ = sensor::enrich::dns::qtype_name(q.qtype);
    }
});
