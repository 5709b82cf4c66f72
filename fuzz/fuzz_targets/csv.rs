//! A file named `.csv` as the binary reads it: encoding, format sniff (content that starts
//! with `dn:` is read as LDIF, a zip as a workbook), parse, compute and report records.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hardmatch_fuzz::check_export("fuzz.csv", data, None);
});
