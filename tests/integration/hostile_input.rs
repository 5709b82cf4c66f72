//! Issue 6: hostile inputs give a clear error naming the file, with bounded memory. Each
//! test checks the child's peak resident memory (wait4), generously: it is a memory check,
//! not a timing test.

use std::io::Write;

use flate2::{Compress, Compression, Crc, FlushCompress};

use crate::util::{run_measuring_memory, stderr, Dir};

const MIB: u64 = 1 << 20;

/// The peak memory of a debug build reading a small file, with room to spare (a debug binary
/// reading a 100 MiB entry peaked at 168 MB, 4 MB over a 64 MiB allowance, once the binary
/// grew): the bound every test adds to. Every failure these tests guard against costs
/// gigabytes.
const BASELINE_KIB: u64 = 96 * 1024;

const GUID: &str = "f7cc07d7-7c15-447d-876d-c01b0e5a9e38";

/// `ids` on a file with a 100 MiB line between two good ones: the long record is an input
/// error for its own row, naming the file and line; the rows around it are computed. The
/// file is mapped, never copied, so memory stays under the file's size plus the baseline.
#[test]
fn a_100_mib_csv_line_is_an_error_for_its_row_only() {
    let dir = Dir::new();
    let path = dir.join("huge.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    write!(
        file,
        "UserPrincipalName,ObjectGUID,Description\r\na@x.com,{GUID},\r\nb@x.com,{GUID},"
    )
    .unwrap();
    let chunk = vec![b'x'; MIB as usize];
    for _ in 0..100 {
        file.write_all(&chunk).unwrap();
    }
    write!(
        file,
        "\r\nc@x.com,8c4ac332-975f-4717-ad7b-ba4a4e968fff,\r\n"
    )
    .unwrap();
    file.flush().unwrap();
    drop(file);
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "huge.csv", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.join("ids.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(lines[1].starts_with("2,a@x.com,"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("3,,,,,missing-field,\"huge.csv:3: the record is 100 MiB long, more than the 16 MiB a record may have"),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("4,c@x.com,"), "{}", lines[3]);
    assert_memory(peak_kib, 100 * MIB);
}

/// The same in LDIF: a 100 MiB value (folded, as ldifde folds) makes its entry an error.
#[test]
fn a_100_mib_ldif_entry_is_an_error_for_its_entry_only() {
    let dir = Dir::new();
    let path = dir.join("huge.ldf");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let entry = |upn: &str| {
        format!("dn: CN={upn},DC=x\nobjectClass: user\nuserPrincipalName: {upn}\nobjectGUID:: 1wfM9xV8fUSHbcAbDlqeOA==\n\n")
    };
    file.write_all(entry("a@x.com").as_bytes()).unwrap();
    file.write_all(b"dn: CN=big,DC=x\ndescription: ").unwrap();
    let line = [&[b'y'; 1023][..], b"\n "].concat();
    for _ in 0..100 * 1024 {
        file.write_all(&line).unwrap();
    }
    file.write_all(b"\n\n").unwrap();
    file.write_all(entry("c@x.com").as_bytes()).unwrap();
    file.flush().unwrap();
    drop(file);
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "huge.ldf", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.join("ids.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(
        lines[2].starts_with("6,,,,,missing-field,huge.ldf:6: the entry is longer than the 16 MiB"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains(",c@x.com,"), "{}", lines[3]);
    assert_memory(peak_kib, 100 * MIB);
}

/// A 1 GiB file (sparse: no disk space, no time to write) of zeros named `.csv`: refused at
/// once as not text, from its first 64 KiB.
#[test]
fn a_1_gib_binary_file_is_refused_without_reading_it() {
    let dir = Dir::new();
    let path = dir.join("export.csv");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "export.csv", "-o", "ids.csv"]));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.contains("export.csv: not a text file (it holds binary data in its first 64 KiB)"),
        "{message}"
    );
    assert_memory(peak_kib, 0);
}

/// An XLSX whose sheet inflates to 2 GiB of blanks from 2 MB: refused before calamine
/// inflates anything, naming the file and the part.
#[test]
fn an_xlsx_zip_bomb_is_refused_before_it_inflates() {
    let dir = Dir::new();
    let path = dir.write("bomb.xlsx", zip_bomb(2048));
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "bomb.xlsx", "-o", "ids.csv"]));
    assert!(std::fs::metadata(&path).unwrap().len() < 4 * MIB);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.contains("bomb.xlsx: not a usable workbook: its part xl/worksheets/sheet1.xml inflates to 2048 MiB, more than the 1024 MiB hardmatch reads (a zip bomb?)"),
        "{message}"
    );
    assert_memory(peak_kib, 0);
}

