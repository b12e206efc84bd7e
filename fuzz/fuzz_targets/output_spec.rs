//! `--output SPEC`: any text parses into an output or is an error; an output's text form parses
//! back into the same output (it is what `config check` and the logs show).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::sinks::OutputSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = text.parse::<OutputSpec>() {
        let shown = spec.to_string();
        let again: OutputSpec = shown.parse().unwrap_or_else(|e| panic!("{text:?} shows as {shown:?}: {e}"));
        assert_eq!(again, spec, "{text:?} shows as {shown:?}");
    }
});
