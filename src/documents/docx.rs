//! DOCX: `word/document.xml` inside the zip, one paragraph per `<w:p>`.
//!
//! Text comes from `<w:t>` runs; tabs and line breaks become spaces; deleted text
//! (`<w:delText>`) and the `mc:Fallback` copies of text boxes are skipped so nothing is read
//! twice. Headers, footers and comments live in other parts and are ignored on purpose. The
//! title is a paragraph styled `Title`, else `dc:title` from `docProps/core.xml`.
//! Password-protected Word files are OLE compound files, not zips: they are reported as
//! `Encrypted`; legacy `.doc` files under a `.docx` name as `Unsupported`.

use super::{DocErrorKind, Extracted, Fail, LoadOptions};
use quick_xml::Reader;
use quick_xml::events::Event;
use std::io::{Cursor, Read};

const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

pub(crate) fn read(bytes: &[u8], opts: &LoadOptions) -> Result<Extracted, Fail> {
    if bytes.starts_with(OLE_MAGIC) {
        // Office stores the encryption header as a stream named "EncryptionInfo" (UTF-16LE).
        let marker: Vec<u8> = "EncryptionInfo".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if memchr::memmem::find(bytes, &marker).is_some() {
            return Err(Fail::new(DocErrorKind::Encrypted, "the Word file is password-protected"));
        }
        return Err(Fail::new(DocErrorKind::Unsupported, "this is a legacy Word .doc file, not .docx (save it as .docx)"));
    }
    let mut zip = open_zip(bytes)?;
    let xml = read_entry(&mut zip, "word/document.xml", opts)?
        .ok_or_else(|| Fail::corrupt("the zip has no word/document.xml (not a Word document)"))?;
    let (styled_title, paragraphs) = paragraphs_from_document_xml(&xml)?;
    let core_title = match read_entry(&mut zip, "docProps/core.xml", opts) {
        Ok(Some(core)) => first_element_text(&core, b"title"),
        _ => None,
    };
    Ok(Extracted { title: styled_title.or(core_title), paragraphs })
}

pub(crate) fn open_zip(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, Fail> {
    zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| Fail::corrupt(format!("not a readable zip container ({e})")))
}

/// One zip entry as UTF-8 text, `None` when absent; sizes are checked before and while reading
/// because the declared size of a hostile zip can lie.
pub(crate) fn read_entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, opts: &LoadOptions) -> Result<Option<String>, Fail> {
    let mut entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(zip::result::ZipError::UnsupportedArchive(why)) if why.contains("assword") => {
            return Err(Fail::new(DocErrorKind::Encrypted, format!("{name} is encrypted inside the zip")));
        }
        Err(e) => return Err(Fail::corrupt(format!("cannot open {name} in the zip ({e})"))),
    };
    if entry.encrypted() {
        return Err(Fail::new(DocErrorKind::Encrypted, format!("{name} is encrypted inside the zip")));
    }
    let limit = opts.max_unpacked_bytes;
    if entry.size() > limit {
        return Err(Fail::new(DocErrorKind::TooLarge, format!("{name} unpacks to {} bytes, over the {limit}-byte limit", entry.size())));
    }
    let mut buf = Vec::new();
    (&mut entry).take(limit + 1).read_to_end(&mut buf).map_err(|e| Fail::corrupt(format!("cannot unpack {name} ({e})")))?;
    if buf.len() as u64 > limit {
        return Err(Fail::new(DocErrorKind::TooLarge, format!("{name} unpacks to more than {limit} bytes")));
    }
    let s = String::from_utf8(buf).map_err(|_| Fail::corrupt(format!("{name} is not UTF-8 XML")))?;
    Ok(Some(s))
}

/// Text of an entity or character reference (`&amp;`, `&#233;`); unknown names give nothing.
pub(crate) fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    let name = r.decode().ok()?;
    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
}

fn xml_error(e: impl std::fmt::Display) -> Fail {
    Fail::corrupt(format!("broken XML in the document ({e})"))
}

fn paragraphs_from_document_xml(xml: &str) -> Result<(Option<String>, Vec<String>), Fail> {
    let mut reader = Reader::from_str(xml);
    let mut paragraphs = Vec::new();
    let mut cur = String::new();
    let mut in_text = false;
    let mut is_title = false;
    let mut title = None;
    let mut skip = 0usize; // depth inside mc:Fallback
    loop {
        let event = reader.read_event().map_err(xml_error)?;
        match event {
            Event::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if skip > 0 || name == b"Fallback" {
                    skip += 1;
                } else if name == b"p" {
                    if !cur.trim().is_empty() {
                        paragraphs.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                    is_title = false;
                } else if name == b"t" {
                    in_text = true;
                }
            }
            Event::Empty(e) => {
                if skip > 0 {
                    continue;
                }
                match e.local_name().as_ref() {
                    b"tab" | b"br" | b"cr" => cur.push(' '),
                    b"pStyle" => {
                        let val = e.attributes().flatten().find(|a| a.key.local_name().as_ref() == b"val");
                        if let Some(v) = val {
                            is_title = v.value.as_ref() == b"Title";
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if skip > 0 {
                    skip -= 1;
                } else if name == b"t" {
                    in_text = false;
                } else if name == b"p" {
                    if is_title && title.is_none() && !cur.trim().is_empty() {
                        title = Some(cur.clone());
                    }
                    if !cur.trim().is_empty() {
                        paragraphs.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
            }
            Event::Text(t) if in_text && skip == 0 => cur.push_str(&t.decode().map_err(xml_error)?),
            Event::CData(t) if in_text && skip == 0 => cur.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) if in_text && skip == 0 => {
                if let Some(s) = resolve_ref(&r) {
                    cur.push_str(&s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !cur.trim().is_empty() {
        paragraphs.push(cur);
    }
    Ok((title, paragraphs))
}

/// Text of the first element with this local name (namespace prefix ignored), e.g. `dc:title`.
pub(crate) fn first_element_text(xml: &str, local: &[u8]) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut inside = false;
    let mut out = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == local => inside = true,
            Event::End(e) if inside && e.local_name().as_ref() == local => {
                return Some(out).filter(|s| !s.trim().is_empty());
            }
            Event::Text(t) if inside => out.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if inside => out.push_str(&resolve_ref(&r).unwrap_or_default()),
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_runs_tabs_and_entities_and_skips_deletions() {
        let xml = r#"<w:document xmlns:w="w"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>Tide &amp; Time</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Built </w:t></w:r><w:r><w:t>in 1921</w:t><w:tab/><w:t>ok</w:t></w:r>
                 <w:del><w:r><w:delText>gone</w:delText></w:r></w:del></w:p>
            </w:body></w:document>"#;
        let (title, paras) = super::paragraphs_from_document_xml(xml).unwrap();
        assert_eq!(title.as_deref(), Some("Tide & Time"));
        assert_eq!(paras, vec!["Tide & Time", "Built in 1921 ok"]);
    }
}
