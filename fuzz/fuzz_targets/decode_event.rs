//! The raw kernel-event decoder: ring-buffer items are untrusted bytes (a kernel bug, a
//! mismatched eBPF object, memory corruption). Any input decodes or is an error value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match sensor::decode::decode(data) {
        Ok(ev) => {
            // The kind decoded is the kind the header names.
            let h = sensor::decode::header(data).expect("a decoded event has a header");
            assert_eq!(ev.kind() as u32, h.kind);
            let _ = format!("{ev:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
