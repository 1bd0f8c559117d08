//! Words for the entity finder: a tokenizer that marks sentence starts, and the
//! document-wide capitalisation [`Vocab`].
//!
//! Contract: both use the same word rules (letters and digits; an inner apostrophe or hyphen
//! joins, as in O'Brien and Jean-Luc; a final possessive 's does not). Both run over every byte
//! of every document, so ASCII takes a fast path and the vocabulary stores 64-bit hashes.

use crate::documents::normalise::sentence_spans;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hash over 8-byte words (the rustc "Fx" hash): the vocabulary and the word
/// lists are queried for most words of every document, and SipHash's DoS resistance buys
/// nothing here. Sets are only queried, never iterated, so output order cannot depend on it.
#[derive(Default)]
pub struct WordHasher(u64);

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(b as u64);
    }
}

/// Passes a precomputed 64-bit hash through (the vocabulary stores hashes, not words).
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashedWords = HashSet<u64, BuildHasherDefault<PassThrough>>;

fn word_hash(w: &[u8]) -> u64 {
    let mut h = WordHasher::default();
    h.write(w);
    // One more round so that short words spread over the high bits hashbrown uses.
    h.add(w.len() as u64);
    h.finish()
}

/// Document-wide capitalisation evidence: words seen in lower case, and words seen capitalised
/// away from a sentence start. Stored as 64-bit hashes (no allocation per word; a collision
/// only misjudges one sentence-initial word).
#[derive(Default)]
pub struct Vocab {
    lower: HashedWords,
    capitalised: HashedWords,
}

impl Vocab {
    pub fn from_text(text: &str) -> Vocab {
        let mut v = Vocab::default();
        v.add(text);
        v
    }

