//! EPUB 2/3: the spine's XHTML documents in reading order, each read like HTML.
//!
//! `META-INF/container.xml` names the package (OPF); its manifest maps ids to files and its
//! spine gives the order. Non-linear items and the EPUB 3 navigation document are skipped (a
//! table of contents is not prose). DRM shows up as `META-INF/encryption.xml` listing content
//! documents and is reported as `Encrypted`; font obfuscation alone is harmless. The title is
//! `dc:title`.

use super::docx::{first_element_text, open_zip, read_entry};
use super::{DocErrorKind, Extracted, Fail, LoadOptions, html};
use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::BTreeMap;

pub(crate) fn read(bytes: &[u8], opts: &LoadOptions) -> Result<Extracted, Fail> {
    let mut zip = open_zip(bytes)?;
    if let Some(enc) = read_entry(&mut zip, "META-INF/encryption.xml", opts)? {
        let lower = enc.to_ascii_lowercase();
        if [".xhtml\"", ".html\"", ".htm\"", ".opf\""].iter().any(|ext| lower.contains(ext)) {
            return Err(Fail::new(DocErrorKind::Encrypted, "the EPUB is DRM-protected (encrypted chapters)"));
        }
    }
    let container =
        read_entry(&mut zip, "META-INF/container.xml", opts)?.ok_or_else(|| Fail::corrupt("no META-INF/container.xml (not an EPUB)"))?;
    let opf_path =
        first_attribute(&container, b"rootfile", b"full-path").ok_or_else(|| Fail::corrupt("container.xml names no package file"))?;
    let opf = read_entry(&mut zip, &opf_path, opts)?.ok_or_else(|| Fail::corrupt(format!("the package file {opf_path} is missing")))?;
    let base = match opf_path.rfind('/') {
        Some(i) => &opf_path[..=i],
        None => "",
    };
    let package = parse_package(&opf)?;
    let mut paragraphs = Vec::new();
    let mut unpacked = 0u64;
    for idref in &package.spine {
        let Some(item) = package.manifest.get(idref) else { continue };
        if item.properties.split_whitespace().any(|p| p == "nav") || !item.media_type.contains("html") {
            continue;
        }
        let path = resolve_href(base, &item.href);
        let Some(xhtml) = read_entry(&mut zip, &path, opts)? else { continue };
        unpacked += xhtml.len() as u64;
        if unpacked > opts.max_unpacked_bytes {
            return Err(Fail::new(DocErrorKind::TooLarge, format!("the chapters unpack to more than {} bytes", opts.max_unpacked_bytes)));
        }
        paragraphs.extend(html::from_str(&xhtml).paragraphs);
    }
    Ok(Extracted { title: first_element_text(&opf, b"title"), paragraphs })
}

struct Item {
    href: String,
    media_type: String,
    properties: String,
}

struct Package {
    manifest: BTreeMap<String, Item>,
    /// Linear spine items, in reading order.
    spine: Vec<String>,
}

fn attr(e: &quick_xml::events::BytesStart<'_>, key: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::default()).ok().map(|v| v.into_owned()))
}

fn first_attribute(xml: &str, element: &[u8], key: &[u8]) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == element => return attr(&e, key),
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn parse_package(opf: &str) -> Result<Package, Fail> {
    let mut reader = Reader::from_str(opf);
    let mut manifest = BTreeMap::new();
    let mut spine = Vec::new();
    loop {
        match reader.read_event().map_err(|e| Fail::corrupt(format!("broken package XML ({e})")))? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"item" => {
                    if let (Some(id), Some(href)) = (attr(&e, b"id"), attr(&e, b"href")) {
                        let media_type = attr(&e, b"media-type").unwrap_or_default();
                        let properties = attr(&e, b"properties").unwrap_or_default();
                        manifest.insert(id, Item { href, media_type, properties });
                    }
                }
                b"itemref" => {
                    if let Some(id) = attr(&e, b"idref")
                        && attr(&e, b"linear").as_deref() != Some("no")
                    {
                        spine.push(id);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if spine.is_empty() {
        return Err(Fail::corrupt("the EPUB package lists no chapters"));
    }
    Ok(Package { manifest, spine })
}

/// Joins a manifest href to the package folder: drops a fragment, decodes %XX, resolves `..`.
fn resolve_href(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let decoded = percent_decode(href);
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolves_relative_hrefs() {
        assert_eq!(super::resolve_href("OEBPS/", "text/ch%201.xhtml#s2"), "OEBPS/text/ch 1.xhtml");
        assert_eq!(super::resolve_href("OEBPS/text/", "../ch2.xhtml"), "OEBPS/ch2.xhtml");
        assert_eq!(super::resolve_href("", "ch3.xhtml"), "ch3.xhtml");
    }
}
