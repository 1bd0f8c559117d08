//! The teacher's *ledger* memory (`sft.memory_style: Ledger`): instead of whole sentences, a
//! short clause around each entity the memory does not hold yet and around each new `[MASK]`
//! ("the mayor Priya Fenwick who rowed.", "the mayor [MASK] who rowed.").
//!
//! Why: with sentence memories the trained 135M student kept either the sentence naming the
//! masked answer or a `[MASK]` sentence, almost never both (README, Training), because a
//! 64–96-token memory holds three or four sentences and the student cannot know, when it reads
//! the name, that the name will be masked later. A clause is a third of a sentence, so the
//! memory can keep *every* entity it has read with the words beside it (synthetic documents
//! write an epithet there: "the mayor", "the mill town of"), which is a rule the student can
//! learn from the text alone; the answer turn then matches the blank's clause to the entity
//! clause with the same words around it — the copying a pretrained model does well.
//!
//! Contract: clauses are cut from one sentence at a time: the words of the mention, up to
//! [`WORDS_BEFORE`] words before it and [`WORDS_AFTER`] after, overlapping windows merged,
//! trailing punctuation replaced by a full stop (so the clauses read as the sentences every
//! other part of the teacher splits on). A clause is new when it holds `[MASK]` and is not
//! kept yet, or names an entity (the rule tagger's, or a `keys` string) that no kept clause
//! contains.

use crate::exercises::masked_entity::MASK;
use crate::exercises::{entities, textmatch};
use serde::{Deserialize, Serialize};

/// What the teacher's memory is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum MemoryStyle {
    /// Every sentence that names an entity or holds `[MASK]`.
    #[default]
    Sentences,
    /// The clause around each entity and `[MASK]` not yet kept (module docs).
    Ledger,
}

/// Words kept before a mention: "the fishing village of Torgard Bay" needs four.
pub const WORDS_BEFORE: usize = 4;
/// Words kept after a mention: "the Dunmere Savings Bank on the quay" needs three.
pub const WORDS_AFTER: usize = 3;

/// The new clauses of `sentence` given the clauses already `kept` (module docs); `keys` are
/// strings that count as entities wherever they occur (`[MASK]`, probed answers).
pub fn new_clauses(sentence: &str, keys: &[&str], kept: &[String]) -> Vec<String> {
    let words = word_spans(sentence);
    let mut spans: Vec<(usize, usize)> = entities::find(sentence).iter().map(|m| (m.start, m.end)).collect();
    for key in keys {
        spans.extend(textmatch::find_all(sentence, key).into_iter().map(|r| (r.start, r.end)));
    }
    // Windows in word indices, merged where they overlap or touch.
    let mut windows: Vec<(usize, usize)> = spans
        .iter()
        .filter_map(|&(start, end)| {
            let first = words.iter().position(|w| w.1 > start)?;
            let last = words.iter().rposition(|w| w.0 < end)?;
            Some((first.saturating_sub(WORDS_BEFORE), (last + WORDS_AFTER).min(words.len() - 1)))
        })
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in windows {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (a, b) in merged {
        let clause = clause_text(&sentence[words[a].0..words[b].1]);
        let named: Vec<(usize, usize)> = spans.iter().copied().filter(|&(s, e)| s >= words[a].0 && e <= words[b].1).collect();
        let seen = |text: &str| kept.iter().chain(out.iter()).any(|k| textmatch::contains(k, text));
        let is_new = if clause.contains(MASK) {
            !kept.iter().chain(out.iter()).any(|k| *k == clause)
        } else {
            named.iter().any(|&(s, e)| !seen(&sentence[s..e]))
        };
        if is_new {
            out.push(clause);
        }
    }
    out
}

/// Byte ranges of the whitespace-separated words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// `words` with closing punctuation replaced by one full stop.
fn clause_text(words: &str) -> String {
    format!("{}.", words.trim_end_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '!' | '?')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_gets_the_words_around_it_and_a_known_name_gets_nothing() {
        let s = "When the storm came, it was the mayor Priya Fenwick who rowed out to the stranded boats.";
        let c = new_clauses(s, &[MASK], &[]);
        assert_eq!(c, ["it was the mayor Priya Fenwick who rowed out."]);
        assert!(new_clauses(s, &[MASK], &c).is_empty(), "Priya Fenwick is already kept");
        let m = new_clauses("Everyone agreed that the mayor [MASK] knew more about the tides.", &[MASK], &c);
        assert_eq!(m, ["agreed that the mayor [MASK] knew more about."]);
        assert!(new_clauses("Everyone agreed that the mayor [MASK] knew more about the tides.", &[MASK], &m).is_empty());
    }

    #[test]
    fn overlapping_windows_make_one_clause_and_a_new_name_beside_a_known_one_is_kept() {
        let s = "The engineer Oskar Ulvaeus and the schoolteacher Arvid Orlov argued for weeks.";
        let kept = vec!["the engineer Oskar Ulvaeus arrived.".to_string()];
        assert_eq!(new_clauses(s, &[], &kept), ["The engineer Oskar Ulvaeus and the schoolteacher Arvid Orlov argued for weeks."]);
        assert!(new_clauses(s, &[], &["Oskar Ulvaeus.".into(), "Arvid Orlov.".into()]).is_empty());
    }
}
