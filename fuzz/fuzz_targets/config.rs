//! The configuration file: any text is a configuration or a list of problems naming their keys,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match sensor::config::parse(&text) {
        Ok(opts) => {
            let _ = sensor::config::summary(&opts);
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(!p.to_string().is_empty());
            }
        }
    }
});
