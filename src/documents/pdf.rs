//! PDF: text layer per page, guarded, with running headers, footers and page numbers removed.
//!
//! `pdf-extract` is pure Rust but can panic or spin on unusual fonts and broken streams, so it
//! runs on its own thread under `catch_unwind`, and we stop waiting after
//! `LoadOptions::pdf_timeout`. A timed-out thread cannot be killed; it is detached and its
//! result dropped, so the caller moves on to the next file.
//!
//! Cleanup is deliberately conservative (it must never eat body text):
//! - a first or last line of a page is a running header/footer only when the same line, with
//!   digits ignored, is first (or last) on at least half of the pages and on at least 3 pages;
//! - a first or last line that is only a page number ("12", "- 12 -", "Page 3 of 9", "xii") is
//!   dropped in documents of two or more pages;
//! - a paragraph cut by a page break is joined when the page ends without sentence punctuation
//!   and the next page starts in lower case;
//! - paragraphs end at blank lines, and at a line shorter than 70 % of the page's longest line
//!   when the next line starts in upper case (headings and last lines of paragraphs).

use super::{DocErrorKind, Extracted, Fail, LoadOptions, normalise};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

pub(crate) fn read(bytes: &[u8], opts: &LoadOptions) -> Result<Extracted, Fail> {
    let encrypted = memchr::memmem::find(bytes, b"/Encrypt").is_some();
    let pages = match extract_guarded(bytes.to_vec(), opts) {
        Ok(p) => p,
        Err(f) if encrypted && f.kind == DocErrorKind::Corrupt => {
            return Err(Fail::new(DocErrorKind::Encrypted, "the PDF is password-protected"));
        }
        Err(f) => return Err(f),
    };
    if pages.iter().all(|p| p.trim().is_empty()) && encrypted {
        return Err(Fail::new(DocErrorKind::Encrypted, "the PDF is encrypted and gave no text"));
    }
    Ok(Extracted { title: None, paragraphs: paragraphs_from_pages(&pages) })
}

fn extract_guarded(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Vec<String>, Fail> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("pdf-extract".into()).spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem_by_pages(&bytes)));
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return Err(Fail::new(DocErrorKind::Unreadable, format!("cannot start the PDF reader thread: {e}")));
    }
    match rx.recv_timeout(opts.pdf_timeout) {
        Ok(Ok(Ok(pages))) => Ok(pages),
        Ok(Ok(Err(e))) => Err(Fail::corrupt(format!("the PDF cannot be parsed: {e}"))),
        Ok(Err(panic)) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown reason".into());
            Err(Fail::corrupt(format!("the PDF reader gave up on this file ({why})")))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(Fail::new(DocErrorKind::Timeout, format!("text extraction took longer than {} s", opts.pdf_timeout.as_secs_f32())))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Fail::corrupt("the PDF reader stopped without a result")),
    }
}

/// Digits folded to `#` and case folded: "Page 3 of 9" and "Page 4 of 9" share a key.
fn line_key(line: &str) -> String {
    line.trim().chars().map(|c| if c.is_ascii_digit() { '#' } else { c.to_ascii_lowercase() }).collect()
}

fn is_page_number(line: &str) -> bool {
    let t = line.trim().trim_matches(|c: char| c == '-' || c == '–' || c == '—' || c.is_whitespace());
    if t.is_empty() {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    let rest = lower.strip_prefix("page").map(str::trim).unwrap_or(&lower);
    let digits_only = |s: &str| !s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_digit());
    if digits_only(rest) {
        return true;
    }
    if let Some((a, b)) = rest.split_once(" of ").or_else(|| rest.split_once('/')) {
        return digits_only(a.trim()) && digits_only(b.trim());
    }
    // Lower-case roman numerals on front-matter pages ("xii"); "Civic" is a word, not a number.
    t.len() <= 6 && t.chars().all(|c| "ivxlc".contains(c))
}

