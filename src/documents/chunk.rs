//! Token-aware chunking on paragraph and sentence boundaries.
//!
//! Contract:
//! - Tokens are counted by a [`TokenCounter`]: the loaded model's tokenizer when there is one,
//!   else [`ApproxCounter`], so exercises can be built without a model.
//! - A paragraph longer than the budget is cut at sentence ends, a sentence longer than the
//!   budget at spaces; nothing is cut inside a word (so a single word longer than the whole
//!   budget, such as a pasted URL, makes the one chunk that can exceed it).
//! - [`pack`] fills chunks greedily in order; with an additive counter (the approximate one) a
//!   chunk never exceeds the budget. Real BPE counts are nearly additive at whitespace seams;
//!   each seam is charged [`JOIN_TOKENS`] to cover the separator.

use super::normalise::sentence_spans;
use std::ops::Range;

/// Tokens charged for the separator between two units of one chunk.
pub const JOIN_TOKENS: usize = 2;

/// Counts tokens the way the model will see them.
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
    /// Recorded in the manifest so a dataset says which counter sized its chunks.
    fn name(&self) -> String;
}

/// A tokenizer-free estimate tuned to byte-level BPE tokenizers of ~50k entries (SmolLM2,
/// Llama, Qwen) on English prose: one token per 6 letters of a word (rounded up), one per
/// digit, one per other visible symbol. On the sample documents it is within 1 % of SmolLM2's
/// count (tests/documents_chunking.rs checks it when a model is at hand).
#[derive(Clone, Copy, Debug, Default)]
pub struct ApproxCounter;

/// Byte classes for [`ApproxCounter`]: 0 = whitespace, 1 = letter (or any non-ASCII byte),
/// 2 = any other visible symbol or digit (one token each).
const CLASS: [u8; 256] = {
    let mut t = [2u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c >= 0x80 {
            t[b] = 1;
        } else if c.is_ascii_whitespace() {
            t[b] = 0;
        }
        b += 1;
    }
    t
};

impl TokenCounter for ApproxCounter {
    fn count(&self, text: &str) -> usize {
        // A word of n letters costs ceil(n / 6) tokens: one for every letter at an index that is
        // a multiple of 6 within its word. Table-driven and branch-light: this runs over every
        // byte of every document.
        let mut tokens = 0usize;
        let mut phase = 0u8; // index within the current word, modulo 6
        for &b in text.as_bytes() {
            let class = CLASS[b as usize];
            let letter = class == 1;
            tokens += usize::from(letter & (phase == 0)) + usize::from(class == 2);
            phase = if letter { if phase == 5 { 0 } else { phase + 1 } } else { 0 };
        }
        tokens
    }

    fn name(&self) -> String {
        "approximate (no model tokenizer)".into()
    }
}

impl TokenCounter for crate::checkpoint::tokenizer::TextTokenizer {
    fn count(&self, text: &str) -> usize {
        // Encoding plain text does not fail in practice; if it ever does, estimate rather than stop.
        self.encode(text, false).map(|ids| ids.len()).unwrap_or_else(|_| ApproxCounter.count(text))
    }

    fn name(&self) -> String {
        "model tokenizer".into()
    }
}

/// A piece of a document that fits the budget: a whole paragraph or a run of its sentences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub text: String,
    pub tokens: usize,
    /// True when this unit begins a paragraph (joined with a blank line, else with a space).
    pub starts_paragraph: bool,
}

