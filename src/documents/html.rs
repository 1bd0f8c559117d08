//! HTML (and the XHTML inside EPUBs): visible prose as paragraphs.
//!
//! Parsed with html5ever (via `scraper`), which repairs broken markup the way browsers do.
//! Block elements end a paragraph; scripts, styles, navigation, forms and embedded media are
//! skipped. The tree is walked iteratively, so deeply nested markup cannot overflow the stack.
//! The title is `<title>`, else the first `<h1>`.

use super::{Extracted, Fail, text};
use scraper::{Html, Node};

pub(crate) fn read(bytes: &[u8]) -> Result<Extracted, Fail> {
    let src = text::decode(bytes)?;
    Ok(from_str(&src))
}

fn is_skipped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "svg"
            | "math"
            | "nav"
            | "iframe"
            | "object"
            | "canvas"
            | "select"
            | "button"
            | "head"
    )
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "li"
            | "dt"
            | "dd"
            | "blockquote"
            | "pre"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "main"
            | "aside"
            | "table"
            | "tr"
            | "td"
            | "th"
            | "caption"
            | "figcaption"
            | "figure"
            | "br"
            | "hr"
            | "ul"
            | "ol"
            | "dl"
            | "address"
            | "details"
            | "summary"
            | "body"
            | "html"
    )
}

pub(crate) fn from_str(src: &str) -> Extracted {
    let doc = Html::parse_document(src);
    let mut paragraphs = Vec::new();
    let mut cur = String::new();
    let mut title_tag: Option<String> = None;
    let mut first_h1: Option<String> = None;
    let mut skip_depth = 0usize; // > 0 while inside a skipped element
    let mut in_title = false;
    let mut h1_depth = 0usize;
    let mut h1_text = String::new();
    for edge in doc.tree.root().traverse() {
        match edge {
            ego_tree::iter::Edge::Open(node) => match node.value() {
                Node::Element(el) => {
                    let name = el.name();
                    if name == "title" {
                        in_title = true;
                    }
                    if skip_depth > 0 || is_skipped(name) {
                        skip_depth += 1;
                        continue;
                    }
                    if name == "h1" {
                        h1_depth += 1;
                    }
                    if is_block(name) {
                        flush(&mut cur, &mut paragraphs);
                    }
                }
                Node::Text(t) => {
                    if in_title {
                        title_tag.get_or_insert_with(String::new).push_str(t);
                    } else if skip_depth == 0 {
                        cur.push_str(t);
                        if h1_depth > 0 {
                            h1_text.push_str(t);
                        }
                    }
                }
                _ => {}
            },
            ego_tree::iter::Edge::Close(node) => {
                if let Node::Element(el) = node.value() {
                    let name = el.name();
                    if name == "title" {
                        in_title = false;
                    }
                    if skip_depth > 0 {
                        skip_depth -= 1;
                        continue;
                    }
                    if name == "h1" {
                        h1_depth = h1_depth.saturating_sub(1);
                        if h1_depth == 0 && first_h1.is_none() && !h1_text.trim().is_empty() {
                            first_h1 = Some(std::mem::take(&mut h1_text));
                        }
                    }
                    if is_block(name) {
                        flush(&mut cur, &mut paragraphs);
                    }
                }
            }
        }
    }
    flush(&mut cur, &mut paragraphs);
    let title = title_tag.filter(|t| !t.trim().is_empty()).or(first_h1);
    Extracted { title, paragraphs }
}

fn flush(cur: &mut String, paragraphs: &mut Vec<String>) {
    if !cur.trim().is_empty() {
        paragraphs.push(std::mem::take(cur));
    }
    cur.clear();
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_visible_prose_only() {
        let html = "<html><head><title>Harbour notes</title><style>p{}</style></head><body><nav>Home | About</nav>\
                    <h1>The <em>Pier</em></h1><p>Built in <b>1921</b>,<br>it burned.</p><script>var x=1;</script>\
                    <ul><li>one</li><li>two</li></ul></body></html>";
        let e = super::from_str(html);
        assert_eq!(e.title.as_deref(), Some("Harbour notes"));
        assert_eq!(e.paragraphs, vec!["The Pier", "Built in 1921,", "it burned.", "one", "two"]);
    }
}
