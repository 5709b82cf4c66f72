//! Bytes to text: the encodings AD exports arrive in. UTF-8 with or without a BOM,
//! UTF-16LE/BE with a BOM (`Out-File`, `>` and `ldifde -u`), and Windows-1252 when the bytes
//! are not UTF-8 (Excel's plain "CSV" in the West). encoding_rs does the decoding.
//!
//! A file is memory-mapped, not read: UTF-8 text (nearly every export) is then used where it
//! lies, without a copy, and the rows of the reader borrow from it. Only the other encodings
//! are decoded into a `String`. Mapped pages belong to the page cache, which the kernel can
//! drop under memory pressure, so a large export costs its rows, not its size twice over.
//!
//! Before anything reads the whole file, its first 64 KiB must look like text: a binary file
//! (a disk image, a zip renamed `.csv`, a file of zeros) is refused at once, whatever its size.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use memmap2::Mmap;
use rayon::prelude::*;

use crate::error::Error;

/// How much of a file is looked at to decide that it is text.
const SAMPLE: usize = 64 << 10;

/// A file's bytes: mapped where the system allows it, read otherwise (a pipe, `/dev/stdin`).
pub enum Bytes {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl Bytes {
    pub(crate) fn open(path: &Path) -> std::io::Result<Bytes> {
        let file = File::open(path)?;
        // SAFETY: the map is read-only and private to this process. Another program changing
        // the file while hardmatch reads it could change what the map shows; an admin's export
        // is not written while it is being read, and ripgrep accepts the same for its searches.
        match unsafe { Mmap::map(&file) } {
            Ok(map) => Ok(Bytes::Mapped(map)),
            Err(_) => std::fs::read(path).map(Bytes::Read),
        }
    }
}

impl Bytes {
    /// Drops `part` (a slice of these bytes) from this process's resident memory once it has
    /// been read: a mapped file's pages count in the process's memory for as long as they
    /// stay mapped in, so a reader that goes through a large export once gives them back
    /// behind it instead of holding the whole file. They stay in the page cache, and reading
    /// them again maps them in again. Bytes that were read into memory are kept.
    pub(crate) fn release(&self, part: &[u8]) {
        let Bytes::Mapped(map) = self else {
            return;
        };
        let offset = (part.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
        if part.is_empty() || offset > map.len() || part.len() > map.len() - offset {
            return;
        }
        give_back(map, offset, part.len());
    }
}

/// Takes `len` bytes of `map` from `offset` out of this process's resident memory.
#[cfg(unix)]
fn give_back(map: &Mmap, offset: usize, len: usize) {
    // SAFETY: the map is read-only and backed by the file, so MADV_DONTNEED never loses
    // data: a later read maps the file's page in again. Advice is only a hint; if it fails,
    // the memory is merely kept.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

/// Windows: VirtualUnlock on pages that are not locked takes them out of the working set
/// (the documented way to trim a range), answering ERROR_NOT_LOCKED, which is expected. The
/// pages stay in the standby list; reading them again is a soft fault.
#[cfg(windows)]
fn give_back(map: &Mmap, offset: usize, len: usize) {
    // SAFETY: the range lies within the live map (checked by the caller); unlocking only
    // changes which pages are resident, never their content.
    unsafe {
        windows_sys::Win32::System::Memory::VirtualUnlock(map[offset..].as_ptr().cast(), len)
    };
}

#[cfg(not(any(unix, windows)))]
fn give_back(_: &Mmap, _: usize, _: usize) {}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Read(bytes) => bytes,
        }
    }
}

/// The text of a file and the encoding it was read as.
pub struct Text {
    body: Body,
    pub encoding: &'static Encoding,
}

enum Body {
    /// UTF-8, checked once when loaded, from this byte on (after a BOM).
    Utf8 {
        bytes: Bytes,
        start: usize,
    },
    Decoded(String),
}

impl Text {
    /// Decodes a file's bytes, or says why they are not text.
    pub fn decode(name: &str, bytes: Bytes) -> crate::Result<Text> {
        let (encoding, start) = detect(&bytes);
        check_is_text(name, encoding, &bytes[start..])?;
        if encoding == UTF_8 {
            if is_utf8(&bytes[start..], &|piece| bytes.release(piece)) {
                return Ok(Text {
                    body: Body::Utf8 { bytes, start },
                    encoding,
                });
            }
            // Not UTF-8 after all: the ANSI code page, as Excel's plain "CSV" writes it.
            return Ok(Text::decoded(WINDOWS_1252, &bytes[start..]));
        }
        Ok(Text::decoded(encoding, &bytes[start..]))
    }

    fn decoded(encoding: &'static Encoding, bytes: &[u8]) -> Text {
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        Text {
            body: Body::Decoded(text.into_owned()),
            encoding,
        }
    }

    /// Drops `part` (a slice of [`Text::as_str`]) from resident memory: see [`Bytes::release`].
    pub(crate) fn release(&self, part: &str) {
        self.release_bytes(part.as_bytes());
    }