/// Lines of each page with running headers/footers and page numbers removed, then paragraphs.
pub(crate) fn paragraphs_from_pages(pages: &[String]) -> Vec<String> {
    let mut pages: Vec<Vec<&str>> =
        pages.iter().map(|p| p.lines().map(str::trim_end).skip_while(|l| l.trim().is_empty()).collect()).collect();
    for p in &mut pages {
        while p.last().is_some_and(|l| l.trim().is_empty()) {
            p.pop();
        }
    }
    let n = pages.iter().filter(|p| !p.is_empty()).count();
    if n >= 3 {
        for first in [true, false] {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for p in pages.iter().filter(|p| !p.is_empty()) {
                let l = if first { p[0] } else { p[p.len() - 1] };
                *counts.entry(line_key(l)).or_default() += 1;
            }
            for p in pages.iter_mut().filter(|p| !p.is_empty()) {
                let idx = if first { 0 } else { p.len() - 1 };
                let c = counts.get(&line_key(p[idx])).copied().unwrap_or(0);
                if c >= 3 && c * 2 >= n {
                    p.remove(idx);
                }
            }
        }
    }
    if pages.len() >= 2 {
        for p in &mut pages {
            while p.first().is_some_and(|l| l.trim().is_empty() || is_page_number(l)) {
                p.remove(0);
            }
            while p.last().is_some_and(|l| l.trim().is_empty() || is_page_number(l)) {
                p.pop();
            }
        }
    }
    // Lines to paragraphs: a blank line ends a paragraph; a page break ends one unless the text
    // visibly continues (no closing punctuation, next page starts in lower case).
    let mut paragraphs: Vec<String> = Vec::new();
    let mut cur = String::new();
    let width = |l: &str| l.split_whitespace().map(|w| w.chars().count() + 1).sum::<usize>();
    for page in &pages {
        // Without a blank line, a line well short of the page's longest one, followed by a line
        // starting in upper case, ends its paragraph: headings, list items, last lines.
        let longest = page.iter().map(|l| width(l)).max().unwrap_or(0);
        if let Some(first) = page.iter().find(|l| !l.trim().is_empty()) {
            let continues = !cur.is_empty()
                && !cur.ends_with(['.', '!', '?', ':', '"', '\''])
                && first.trim().chars().next().is_some_and(char::is_lowercase);
            if !continues && !cur.is_empty() {
                paragraphs.push(std::mem::take(&mut cur));
            }
        }
        for (k, line) in page.iter().enumerate() {
            if line.trim().is_empty() {
                if !cur.is_empty() {
                    paragraphs.push(std::mem::take(&mut cur));
                }
                continue;
            }
            normalise::join_hyphenated(&mut cur, line);
            let next_starts_upper =
                page.get(k + 1).and_then(|n| n.trim().chars().next()).is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
            if page.len() >= 3 && width(line) * 10 < longest * 7 && next_starts_upper {
                paragraphs.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        paragraphs.push(cur);
    }
    paragraphs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_running_headers_and_page_numbers() {
        let pages: Vec<String> =
            (1..=4).map(|i| format!("Harbour Report 2024\n\nBody text of page {i} goes on and on.\n\nPage {i} of 4\n")).collect();
        let paras = paragraphs_from_pages(&pages);
        assert_eq!(paras.len(), 4, "{paras:?}");
        assert!(paras.iter().all(|p| p.starts_with("Body text")), "{paras:?}");
    }

    #[test]
    fn splits_a_heading_from_its_paragraph() {
        let page =
            "The Restoration\nIn 2016 the Friends of Marrow Pier raised money to rebuild\nthe lost section of the old pier.\n".to_string();
        let paras = paragraphs_from_pages(&[page]);
        assert_eq!(
            paras,
            vec!["The Restoration", "In 2016 the Friends of Marrow Pier raised money to rebuild the lost section of the old pier."]
        );
    }

    #[test]
    fn joins_a_paragraph_cut_by_a_page_break() {
        let pages = vec!["The ferry left at dawn and\n\n7\n".to_string(), "crossed the bay by noon.\n\n8\n".to_string()];
        assert_eq!(paragraphs_from_pages(&pages), vec!["The ferry left at dawn and crossed the bay by noon."]);
    }

    #[test]
    fn keeps_numbers_that_are_body_text() {
        assert!(!is_page_number("1921 was a dry year"));
        assert!(is_page_number("- 14 -"));
        assert!(is_page_number("Page 3 of 9"));
        assert!(is_page_number("xii"));
        assert!(!is_page_number("Civic"));
    }
}