    /// Adds the evidence of another piece of the same document. A cheaper scan than `tokenize`
    /// (the vocabulary is built over every byte of every document): a word starts a sentence
    /// when the previous visible character is a full stop, `!` or `?` (after any closing quotes
    /// or brackets) not ending an abbreviation, or it opens a paragraph.
    pub fn add(&mut self, text: &str) {
        let b = text.as_bytes();
        let mut i = 0;
        let mut sentence_start = true;
        let mut last_word = (0usize, 0usize);
        while i < b.len() {
            let byte = b[i];
            // Hot loop: spaces and plain ASCII words take the first branches.
            if byte == b' ' {
                i += 1;
                continue;
            }
            let c = if byte < 0x80 { byte as char } else { char_at(text, i) };
            if !(byte.is_ascii_alphanumeric() || (byte >= 0x80 && is_word_char(c))) {
                if c == '\n' && b.get(i + 1) == Some(&b'\n') {
                    sentence_start = true;
                } else if matches!(c, '.' | '!' | '?') {
                    let abbreviation =
                        c == '.' && last_word.1 == i && crate::documents::normalise::is_abbreviation_word(&text[last_word.0..last_word.1]);
                    sentence_start = !abbreviation;
                } else if !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | ']' | '(' | '[') {
                    sentence_start = false;
                }
                i += c.len_utf8();
                continue;
            }
            let start = i;
            i += c.len_utf8();
            loop {
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                if i >= b.len() {
                    break;
                }
                let d = b[i];
                if d >= 0x80 {
                    let dc = char_at(text, i);
                    if !is_word_char(dc) {
                        break;
                    }
                    i += dc.len_utf8();
                } else if (d == b'\'' || d == b'-') && i + 1 < b.len() && is_word_char(char_at(text, i + 1)) {
                    // Same word rules as `tokenize`: O'Brien and Jean-Luc are one word, a final
                    // possessive 's is not part of it.
                    let possessive =
                        d == b'\'' && matches!(b[i + 1], b's' | b'S') && !(i + 2 < b.len() && is_word_char(char_at(text, i + 2)));
                    if possessive {
                        break;
                    }
                    i += 1;
                } else {
                    break;
                }
            }
            last_word = (start, i);
            if !sentence_start && !byte.is_ascii_digit() {
                let upper = if byte < 0x80 { byte.is_ascii_uppercase() } else { c.is_uppercase() };
                let set = if upper { &mut self.capitalised } else { &mut self.lower };
                set.insert(word_hash(&b[start..i]));
            }
            sentence_start = false;
        }
    }

    pub(crate) fn seen_lower(&self, word: &str) -> bool {
        let mut buf = [0u8; 32];
        if word.is_ascii() && word.len() <= buf.len() {
            let key = &mut buf[..word.len()];
            key.copy_from_slice(word.as_bytes());
            key.make_ascii_lowercase();
            return self.lower.contains(&word_hash(key));
        }
        self.lower.contains(&word_hash(word.to_lowercase().as_bytes()))
    }

    pub(crate) fn seen_capitalised(&self, word: &str) -> bool {
        self.capitalised.contains(&word_hash(word.as_bytes()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokKind {
    Word,
    Num,
    Punct,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok {
    pub(crate) s: usize,
    pub(crate) e: usize,
    pub(crate) kind: TokKind,
    /// First word or number of a sentence (leading quotes and brackets skipped).
    pub(crate) sent_start: bool,
    /// Starts with an upper-case letter.
    pub(crate) cap: bool,
    /// Every letter upper case and at least two letters.
    pub(crate) upper: bool,
    /// Index of the paragraph in the text.
    pub(crate) para: usize,
}

pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// The char at byte `i` (ASCII without decoding).
#[inline]
pub(crate) fn char_at(p: &str, i: usize) -> char {
    let b = p.as_bytes()[i];
    if b < 0x80 { b as char } else { p[i..].chars().next().unwrap_or(' ') }
}

/// Splits text into words, numbers and single punctuation marks, with sentence starts marked.
/// Hot path (runs over every byte of every document): ASCII is handled without decoding.
pub(crate) fn tokenize(text: &str, out: &mut Vec<Tok>) {
    out.clear();
    let mut offset = 0;
    for (para, p) in text.split("\n\n").enumerate() {
        let spans = sentence_spans(p);
        let mut span_i = 0;
        let mut at_sentence_start = true;
        let mut i = 0;
        let b = p.as_bytes();
        while i < b.len() {
            while span_i < spans.len() && spans[span_i].1 <= i {
                span_i += 1;
                at_sentence_start = true;
            }
            let c = char_at(p, i);
            let clen = c.len_utf8();
            if c.is_whitespace() {
                i += clen;
                continue;
            }
            let start = i;
            let kind;
            if c.is_ascii_digit() {
                kind = TokKind::Num;
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    let next_digit = b.get(i + 1).is_some_and(u8::is_ascii_digit);
                    // A hyphen joins digits only in ISO dates (1998-03-12); "1998-2001" is two years.
                    let iso_dash =
                        d == b'-' && (i - start == 4 || i - start == 7) && b[start..i].iter().all(|c| c.is_ascii_digit() || *c == b'-');
                    if d.is_ascii_digit() || (matches!(d, b',' | b'.') && next_digit) || (iso_dash && next_digit) || d.is_ascii_alphabetic()
                    {
                        // Letters after digits are suffixes: 21st, 1990s, 40km.
                        i += 1;
                    } else {
                        break;
                    }
                }
            } else if is_word_char(c) {
                kind = TokKind::Word;
                i += clen;
                while i < b.len() {
                    let d = b[i];
                    if d.is_ascii_alphanumeric() {
                        i += 1;
                        continue;
                    }
                    if d >= 0x80 {
                        let dc = char_at(p, i);
                        if is_word_char(dc) {
                            i += dc.len_utf8();
                            continue;
                        }
                        break;
                    }
                    if d == b'\'' || d == b'-' {
                        // Inside a word: O'Brien, Jean-Luc. A final 's is a possessive and stays out.
                        let next_is_word = i + 1 < b.len() && is_word_char(char_at(p, i + 1));
                        let possessive = d == b'\''
                            && matches!(b.get(i + 1), Some(b's' | b'S'))
                            && !(i + 2 < b.len() && is_word_char(char_at(p, i + 2)));
                        if next_is_word && !possessive {
                            i += 1;
                            continue;
                        }
                    }
                    break;
                }
            } else {
                kind = TokKind::Punct;
                i += clen;
            }
            let (cap, upper) = if kind == TokKind::Word {
                let first = char_at(p, start);
                let cap = first.is_uppercase();
                // Only capitalised words can be all caps; count letters only for them.
                let upper = cap && {
                    let w = &p[start..i];
                    w.chars().filter(|c| c.is_alphabetic()).nth(1).is_some() && !w.chars().any(char::is_lowercase)
                };
                (cap, upper)
            } else {
                (false, false)
            };
            let sent_start = at_sentence_start && kind != TokKind::Punct;
            if kind != TokKind::Punct {
                at_sentence_start = false;
            }
            out.push(Tok { s: offset + start, e: offset + i, kind, sent_start, cap, upper, para });
        }
        offset += p.len() + 2;
    }
}
