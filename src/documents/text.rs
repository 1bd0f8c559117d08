//! Plain text: encoding detection and blank-line paragraphs.
//!
//! Decoding order: a BOM decides (UTF-8, UTF-16 LE/BE); otherwise valid UTF-8 is taken as is;
//! otherwise bytes that look binary (NUL bytes, many control codes) are refused as
//! `Unsupported`; the rest is read as Windows-1252, the superset of Latin-1 that old Western
//! text files actually use.

use super::{DocErrorKind, Extracted, Fail, normalise};

pub(crate) fn read(bytes: &[u8]) -> Result<Extracted, Fail> {
    let text = decode(bytes)?;
    Ok(Extracted { title: None, paragraphs: normalise::paragraphs_from_lines(&text) })
}

/// Bytes to a string (see the module contract).
pub(crate) fn decode(bytes: &[u8]) -> Result<String, Fail> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec()).map_err(|e| Fail::corrupt(format!("invalid UTF-8 after a UTF-8 byte-order mark ({e})")));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, u16::from_be_bytes);
    }
    if looks_binary(bytes) {
        return Err(Fail::new(DocErrorKind::Unsupported, "the content looks like binary data, not text"));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Ok(bytes.iter().map(|&b| windows_1252(b)).collect()),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, Fail> {
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    let s: Result<String, _> = char::decode_utf16(units).collect();
    s.map_err(|_| Fail::corrupt("invalid UTF-16 (an unpaired surrogate)"))
}

/// NUL bytes never occur in real 8-bit or UTF-8 text; a high share of other control codes
/// means a binary format under a text name.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    if memchr::memchr(0, sample).is_some() {
        return true;
    }
    let control = sample.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)).count();
    control * 50 > sample.len()
}

/// Windows-1252 byte to char; the five undefined bytes map to U+FFFD.
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{fffd}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{fffd}', 'Ž', '\u{fffd}', '\u{fffd}', '‘', '’', '“',
        '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{fffd}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_boms_and_latin1() {
        assert_eq!(decode(b"\xEF\xBB\xBFcaf\xC3\xA9").unwrap(), "café");
        assert_eq!(decode(b"\xFF\xFEc\0a\0f\0\xE9\0").unwrap(), "café");
        assert_eq!(decode(b"\xFE\xFF\0c\0a\0f\0\xE9").unwrap(), "café");
        assert_eq!(decode(b"caf\xE9 \x93x\x94").unwrap(), "café “x”");
    }

    #[test]
    fn refuses_binary() {
        assert_eq!(decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap_err().kind, DocErrorKind::Unsupported);
    }
}
