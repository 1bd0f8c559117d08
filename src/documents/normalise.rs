//! Whitespace and character normalisation shared by all format readers.
//!
//! Contract: [`clean_inline`] returns text with no control characters, no zero-width
//! characters or soft hyphens, ASCII quotes and apostrophes, ligatures spelled out, and single
//! spaces only (trimmed). [`join_paragraphs`] cleans each paragraph, drops empty ones and joins
//! the rest with `"\n\n"`, so a paragraph boundary is always exactly one blank line.

/// Normalises one paragraph (see the module contract).
pub fn clean_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_clean(s, &mut out);
    out
}

/// Appends the cleaned form of `s` to `out`. Callers that stream pieces should collect raw text
/// and clean once: trailing whitespace of one piece is not remembered for the next.
pub fn push_clean(s: &str, out: &mut String) {
    // Whitespace is emitted lazily as one space before the next visible character, so runs
    // collapse and nothing trails; leading whitespace of `s` only counts when `out` has text.
    let mut pending_space = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Fast path: printable ASCII with single spaces between visible characters (most
        // lines of most documents) is copied as is.
        let printable = |b: u8| (0x21..0x7f).contains(&b);
        let mut run = 0;
        if printable(bytes[i]) {
            run = 1;
            while i + run < bytes.len() {
                let b = bytes[i + run];
                if printable(b) || (b == b' ' && i + run + 1 < bytes.len() && printable(bytes[i + run + 1])) {
                    run += 1;
                } else {
                    break;
                }
            }
        }
        if run > 0 {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push_str(&s[i..i + run]);
            i += run;
            continue;
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        i += c.len_utf8();
        let mapped: &str = match c {
            ' '
            | '\t'
            | '\n'
            | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{a0}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{85}' => {
                pending_space = true;
                continue;
            }
            // Zero-width characters, soft hyphen, BOM: invisible, drop them.
            '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => continue,
            c if c.is_control() => continue,
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' | '\u{2032}' => "'",
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' | '\u{2033}' => "\"",
            '\u{fb00}' => "ff",
            '\u{fb01}' => "fi",
            '\u{fb02}' => "fl",
            '\u{fb03}' => "ffi",
            '\u{fb04}' => "ffl",
            _ => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c);
                continue;
            }
        };
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push_str(mapped);
    }
}

/// Cleans each paragraph, drops empty ones, and joins them with a blank line.
pub fn join_paragraphs<'a>(paragraphs: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut para = String::new();
    for p in paragraphs {
        para.clear();
        push_clean(p, &mut para);
        if para.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&para);
    }
    out
}

/// Splits plain text into paragraphs at blank lines; the lines of one paragraph are joined by
/// spaces (hard-wrapped text is the common case for .txt files).
pub fn paragraphs_from_lines(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                paragraphs.push(std::mem::take(&mut cur));
            }
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(line);
        }
    }
    if !cur.is_empty() {
        paragraphs.push(cur);
    }
    paragraphs
}

/// Joins a word broken across a line end ("memo-" + "ry" → "memory") when the next line starts
/// in lower case; "well-" + "Known" keeps its hyphen. Used for PDF text, where layout breaks lines.
pub fn join_hyphenated(prev: &mut String, next: &str) {
    let next = next.trim();
    let broken = prev.ends_with('-')
        && prev[..prev.len() - 1].chars().next_back().is_some_and(char::is_alphabetic)
        && next.chars().next().is_some_and(char::is_lowercase);
    if broken {
        prev.pop();
    } else if !prev.is_empty() {
        prev.push(' ');
    }
    prev.push_str(next);
}

