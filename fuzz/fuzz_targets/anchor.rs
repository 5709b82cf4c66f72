//! The anchor parser on any text: no panic, Graph's rules hold for whatever it accepts, and
//! every form of an accepted anchor parses back to the same ImmutableId.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        hardmatch_fuzz::check_anchor(text);
    }
});
