//! Markdown: CommonMark (+ tables, footnotes, front matter) to plain paragraphs.
//!
//! Headings, paragraphs, list items, quotes and table cells each become a paragraph; inline
//! markup is dropped and its text kept. Code blocks, raw HTML and YAML/TOML front matter are
//! skipped: they are not prose and would only feed the entity finder noise. The first level-1
//! heading is the title.

use super::{Extracted, Fail, text};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

pub(crate) fn read(bytes: &[u8]) -> Result<Extracted, Fail> {
    let src = text::decode(bytes)?;
    Ok(from_str(&src))
}

pub(crate) fn from_str(src: &str) -> Extracted {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut paragraphs = Vec::new();
    let mut cur = String::new();
    let mut title: Option<String> = None;
    let mut in_h1 = false;
    // Depth of blocks whose text we skip (code, metadata, raw HTML).
    let mut skip = 0usize;
    let flush = |cur: &mut String, paragraphs: &mut Vec<String>| {
        if !cur.trim().is_empty() {
            paragraphs.push(std::mem::take(cur));
        }
        cur.clear();
    };
    for event in Parser::new_ext(src, opts) {
        match event {
            Event::Start(tag) => match tag {
                Tag::CodeBlock(_) | Tag::MetadataBlock(_) | Tag::HtmlBlock => skip += 1,
                Tag::Heading { level, .. } => {
                    flush(&mut cur, &mut paragraphs);
                    in_h1 = level == HeadingLevel::H1 && title.is_none();
                }
                Tag::Paragraph | Tag::Item | Tag::BlockQuote(_) | Tag::TableCell | Tag::FootnoteDefinition(_) => {
                    flush(&mut cur, &mut paragraphs)
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::CodeBlock | TagEnd::MetadataBlock(_) | TagEnd::HtmlBlock => skip = skip.saturating_sub(1),
                TagEnd::Heading(_) => {
                    if in_h1 {
                        title = Some(cur.trim().to_string());
                        in_h1 = false;
                    }
                    flush(&mut cur, &mut paragraphs);
                }
                TagEnd::Paragraph | TagEnd::Item | TagEnd::BlockQuote(_) | TagEnd::TableCell | TagEnd::FootnoteDefinition => {
                    flush(&mut cur, &mut paragraphs)
                }
                _ => {}
            },
            Event::Text(t) | Event::Code(t) if skip == 0 => cur.push_str(&t),
            Event::SoftBreak | Event::HardBreak if skip == 0 => cur.push(' '),
            _ => {}
        }
    }
    flush(&mut cur, &mut paragraphs);
    Extracted { title, paragraphs }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_prose_and_drops_code_and_front_matter() {
        let md = "---\nauthor: x\n---\n# The *Salt* Road\n\nFirst line\nsecond line with `code`.\n\n```\nfn main() {}\n```\n\n- item one\n- item two\n";
        let e = super::from_str(md);
        assert_eq!(e.title.as_deref(), Some("The Salt Road"));
        assert_eq!(e.paragraphs, vec!["The Salt Road", "First line second line with code.", "item one", "item two"]);
    }
}