/// A small workbook with one cell at A1 and one at XFD1048576: calamine's dense range would
/// ask for seventeen billion cells; the sheet is read sparse, so the far cell is one more row.
#[test]
fn a_sheet_with_cells_far_apart_is_read_in_small_memory() {
    let dir = Dir::new();
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Users").unwrap();
    for (col, value) in ["UserPrincipalName", "ObjectGUID"].into_iter().enumerate() {
        sheet.write_string(0, col as u16, value).unwrap();
    }
    sheet.write_string(1, 0, "a@x.com").unwrap();
    sheet.write_string(1, 1, GUID).unwrap();
    sheet.write_string(1_048_575, 16_383, "far away").unwrap();
    workbook.save(dir.join("far.xlsx")).unwrap();
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "far.xlsx", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.join("ids.csv")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[1].starts_with("2,a@x.com,"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("1048576,,,,,missing-field,"),
        "{}",
        lines[2]
    );
    assert_memory(peak_kib, 0);
}

/// The same bomb with a header that lies, declaring 1,000 bytes: the part is inflated into
/// nothing, counting, and refused at the limit.
#[test]
fn an_xlsx_zip_bomb_that_lies_about_its_size_is_refused_at_the_limit() {
    let dir = Dir::new();
    let mut bomb = zip_bomb(1100);
    let declared_at = bomb.len() - 22 - 46 - "xl/worksheets/sheet1.xml".len() + 24;
    bomb[declared_at..declared_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    dir.write("liar.xlsx", bomb);
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "liar.xlsx", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.contains("liar.xlsx: not a usable workbook: its part xl/worksheets/sheet1.xml inflates to more than it declares (1000 bytes)"),
        "{message}"
    );
    assert_memory(peak_kib, 0);
}

/// An ODS of 2 KB whose one value sits after a million repeated rows of 16,000 repeated empty
/// cells: calamine would expand them into a dense sheet of 16 billion cells (it asked for 6 GB
/// and aborted); the repeats are counted first and the file refused.
#[test]
fn an_ods_whose_repeats_expand_to_billions_of_cells_is_refused_in_small_memory() {
    let dir = Dir::new();
    dir.write(
        "bomb.ods",
        ods(&format!(
            "{}<table:table-row table:number-rows-repeated=\"1000000\"><table:table-cell table:number-columns-repeated=\"16000\"/></table:table-row><table:table-row><table:table-cell table:number-columns-repeated=\"16000\"/>{}</table:table-row>",
            ods_row(&["UserPrincipalName", "ObjectGUID"]),
            ods_cell("far away")
        )),
    );
    assert_refused_in_small_memory(
        &dir,
        "bomb.ods",
        "bomb.ods: not a usable workbook: its sheets hold more than 32 million cells once",
    );

    // The same behind an end tag that does not match its start, which calamine's XML reader
    // lets pass (found by fuzzing): measured the way calamine reads it, and refused.
    dir.write(
        "sloppy.ods",
        ods(&format!(
            "<table:table-row><table:table-cell office:value-type=\"string\"><text:p>UserPrincipalName</text:q></table:table-cell></table:table-row><table:table-row table:number-rows-repeated=\"1000000\"><table:table-cell table:number-columns-repeated=\"16000\"/></table:table-row><table:table-row><table:table-cell table:number-columns-repeated=\"16000\"/>{}</table:table-row>",
            ods_cell("far away")
        )),
    );
    assert_refused_in_small_memory(
        &dir,
        "sloppy.ods",
        "sloppy.ods: not a usable workbook: its sheets hold more than 32 million cells",
    );

    // A run past the last column is damage whatever the cell count.
    dir.write(
        "wide.ods",
        ods(&format!(
            "{}<table:table-row><table:table-cell table:number-columns-repeated=\"4000000000\"/>{}</table:table-row>",
            ods_row(&["UserPrincipalName", "ObjectGUID"]),
            ods_cell("far away")
        )),
    );
    assert_refused_in_small_memory(
        &dir,
        "wide.ods",
        "wide.ods: not a usable workbook: a sheet has content beyond row 1048576 or column 16384",
    );
}

