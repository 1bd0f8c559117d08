//! Objective 1: end-to-end masked entity reconstruction.
//!
//! Pick a pivot unit of the document (never a distractor) and an entity in it; replace every
//! occurrence of that entity in the whole context, in every case variant and before a
//! possessive, with the literal `[MASK]`; after reading all chunks the agent must say what
//! `[MASK]` stands for; the answer is the entity's surface form in the pivot. With
//! [`MaskScope::AfterPivot`] the entity stays readable up to the pivot's chunk (where it is
//! seen first) and is masked only in later chunks, so the answer has to be carried in memory.
//!
//! Filters (the paper's, applied to the context the agent reads): 1–4 occurrences, at most
//! `MAX_WORDS` words, not a placeholder, not in the question. Masking uses the same matcher
//! that defines a leak (`textmatch`), so the answer is then absent from every chunk.

use super::context::{Context, UnitEntities};
use super::curriculum::MaskScope;
use super::entities::{Entity, EntityKind, same_folded};
use super::textmatch;
use rand::Rng;
use rand::seq::SliceRandom;

pub const MASK: &str = "[MASK]";
/// The fixed MemTrain problem statement (verbatim from the MemTrain code).
pub const QUESTION: &str = "Based on the entire article, which entity is represented by the [MASK] placeholder?";
/// Occurrences allowed in the context: the paper keeps entities seen fewer than 5 times.
pub const MAX_OCCURRENCES: usize = 4;

#[derive(Clone, Debug)]
pub struct MaskedExercise {
    pub answer: String,
    pub kind: EntityKind,
    pub pivot_unit: usize,
    pub pivot_chunk: usize,
    pub occurrences: usize,
    /// The context's unit texts after masking (recall probes are cut from these).
    pub masked_units: Vec<String>,
    pub chunks: Vec<String>,
}

/// True when the entity text is one of our placeholders (never an answer).
pub(crate) fn is_placeholder(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("MASK") || upper.contains("TARGET")
}

/// Up to `count` exercises on distinct entities, preferring distinct pivots. Like the paper,
/// a pivot unit is drawn first, then an entity in it.
pub fn make(ctx: &Context, entities: &mut UnitEntities<'_>, count: usize, scope: MaskScope, rng: &mut impl Rng) -> Vec<MaskedExercise> {
    let mut pivots: Vec<usize> = (0..ctx.units.len()).filter(|&u| !ctx.units[u].distractor).collect();
    pivots.shuffle(rng);
    let mut out: Vec<MaskedExercise> = Vec::new();
    // Pass 0 takes at most one entity per pivot; pass 1 lets a pivot serve again.
    for pass in 0..2 {
        for &u in &pivots {
            if out.len() >= count {
                return out;
            }
            if pass == 0 && out.iter().any(|x| x.pivot_unit == u) {
                continue;
            }
            let found = entities.get(u);
            let mut order: Vec<usize> = (0..found.len()).collect();
            order.shuffle(rng);
            for e in order {
                let entity = &found[e];
                // Seen more often than allowed in the pivot alone: no need to scan the context.
                if entity.mentions > MAX_OCCURRENCES || out.iter().any(|x| same_folded(&x.answer, &entity.text)) {
                    continue;
                }
                if let Some(x) = mask(ctx, u, entity, scope) {
                    out.push(x);
                    break;
                }
            }
        }
    }
    out
}

fn mask(ctx: &Context, pivot_unit: usize, entity: &Entity, scope: MaskScope) -> Option<MaskedExercise> {
    if is_placeholder(&entity.text) || entity.text.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
        return None;
    }
    // One search over the whole context, stopped as soon as the entity is too frequent.
    let found = ctx.haystack().find_at_most(&entity.text, MAX_OCCURRENCES)?;
    let total = found.len();
    let mut hits: Vec<Vec<std::ops::Range<usize>>> = vec![Vec::new(); ctx.units.len()];
    for r in found {
        let (u, at) = ctx.locate(r.start);
        hits[u].push(at..at + r.len());
    }
    if total == 0 || hits[pivot_unit].is_empty() {
        return None;
    }
    let pivot_chunk = ctx.chunk_of_unit(pivot_unit);
    if scope == MaskScope::AfterPivot {
        // Read first in the pivot's chunk, masked wherever it comes back later.
        let chunk_of: Vec<usize> = (0..hits.len()).map(|u| ctx.chunk_of_unit(u)).collect();
        if hits.iter().zip(&chunk_of).any(|(h, &c)| !h.is_empty() && c < pivot_chunk) {
            return None;
        }
        for (h, &c) in hits.iter_mut().zip(&chunk_of) {
            if c <= pivot_chunk {
                h.clear();
            }
        }
    }
    let masked_count: usize = hits.iter().map(Vec::len).sum();
    if masked_count == 0 {
        return None;
    }
    let masked_units: Vec<String> = ctx.units.iter().zip(&hits).map(|(cu, h)| textmatch::replace_ranges(&cu.unit.text, h, MASK)).collect();
    let chunks = ctx.render_chunks(&masked_units);
    // No leak by construction: every match (after the pivot's chunk, for `AfterPivot`) was
    // replaced, and `[MASK]` starts and ends with a non-alphanumeric character, so no new
    // word-bounded match can appear next to it (a match right after a replaced one would have
    // needed a non-alphanumeric character between them already). Checked in debug builds here
    // and independently by tests/exercises_dataset.rs.
    let hidden_from = if scope == MaskScope::AfterPivot { pivot_chunk + 1 } else { 0 };
    debug_assert!(chunks[hidden_from..].iter().all(|c| !textmatch::contains(c, &entity.text)));
    if textmatch::contains(QUESTION, &entity.text) {
        return None;
    }
    Some(MaskedExercise {
        answer: entity.text.clone(),
        kind: entity.kind,
        pivot_unit,
        pivot_chunk,
        occurrences: masked_count,
        masked_units,
        chunks,
    })
}
