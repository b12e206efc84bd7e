//! Sigma rule files: a site's rules are text someone wrote, possibly by mistake, possibly with
//! intent. Any bytes must give rules or problems naming the file, never a panic or a hang; what
//! loads must build a detector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::detect::{DetectConfig, Detector, load};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let set = load::load_text("fuzz.yml", text);
    for p in &set.problems {
        assert_eq!(p.file, "fuzz.yml");
    }
    if !set.has_errors() {
        let _ = Detector::from_rules(&set, &DetectConfig::default());
    }
});