/// LibreOffice ends every sheet with a run of about a million empty rows, each a run of empty
/// cells to the last column: those cost nothing, and the file reads.
#[test]
fn an_ods_with_libreoffices_trailing_empty_runs_reads() {
    let dir = Dir::new();
    dir.write(
        "users.ods",
        ods(&format!(
            "{}{}<table:table-row table:number-rows-repeated=\"1048574\"><table:table-cell table:number-columns-repeated=\"16384\"/></table:table-row>",
            ods_row(&["UserPrincipalName", "ObjectGUID"]),
            ods_row(&["a@x.com", GUID])
        )),
    );
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", "users.ods", "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = std::fs::read_to_string(dir.join("ids.csv")).unwrap();
    assert_eq!(
        report.lines().nth(1),
        Some("2,a@x.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38,1wfM9xV8fUSHbcAbDlqeOA==,objectGUID,computed,")
    );
    assert_memory(peak_kib, 0);
}

fn ods_cell(text: &str) -> String {
    format!(
        "<table:table-cell office:value-type=\"string\"><text:p>{text}</text:p></table:table-cell>"
    )
}

fn ods_row(texts: &[&str]) -> String {
    let cells: String = texts.iter().map(|t| ods_cell(t)).collect();
    format!("<table:table-row>{cells}</table:table-row>")
}

/// An ODS file (stored, not compressed) with one sheet of these rows.
fn ods(rows: &str) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Users">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    let stored = |name: &'static str, data: Vec<u8>| {
        let mut crc = Crc::new();
        crc.update(&data);
        Part {
            name,
            method: 0,
            size: data.len() as u32,
            crc: crc.sum(),
            data,
        }
    };
    zip(&[
        stored(
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
        ),
        stored("content.xml", content.into_bytes()),
        stored(
            "META-INF/manifest.xml",
            br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#.to_vec(),
        ),
    ])
}

/// A 6 KB XLS (found by fuzzing) whose FAT sends a sector chain round in a loop: calamine
/// follows it without end and grew to 24 GB. The container is checked by the cfb crate first.
#[test]
fn an_xls_whose_sector_chain_loops_is_refused_in_small_memory() {
    let dir = Dir::new();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/xls-sector-chain-loop.xls");
    std::fs::copy(fixture, dir.join("loop.xls")).unwrap();
    assert_refused_in_small_memory(
        &dir,
        "loop.xls",
        "loop.xls: not a readable workbook: Malformed FAT (sector 0 pointed to twice)",
    );
}

/// XLS sheets calamine would make dense past billions of cells: two cells at A1 and at row
/// and column 65536 (a column no Excel has, which BIFF's 16 bits allow), and a Dimensions
/// record declaring four billion rows, which calamine reserves space for before any cell.
#[test]
fn xls_sheets_that_would_be_billions_of_cells_are_refused_in_small_memory() {
    let number = |row: u16, col: u16| {
        let mut data = Vec::new();
        for v in [row, col, 0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        data.extend_from_slice(&1.0f64.to_le_bytes());
        (0x0203, data)
    };
    let mut dimensions = Vec::new();
    for v in [0u32, u32::MAX] {
        dimensions.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u16, 2, 0] {
        dimensions.extend_from_slice(&v.to_le_bytes());
    }
    let dir = Dir::new();
    dir.write("far.xls", xls(&[number(0, 0), number(u16::MAX, u16::MAX)]));
    dir.write("declared.xls", xls(&[(0x0200, dimensions), number(0, 0)]));
    for file in ["far.xls", "declared.xls"] {
        assert_refused_in_small_memory(
            &dir,
            file,
            &format!("{file}: not a usable workbook: its sheets hold more than 32 million cells"),
        );
    }
}

/// A BIFF8 workbook of one sheet holding these records, in an OLE2 compound file as Excel
/// 97-2003 stores it.
fn xls(sheet_records: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let record = |out: &mut Vec<u8>, typ: u16, data: &[u8]| {
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
        out.extend_from_slice(data);
    };
    let bof = |kind: u16| {
        let mut data = vec![0u8; 16];
        data[..2].copy_from_slice(&0x0600u16.to_le_bytes());
        data[2..4].copy_from_slice(&kind.to_le_bytes());
        data
    };
    let mut bound_sheet = vec![0u8; 6];
    bound_sheet.extend_from_slice(&[5, 0]);
    bound_sheet.extend_from_slice(b"Users");
    let mut globals = Vec::new();
    record(&mut globals, 0x0809, &bof(0x0005));
    let position_at = globals.len() + 4;
    record(&mut globals, 0x0085, &bound_sheet);
    record(&mut globals, 0x000A, &[]);
    let sheet_at = globals.len() as u32;
    globals[position_at..position_at + 4].copy_from_slice(&sheet_at.to_le_bytes());
    let mut stream = globals;
    record(&mut stream, 0x0809, &bof(0x0010));
    for (typ, data) in sheet_records {
        record(&mut stream, *typ, data);
    }
    record(&mut stream, 0x000A, &[]);
    let mut file =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, std::io::Cursor::new(Vec::new()))
            .unwrap();
    file.create_stream("/Workbook")
        .unwrap()
        .write_all(&stream)
        .unwrap();
    file.flush().unwrap();
    file.into_inner().into_inner()
}