/// Splits one paragraph into units of at most `max_tokens` and appends them to `out`.
pub fn split_paragraph(p: &str, max_tokens: usize, counter: &dyn TokenCounter, out: &mut Vec<Unit>) {
    let max_tokens = max_tokens.max(1);
    let tokens = counter.count(p);
    if tokens <= max_tokens {
        out.push(Unit { text: p.to_string(), tokens, starts_paragraph: true });
        return;
    }
    let mut first = true;
    let mut cur = String::new();
    let mut cur_tokens = 0usize;
    let emit = |text: &mut String, t: &mut usize, first: &mut bool, out: &mut Vec<Unit>| {
        if !text.is_empty() {
            out.push(Unit { text: std::mem::take(text), tokens: *t, starts_paragraph: *first });
            *first = false;
        }
        *t = 0;
    };
    for (a, b) in sentence_spans(p) {
        let sentence = &p[a..b];
        let st = counter.count(sentence);
        if st > max_tokens {
            emit(&mut cur, &mut cur_tokens, &mut first, out);
            // A sentence over budget: cut at spaces.
            for word in sentence.split(' ') {
                let wt = counter.count(word);
                if !cur.is_empty() && cur_tokens + wt + 1 > max_tokens {
                    emit(&mut cur, &mut cur_tokens, &mut first, out);
                }
                if !cur.is_empty() {
                    cur.push(' ');
                    cur_tokens += 1;
                }
                cur.push_str(word);
                cur_tokens += wt;
            }
            emit(&mut cur, &mut cur_tokens, &mut first, out);
            continue;
        }
        if !cur.is_empty() && cur_tokens + st + 1 > max_tokens {
            emit(&mut cur, &mut cur_tokens, &mut first, out);
        }
        if !cur.is_empty() {
            cur.push(' ');
            cur_tokens += 1;
        }
        cur.push_str(sentence);
        cur_tokens += st;
    }
    emit(&mut cur, &mut cur_tokens, &mut first, out);
}

/// Groups consecutive units into chunks of at most `budget` tokens (seams cost [`JOIN_TOKENS`]).
pub fn pack(units: &[Unit], budget: usize) -> Vec<Range<usize>> {
    pack_counts(units.iter().map(|u| u.tokens), budget)
}

/// [`pack`] over token counts alone.
pub fn pack_counts(tokens: impl IntoIterator<Item = usize>, budget: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut used = 0usize;
    let mut n = 0;
    for (i, t) in tokens.into_iter().enumerate() {
        n = i + 1;
        let cost = if i == start { t } else { used + JOIN_TOKENS + t };
        if i > start && cost > budget {
            chunks.push(start..i);
            start = i;
            used = t;
        } else {
            used = cost;
        }
    }
    if start < n {
        chunks.push(start..n);
    }
    chunks
}

/// The text of consecutive units as the model reads it.
pub fn render<'a>(units: impl IntoIterator<Item = (&'a str, bool)>) -> String {
    let mut s = String::new();
    for (text, starts_paragraph) in units {
        if !s.is_empty() {
            s.push_str(if starts_paragraph { "\n\n" } else { " " });
        }
        s.push_str(text);
    }
    s
}

/// Chunks a whole normalised text (paragraphs separated by blank lines): the app's preview and
/// the simplest use of this module.
pub fn chunk_text(text: &str, budget: usize, counter: &dyn TokenCounter) -> Vec<String> {
    let mut units = Vec::new();
    for p in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        split_paragraph(p, budget, counter, &mut units);
    }
    pack(&units, budget).into_iter().map(|r| render(units[r].iter().map(|u| (u.text.as_str(), u.starts_paragraph)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approx_counts_words_digits_and_symbols() {
        assert_eq!(ApproxCounter.count("The harbour, 1921."), 1 + 2 + 1 + 4 + 1);
        assert_eq!(ApproxCounter.count("internationalisation"), 1 + 19 / 6);
    }

    #[test]
    fn chunks_respect_the_budget_and_keep_all_words() {
        let para = "Anna Berg sailed north. ".repeat(40);
        let text = format!("Short one.\n\n{}\n\nLast words here.", para.trim());
        let chunks = chunk_text(&text, 30, &ApproxCounter);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(ApproxCounter.count(c) <= 30, "{} tokens: {c}", ApproxCounter.count(c));
        }
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&chunks.join(" ")), words(&text));
    }
}
