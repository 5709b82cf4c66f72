//! Bytes to text: the encodings AD exports arrive in. UTF-8 with or without a BOM,
//! UTF-16LE/BE with a BOM (`Out-File`, `>` and `ldifde -u`), and Windows-1252 when the bytes
//! are not UTF-8 (Excel's plain "CSV" in the West). encoding_rs does the decoding.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

/// The text of a file and the encoding it was read as, for messages.
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static Encoding,
}

/// Decodes a whole file. Never fails: Windows-1252 maps every byte to a character.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        return Decoded { text, encoding };
    }
    if let Some(encoding) = sniff_utf16_without_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        return Decoded { text, encoding };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Decoded {
            text: Cow::Borrowed(text),
            encoding: UTF_8,
        },
        Err(_) => {
            let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
            Decoded {
                text,
                encoding: WINDOWS_1252,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_and_fallbacks() {
        assert_eq!(decode(b"\xEF\xBB\xBFa,b").text, "a,b");
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Jö,b".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16le).text, "Jö,b");
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Jö".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&utf16be).text, "Jö");
        let cp1252 = decode(b"Jos\xe9 J\xf6nsson");
        assert_eq!(
            (cp1252.text.as_ref(), cp1252.encoding),
            ("José Jönsson", WINDOWS_1252)
        );
        let bare_le: Vec<u8> = "dn: CN=x,DC=y"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(decode(&bare_le).text, "dn: CN=x,DC=y");
    }
}