/// `ids FILE` exits 2 with a message containing `message`, in small memory.
#[track_caller]
fn assert_refused_in_small_memory(dir: &Dir, file: &str, message: &str) {
    let (out, peak_kib) =
        run_measuring_memory(dir.hardmatch().args(["ids", file, "-o", "ids.csv"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(message), "{}", stderr(&out));
    assert_memory(peak_kib, 0);
}

#[track_caller]
fn assert_memory(peak_kib: u64, file_bytes: u64) {
    let bound = BASELINE_KIB + file_bytes / 1024;
    assert!(
        peak_kib < bound,
        "peak memory {peak_kib} KiB, expected under {bound} KiB"
    );
}

/// A minimal workbook whose sheet is `mib` MiB of blanks before an empty `<worksheet>`,
/// deflated: 1 MiB of blanks deflates (with a sync flush, so that it ends on a byte and can be
/// repeated) to about 1 KB, whose copies inflate to a MiB each.
fn zip_bomb(mib: u32) -> Vec<u8> {
    let blanks = vec![b' '; MIB as usize];
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(64 << 10);
    compress
        .compress_vec(&blanks, &mut block, FlushCompress::Sync)
        .unwrap();
    let end = br#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>"#;
    let mut tail = Vec::with_capacity(4 << 10);
    compress
        .compress_vec(end, &mut tail, FlushCompress::Finish)
        .unwrap();
    let mut sheet = block.repeat(mib as usize);
    sheet.extend_from_slice(&tail);
    let mut crc = Crc::new();
    let mut block_crc = Crc::new();
    block_crc.update(&blanks);
    for _ in 0..mib {
        crc.combine(&block_crc);
    }
    let mut end_crc = Crc::new();
    end_crc.update(end);
    crc.combine(&end_crc);

    let stored = |name: &'static str, text: &'static str| {
        let mut crc = Crc::new();
        crc.update(text.as_bytes());
        Part {
            name,
            method: 0,
            data: text.as_bytes().to_vec(),
            size: text.len() as u32,
            crc: crc.sum(),
        }
    };
    let parts = [
        stored(
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
        ),
        stored(
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        stored(
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        stored(
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
        Part {
            name: "xl/worksheets/sheet1.xml",
            method: 8,
            data: sheet,
            size: mib * MIB as u32 + end.len() as u32,
            crc: crc.sum(),
        },
    ];
    zip(&parts)
}

struct Part {
    name: &'static str,
    /// 0 stored, 8 deflated.
    method: u16,
    data: Vec<u8>,
    size: u32,
    crc: u32,
}

/// The zip format by hand (APPNOTE 4.3): the zip crate's writer compresses what it is
/// given, and a bomb must carry data compressed beforehand.
fn zip(parts: &[Part]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for part in parts {
        let offset = out.len() as u32;
        let common = |buf: &mut Vec<u8>| {
            for v in [20u16, 0, part.method, 0, 0x21] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for v in [part.crc, part.data.len() as u32, part.size] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(&(part.name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(part.name.as_bytes());
        out.extend_from_slice(&part.data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        for v in [0u16, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, offset] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(part.name.as_bytes());
    }
    let central_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, parts.len() as u16, parts.len() as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [central.len() as u32, central_at] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