    /// [`Text::release`] for the bytes of a slice of [`Text::as_str`].
    pub(crate) fn release_bytes(&self, part: &[u8]) {
        if let Body::Utf8 { bytes, .. } = &self.body {
            bytes.release(part);
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.body {
            // SAFETY: `decode` checked these bytes with `str::from_utf8`, and they are
            // immutable since (see `Bytes::open` on the map).
            Body::Utf8 { bytes, start } => unsafe {
                std::str::from_utf8_unchecked(&bytes[*start..])
            },
            Body::Decoded(text) => text,
        }
    }
}

/// `str::from_utf8(bytes).is_ok()` on every core: pieces of 8 MB that each start where a
/// character starts (not on a continuation byte, `10xxxxxx`; a character has at most three).
/// Each piece is given to `release` once checked.
fn is_utf8(bytes: &[u8], release: &(dyn Fn(&[u8]) + Sync)) -> bool {
    const PIECE: usize = 8 << 20;
    let is_continuation = |at: usize| bytes[at] & 0xC0 == 0x80;
    let mut bounds = vec![0];
    for nominal in (PIECE..bytes.len()).step_by(PIECE) {
        let mut start = nominal;
        while start > nominal - 3 && is_continuation(start) {
            start -= 1;
        }
        bounds.push(start);
    }
    bounds.push(bytes.len());
    bounds.par_windows(2).all(|piece| {
        let piece = &bytes[piece[0]..piece[1]];
        let valid = std::str::from_utf8(piece).is_ok();
        release(piece);
        valid
    })
}

/// The encoding of the bytes and where the text starts (after a BOM). UTF-8 stands for
/// "UTF-8 or, failing that, Windows-1252".
fn detect(bytes: &[u8]) -> (&'static Encoding, usize) {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return (encoding, bom_len);
    }
    (sniff_utf16_without_bom(bytes).unwrap_or(UTF_8), 0)
}

/// UTF-16 without a BOM shows itself by NUL bytes in every other position of ASCII text.
fn sniff_utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(256) & !1];
    if sample.len() < 8 {
        return None;
    }
    let zeros_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let half = sample.len() / 2;
    match (zeros_at(0), zeros_at(1)) {
        (_, odd) if odd * 10 >= half * 9 => Some(UTF_16LE),
        (even, _) if even * 10 >= half * 9 => Some(UTF_16BE),
        _ => None,
    }
}

/// Refuses a file whose first 64 KiB, decoded, hold a NUL or more than 1% control
/// characters other than tab, CR, LF and form feed: no export tool writes those, and every
/// binary format does.
fn check_is_text(name: &str, encoding: &'static Encoding, bytes: &[u8]) -> crate::Result<()> {
    let (sample, _) = encoding.decode_without_bom_handling(&bytes[..bytes.len().min(SAMPLE)]);
    let (mut chars, mut controls) = (0usize, 0usize);
    for c in sample.chars() {
        chars += 1;
        if c == '\0' {
            controls = chars;
            break;
        }
        if c.is_ascii_control() && !matches!(c, '\t' | '\r' | '\n' | '\x0c') {
            controls += 1;
        }
    }
    if controls * 100 > chars {
        return Err(Error::Input(format!(
            "{name}: not a text file (it holds binary data in its first {} KiB); hardmatch reads CSV, LDIF or a workbook (XLSX, XLS, ODS): export the users again",
            SAMPLE >> 10
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Text {
        Text::decode("t", Bytes::Read(bytes.to_vec())).unwrap()
    }

    #[test]
    fn boms_and_fallbacks() {
        assert_eq!(decode(b"\xEF\xBB\xBFa,b").as_str(), "a,b");
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Jö,b".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16le).as_str(), "Jö,b");
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Jö".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&utf16be).as_str(), "Jö");
        let cp1252 = decode(b"Jos\xe9 J\xf6nsson");
        assert_eq!(
            (cp1252.as_str(), cp1252.encoding),
            ("José Jönsson", WINDOWS_1252)
        );
        let bare_le: Vec<u8> = "dn: CN=x,DC=y"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(decode(&bare_le).as_str(), "dn: CN=x,DC=y");
        assert_eq!(decode(b"").as_str(), "");
    }

    #[test]
    fn utf8_is_checked_in_pieces_that_start_on_a_character() {
        let text = "aé€😀".repeat(3 << 20);
        let keep = |_: &[u8]| {};
        assert!(is_utf8(text.as_bytes(), &keep));
        let mut broken = text.into_bytes();
        broken[(8 << 20) + 1] = 0xE9;
        assert!(!is_utf8(&broken, &keep));
        assert!(is_utf8(b"", &keep));
    }

    #[test]
    fn binary_files_are_refused() {
        for bytes in [&[0u8; 4096][..], b"a,b\r\n\x01\x02\x03\x04c,d\x00"] {
            let err = Text::decode("f.csv", Bytes::Read(bytes.to_vec()))
                .err()
                .expect("refused");
            assert!(
                err.to_string().starts_with("f.csv: not a text file"),
                "{err}"
            );
        }
    }
}
