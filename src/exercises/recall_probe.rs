//! Objective 2: intermediate memory recall probes.
//!
//! At training time, the memory an agent holds after reading chunks 0..k is asked to recover
//! an entity of a chunk l it has already read (l < k), shown again with that entity replaced by
//! `[TARGET]`. The memory comes from rollouts, so the dataset stores candidate probes: for each
//! masked exercise, chunks l in 0..n-1 (the last chunk precedes no later memory), each probe
//! with an entity other than the `[MASK]` answer and sharing no word with it, replaced in every
//! occurrence within that chunk (so the answer is absent from the probe text). The MemTrain
//! code can also draw the chunk the memory has not read yet, and never chunk 0; we follow the
//! paper's l < k, and the trainer draws k > probe_chunk.

use super::context::UnitEntities;
use super::entities::{Entity, EntityKind, same_folded};
use super::masked_entity::{MaskedExercise, is_placeholder};
use super::textmatch;
use rand::Rng;
use rand::seq::SliceRandom;

pub const TARGET: &str = "[TARGET]";
pub const QUESTION: &str =
    "Based on your memory of the earlier sections, which entity is represented by the [TARGET] placeholder in this section?";
const MAX_OCCURRENCES: usize = 4;

#[derive(Clone, Debug)]
pub struct Probe {
    pub chunk: usize,
    pub answer: String,
    pub kind: EntityKind,
    pub occurrences: usize,
    pub text: String,
}

/// The words of `s`, lower-case comparison ready (no allocation).
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// Up to `count` probes from distinct earlier chunks of `ex`; `chunk_units[c]` are the units
/// of chunk `c`.
pub fn make(
    ex: &MaskedExercise,
    entities: &mut UnitEntities<'_>,
    chunk_units: &[std::ops::Range<usize>],
    count: usize,
    rng: &mut impl Rng,
) -> Vec<Probe> {
    let n = ex.chunks.len();
    if n < 2 || count == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n - 1).collect();
    order.shuffle(rng);
    let mut out = Vec::new();
    for l in order {
        if out.len() >= count {
            break;
        }
        let text = &ex.chunks[l];
        let hay = textmatch::Haystack::new(text);
        // Units of the chunk in random order, tagged one at a time until a probe is found
        // (tagging is the expensive part; most chunks yield a probe from their first unit).
        let mut units: Vec<usize> = chunk_units[l].clone().collect();
        units.shuffle(rng);
        'units: for u in units {
            let mut cands: Vec<&Entity> = entities
                .get(u)
                .iter()
                .filter(|e| {
                    let unrelated = !words(&e.text).any(|w| words(&ex.answer).any(|m| same_folded(m, w)));
                    unrelated && !is_placeholder(&e.text) && e.text.chars().filter(|c| c.is_alphanumeric()).count() >= 2
                })
                .collect();
            cands.shuffle(rng);
            for e in cands {
                // Count before allocating the probe text.
                let Some(hits) = hay.find_at_most(&e.text, MAX_OCCURRENCES) else { continue };
                let k = hits.len();
                if k == 0 {
                    continue;
                }
                let probe_text = textmatch::replace_ranges(text, &hits, TARGET);
                // Neither answer can be in the probe: see the argument in masked_entity.rs.
                debug_assert!(!textmatch::contains(&probe_text, &e.text) && !textmatch::contains(&probe_text, &ex.answer));
                out.push(Probe { chunk: l, answer: e.text.clone(), kind: e.kind, occurrences: k, text: probe_text });
                break 'units;
            }
        }
    }
    out.sort_by_key(|p| p.chunk);
    out
}
