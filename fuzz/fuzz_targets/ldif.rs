//! A file named `.ldf` as the binary reads it: encoding, LDIF parse, compute and report
//! records.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hardmatch_fuzz::check_export("fuzz.ldf", data, None);
});