/// Byte ranges of the sentences of one paragraph. A sentence ends at `.`, `!` or `?` (plus
/// closing quotes or brackets) followed by a space and an upper-case letter, digit or opening
/// quote, unless the word before the stop is a known abbreviation or a single initial.
pub fn sentence_spans(p: &str) -> Vec<(usize, usize)> {
    let b = p.as_bytes();
    let mut spans = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'.' | b'!' | b'?') {
            let mut end = i + 1;
            while end < b.len() && matches!(b[end], b'.' | b'!' | b'?' | b'"' | b'\'' | b')' | b']') {
                end += 1;
            }
            if end + 1 < b.len() && b[end] == b' ' {
                let next = p[end + 1..].chars().next().unwrap_or(' ');
                let starts_sentence = next.is_uppercase() || next.is_ascii_digit() || next == '"' || next == '\'' || next == '(';
                if starts_sentence && !(b[i] == b'.' && is_abbreviation(&p[start..i])) {
                    spans.push((start, end));
                    start = end + 1;
                    i = end + 1;
                    continue;
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        spans.push((start, b.len()));
    }
    spans
}

/// True when the word ending `before` takes a full stop without ending a sentence.
pub fn is_abbreviation(before: &str) -> bool {
    let word = match before.rfind([' ', '(', '"']) {
        Some(i) => &before[i + 1..],
        None => before,
    };
    is_abbreviation_word(word)
}

/// [`is_abbreviation`] for a single word (runs at every full stop of every document): an
/// initial, or a word that ends with a full stop without ending a sentence ("Dr. Berg",
/// "St. Ives", "e.g.").
pub fn is_abbreviation_word(word: &str) -> bool {
    let b = word.as_bytes();
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return c.is_uppercase(); // an initial: "J. Holm"
    }
    match b.len() {
        2..=6 => {
            let mut buf = [0u8; 6];
            let key = &mut buf[..b.len()];
            key.copy_from_slice(b);
            key.make_ascii_lowercase();
            // One `match` on the lower-cased bytes: a list scan here cost hundreds of
            // instructions per full stop.
            matches!(
                &key[..],
                b"mr"
                    | b"mrs"
                    | b"ms"
                    | b"dr"
                    | b"prof"
                    | b"st"
                    | b"jr"
                    | b"sr"
                    | b"mt"
                    | b"no"
                    | b"vs"
                    | b"etc"
                    | b"e.g"
                    | b"i.e"
                    | b"inc"
                    | b"ltd"
                    | b"co"
                    | b"corp"
                    | b"gen"
                    | b"col"
                    | b"lt"
                    | b"sgt"
                    | b"capt"
                    | b"rev"
                    | b"gov"
                    | b"sen"
                    | b"rep"
                    | b"fig"
                    | b"vol"
                    | b"approx"
                    | b"ca"
                    | b"jan"
                    | b"feb"
                    | b"mar"
                    | b"apr"
                    | b"jun"
                    | b"jul"
                    | b"aug"
                    | b"sep"
                    | b"sept"
                    | b"oct"
                    | b"nov"
                    | b"dec"
                    | b"ave"
                    | b"rd"
                    | b"cf"
                    | b"al"
                    | b"pp"
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_whitespace_and_maps_quotes() {
        assert_eq!(clean_inline("  A\u{a0}\tb \n\u{201c}c\u{201d}\u{2019}s\u{ad}  "), "A b \"c\"'s");
    }

    #[test]
    fn joins_paragraphs_with_one_blank_line() {
        let t = join_paragraphs(["a  b", "  ", "c\nd"].into_iter());
        assert_eq!(t, "a b\n\nc d");
    }

    #[test]
    fn splits_sentences_but_not_after_abbreviations() {
        let p = "Dr. Anna Berg came at 9.30 a.m. to St. Ives. She left! \"Why?\" J. Holm asked. Fine.";
        let s: Vec<&str> = sentence_spans(p).into_iter().map(|(a, b)| &p[a..b]).collect();
        assert_eq!(s, vec!["Dr. Anna Berg came at 9.30 a.m. to St. Ives.", "She left!", "\"Why?\"", "J. Holm asked.", "Fine."]);
    }

    #[test]
    fn abbreviations_and_initials() {
        assert!(is_abbreviation("met Dr") && is_abbreviation("(e.g") && is_abbreviation("J") && is_abbreviation("Å"));
        assert!(!is_abbreviation("the end") && !is_abbreviation("Berg") && !is_abbreviation("a"));
    }

    #[test]
    fn dehyphenates_only_lowercase_continuations() {
        let mut s = "the memo-".to_string();
        join_hyphenated(&mut s, "ry of");
        assert_eq!(s, "the memory of");
        let mut s = "North-".to_string();
        join_hyphenated(&mut s, "East");
        assert_eq!(s, "North- East");
    }
}
