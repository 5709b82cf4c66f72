//! Any bytes as a workbook (calamine tries XLS, XLSX, XLSB and ODS in turn), then the
//! header search, the mangled-cell checks, compute and report records.

#![no_main]

use hardmatch::source::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hardmatch_fuzz::check_export("fuzz.xlsx", data, Some(Format::Spreadsheet));
});
