//! The Memory inspector's material: one exercise read by the agent (greedy), its probes asked
//! at every distance, and what each memory update did — the words it added and dropped, and,
//! for each tracked entity, whether the memory picked it up, kept it or lost it.
//!
//! Contract: `presence(memories, e)[i]` describes the memory written after chunk `i` compared
//! with the one before it (the initial memory for chunk 0); an entity is "in" a memory when its
//! normalised words appear there in order (case, punctuation and spacing ignored), the same
//! normalisation the exact-match scorer uses, so "kept" here and a recall hit agree.

use super::report::{Record, records};
use crate::agent::{AgentParams, AgentProgress, Policy, Trace, prompts::INITIAL_MEMORY};
use crate::exercises::jsonl::Exercise;
use crate::exercises::scoring::normalise_words;
use anyhow::Result;
use similar::{ChangeTag, TextDiff};

/// One exercise read by one model.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub model: String,
    /// The objective-1 exercise whose document was read.
    pub exercise: Exercise,
    /// Its objective-2 probes (each asked at every distance up to the limit).
    pub probes: Vec<Exercise>,
    pub trace: Trace,
    /// The final answer (objective "masked") and every recall question asked.
    pub records: Vec<Record>,
}

impl Inspection {
    /// The entities worth following through the memories: each probe's answer, else the
    /// exercise's own answer.
    pub fn tracked(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.probes {
            if !out.iter().any(|e| e.eq_ignore_ascii_case(&p.answer)) {
                out.push(p.answer.clone());
            }
        }
        if out.is_empty() {
            out.push(self.exercise.answer.clone());
        }
        out
    }
}

/// Reads `exercise` with `policy` and asks its `probes`; `observe` follows the rollout and can
/// stop it (see [`records`]).
pub fn inspect(policy: &Policy, model: &str, exercise: &Exercise, probes: &[Exercise], params: &AgentParams, max_distance: usize, observe: &mut dyn FnMut(&AgentProgress) -> bool) -> Result<Inspection> {
    let (records, mut traces) = records(policy, std::slice::from_ref(exercise), probes, params, max_distance, observe)?;
    let trace = traces.pop().ok_or_else(|| anyhow::anyhow!("the agent returned no rollout for {}", exercise.id))?;
    Ok(Inspection { model: model.to_string(), exercise: exercise.clone(), probes: probes.to_vec(), trace, records })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Same,
    Added,
    Removed,
}

/// A run of words with the same fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub change: Change,
    pub text: String,
}

/// Word-level diff from `previous` to `current`, consecutive words of one kind merged.
pub fn memory_diff(previous: &str, current: &str) -> Vec<Piece> {
    let diff = TextDiff::from_words(previous, current);
    let mut out: Vec<Piece> = Vec::new();
    for c in diff.iter_all_changes() {
        let change = match c.tag() {
            ChangeTag::Equal => Change::Same,
            ChangeTag::Insert => Change::Added,
            ChangeTag::Delete => Change::Removed,
        };
        match out.last_mut() {
            Some(last) if last.change == change => last.text.push_str(c.value()),
            _ => out.push(Piece { change, text: c.value().to_string() }),
        }
    }
    out
}

/// What one memory update did to an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Not in the memory before, not now.
    Absent,
    /// Picked up by this update.
    Added,
    /// In the memory before and still there.
    Kept,
    /// In the memory before, dropped by this update.
    Lost,
}

/// One [`Presence`] per memory (see the module contract).
pub fn presence(memories: &[String], entity: &str) -> Vec<Presence> {
    let mut before = holds(INITIAL_MEMORY, entity);
    memories
        .iter()
        .map(|m| {
            let now = holds(m, entity);
            let p = match (before, now) {
                (false, false) => Presence::Absent,
                (false, true) => Presence::Added,
                (true, true) => Presence::Kept,
                (true, false) => Presence::Lost,
            };
            before = now;
            p
        })
        .collect()
}

/// Whether `text` contains the words of `entity` in order, normalised as the scorer does.
pub fn holds(text: &str, entity: &str) -> bool {
    let needle = normalise_words(entity);
    if needle.is_empty() {
        return false;
    }
    normalise_words(text).windows(needle.len()).any(|w| w == needle.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mems(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn presence_follows_an_entity_through_the_updates() {
        let m = mems(&["The ship left.", "Captain Anna Berg sailed the ship.", "anna  berg, captain.", "A storm came."]);
        assert_eq!(presence(&m, "Anna Berg"), [Presence::Absent, Presence::Added, Presence::Kept, Presence::Lost]);
    }

    #[test]
    fn holds_needs_whole_words_in_order() {
        assert!(holds("met (Anna Berg) at noon", "anna berg"));
        assert!(!holds("Annabel Bergen", "Anna Berg"));
        assert!(!holds("Berg, Anna", "Anna Berg"));
        assert!(!holds("anything", "  "));
        // Articles count as nothing, as in exact match: "The Silver Crossing" = "silver crossing".
        assert!(holds("kept: silver crossing, 1887", "The Silver Crossing"));
    }

    #[test]
    fn diff_marks_added_and_dropped_words_and_rebuilds_both_texts() {
        let (old, new) = ("Anna sailed north in May.", "Anna sailed south in May with Ole.");
        let d = memory_diff(old, new);
        let side = |keep: Change| d.iter().filter(|p| p.change == Change::Same || p.change == keep).map(|p| p.text.as_str()).collect::<String>();
        assert_eq!(side(Change::Removed), old);
        assert_eq!(side(Change::Added), new);
        assert!(d.iter().any(|p| p.change == Change::Removed && p.text.contains("north")));
        assert!(d.iter().any(|p| p.change == Change::Added && p.text.contains("Ole")));
        assert!(d.iter().all(|p| !(p.change == Change::Same && p.text.contains("north"))));
    }

    #[test]
    fn the_first_update_is_compared_with_the_initial_memory() {
        let m = mems(&["a", "b"]);
        assert_eq!(crate::agent::trace::input_memory(&m, 0), INITIAL_MEMORY);
        assert_eq!(crate::agent::trace::input_memory(&m, 1), "a");
    }
}
