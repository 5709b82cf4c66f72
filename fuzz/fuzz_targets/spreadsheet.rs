//! Any bytes as a workbook, then the header search, the mangled-cell checks, compute and
//! report records. The file's extension says no format, so calamine tries XLS, XLSX, XLSB and
//! ODS in turn, as it does for a workbook found by its signature under another name.

#![no_main]

use hardmatch::source::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hardmatch_fuzz::check_export("fuzz.workbook", data, Some(Format::Spreadsheet));
});
