//! Case-insensitive, word-bounded search and replace: the one definition of "the entity occurs
//! here" used both to mask answers and to check that none leaked.
//!
//! A match compares lower-case forms: ASCII needles match ASCII case variants ("BERG", "berg");
//! other needles compare full Unicode lower case ("ÅSA" matches "Åsa"). It must not sit inside
//! a longer word: when the needle starts (ends) with a letter or digit, the character before
//! (after) the match must not be one. Possessives therefore match: "Berg" is found in "Berg's".
//!
//! Speed: a [`Haystack`] keeps an ASCII-lower-cased copy of its text (same byte offsets), so an
//! ASCII needle is found with `memchr::memmem` (SIMD) instead of a byte-by-byte scan; masking
//! searches each context for many candidate entities, and this was its main cost.

use std::borrow::Cow;
use std::ops::Range;

/// A text prepared for repeated searches.
pub struct Haystack<'a> {
    text: &'a str,
    lower: Cow<'a, [u8]>,
}

impl<'a> Haystack<'a> {
    pub fn new(text: &'a str) -> Haystack<'a> {
        Haystack { text, lower: Cow::Owned(text.to_ascii_lowercase().into_bytes()) }
    }

    /// For a caller that keeps the lower-cased copy itself (`lower` must be
    /// `text.to_ascii_lowercase()`).
    pub fn with_lower(text: &'a str, lower: &'a [u8]) -> Haystack<'a> {
        debug_assert_eq!(lower.len(), text.len());
        Haystack { text, lower: Cow::Borrowed(lower) }
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Every occurrence of `needle`, or `None` as soon as there are more than `max`.
    pub fn find_at_most(&self, needle: &str, max: usize) -> Option<Vec<Range<usize>>> {
        let mut out = Vec::new();
        if needle.is_empty() {
            return Some(out);
        }
        if !needle.is_ascii() {
            return unicode_find(self.text, needle, max);
        }
        let n = needle.to_ascii_lowercase();
        let mut last_end = 0;
        for p in memchr::memmem::find_iter(&self.lower, n.as_bytes()) {
            let r = p..p + n.len();
            if p < last_end || !bounded(self.text, &r, needle) {
                continue;
            }
            last_end = r.end;
            out.push(r);
            if out.len() > max {
                return None;
            }
        }
        Some(out)
    }

    pub fn find_all(&self, needle: &str) -> Vec<Range<usize>> {
        self.find_at_most(needle, usize::MAX).unwrap_or_default()
    }
}

fn folded(s: &str) -> Vec<char> {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// End of a match of the folded needle at byte `p` of `hay`.
fn match_at(hay: &str, p: usize, needle: &[char]) -> Option<usize> {
    let mut k = 0;
    let mut end = p;
    for (off, c) in hay[p..].char_indices() {
        if k == needle.len() {
            break;
        }
        for lc in c.to_lowercase() {
            if k >= needle.len() || lc != needle[k] {
                return None;
            }
            k += 1;
        }
        end = p + off + c.len_utf8();
    }
    (k == needle.len()).then_some(end)
}

fn bounded(hay: &str, r: &Range<usize>, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let before_ok = !alnum(needle.chars().next()) || !alnum(hay[..r.start].chars().next_back());
    let after_ok = !alnum(needle.chars().next_back()) || !alnum(hay[r.end..].chars().next());
    before_ok && after_ok
}

/// The general path for needles with non-ASCII characters: compare Unicode lower case forms
/// char by char from every position whose first char folds to the needle's first.
fn unicode_find(hay: &str, needle: &str, max: usize) -> Option<Vec<Range<usize>>> {
    let nf = folded(needle);
    let mut out = Vec::new();
    let Some(&first) = nf.first() else { return Some(out) };
    let mut skip_to = 0;
    for (p, c) in hay.char_indices() {
        if p < skip_to || c.to_lowercase().next() != Some(first) {
            continue;
        }
        if let Some(end) = match_at(hay, p, &nf) {
            let r = p..end;
            if bounded(hay, &r, needle) {
                skip_to = end;
                out.push(r);
                if out.len() > max {
                    return None;
                }
            }
        }
    }
    Some(out)
}

/// Every non-overlapping, word-bounded, case-insensitive occurrence of `needle` in `hay`.
pub fn find_all(hay: &str, needle: &str) -> Vec<Range<usize>> {
    find_at_most(hay, needle, usize::MAX).unwrap_or_default()
}

/// [`find_all`], giving up with `None` as soon as there are more than `max` occurrences.
pub fn find_at_most(hay: &str, needle: &str, max: usize) -> Option<Vec<Range<usize>>> {
    if needle.is_ascii() { Haystack::new(hay).find_at_most(needle, max) } else { unicode_find(hay, needle, max) }
}

/// True when `needle` occurs in `hay` (see [`find_all`]).
pub fn contains(hay: &str, needle: &str) -> bool {
    find_at_most(hay, needle, 0).is_none_or(|v| !v.is_empty())
}

/// Replaces every occurrence of `needle` with `with`; returns the new text and the count.
pub fn replace_all(hay: &str, needle: &str, with: &str) -> (String, usize) {
    let hits = find_all(hay, needle);
    (replace_ranges(hay, &hits, with), hits.len())
}

/// Replaces the given (sorted, non-overlapping) ranges, e.g. the hits of [`find_all`].
pub fn replace_ranges(hay: &str, hits: &[Range<usize>], with: &str) -> String {
    let mut out = String::with_capacity(hay.len() + hits.len() * with.len());
    let mut last = 0;
    for r in hits {
        out.push_str(&hay[last..r.start]);
        out.push_str(with);
        last = r.end;
    }
    out.push_str(&hay[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_case_variants_and_possessives_but_not_inside_words() {
        let t = "Berg met BERG's son in Bergen; berg.";
        let (masked, n) = replace_all(t, "Berg", "[MASK]");
        assert_eq!(n, 3);
        assert_eq!(masked, "[MASK] met [MASK]'s son in Bergen; [MASK].");
    }

    #[test]
    fn folds_non_ascii_and_symbols() {
        assert_eq!(replace_all("ÅSA and Åsa", "åsa", "X").0, "X and X");
        assert_eq!(replace_all("Tromsø, TROMSØ and tromsø", "Tromsø", "X").0, "X, X and X");
        assert_eq!(replace_all("cost $4.2 million, not $4.2 millions", "$4.2 million", "X").1, 1);
        // ASCII needle in a text with non-ASCII letters around it: offsets stay right.
        assert_eq!(replace_all("Ærø and ANNA BERG, Ærø", "Anna Berg", "X").0, "Ærø and X, Ærø");
    }

    #[test]
    fn stops_counting_past_the_limit() {
        assert!(find_at_most("a Berg, a Berg, a Berg", "berg", 2).is_none());
        assert_eq!(find_at_most("a Berg, a Berg", "berg", 2).unwrap().len(), 2);
        assert!(contains("x BERG y", "Berg") && !contains("Bergen", "Berg"));
    }
}
