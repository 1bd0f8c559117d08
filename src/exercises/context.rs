//! Contexts: what the agent reads for one group of exercises.
//!
//! A document is cut into units (paragraphs, or sentence runs of long paragraphs) that fit a
//! chunk. Consecutive units are taken into a context until the document's share of the
//! stage's budget is used; distractor units are inserted at random places between them until
//! the context fills the stage's chunk count; then the context is packed into chunks.
//!
//! Contract: every chunk holds at most `chunk_tokens - mask_slack_tokens` tokens before
//! masking (room for `[MASK]`/`[TARGET]`, which may cost more tokens than the words they
//! replace); in each pass over a document its units appear in order, each once;
//! distractors are whole paragraphs placed between paragraphs, and come only from documents of
//! the same split (or entity-free filler), never from the document itself.

use super::curriculum::{Curriculum, Stage};
use super::entities::{self, Entity, EntityTagger, Vocab};
use super::{synth, textmatch};
use crate::documents::chunk::{JOIN_TOKENS, TokenCounter, Unit, pack_counts, split_paragraph};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// One unit of a context.
#[derive(Clone, Debug)]
pub struct CtxUnit {
    pub unit: Unit,
    pub distractor: bool,
}

/// A context packed into chunks.
#[derive(Clone, Debug)]
pub struct Context {
    pub index: usize,
    pub level: u8,
    pub units: Vec<CtxUnit>,
    /// Unit ranges of each chunk, in order.
    pub chunks: Vec<Range<usize>>,
    /// All unit texts joined by `\n` (never inside a unit), and where each unit starts in it:
    /// one search over the context instead of one per unit.
    pub joined: String,
    /// `joined.to_ascii_lowercase()`, kept for [`textmatch::Haystack`] searches.
    pub joined_lower: Vec<u8>,
    pub unit_starts: Vec<usize>,
}

impl Context {
    pub fn distractors(&self) -> usize {
        self.units.iter().filter(|u| u.distractor).count()
    }

    fn new(index: usize, level: u8, units: Vec<CtxUnit>, chunks: Vec<Range<usize>>) -> Context {
        let mut joined = String::with_capacity(units.iter().map(|u| u.unit.text.len() + 1).sum());
        let mut unit_starts = Vec::with_capacity(units.len());
        for u in &units {
            unit_starts.push(joined.len());
            joined.push_str(&u.unit.text);
            joined.push('\n');
        }
        let joined_lower = joined.to_ascii_lowercase().into_bytes();
        Context { index, level, units, chunks, joined, joined_lower, unit_starts }
    }

    /// The whole context, ready for repeated entity searches.
    pub fn haystack(&self) -> textmatch::Haystack<'_> {
        textmatch::Haystack::with_lower(&self.joined, &self.joined_lower)
    }

    /// The unit holding byte `at` of `joined`, and the offset inside it.
    pub fn locate(&self, at: usize) -> (usize, usize) {
        let u = self.unit_starts.partition_point(|&s| s <= at) - 1;
        (u, at - self.unit_starts[u])
    }

    pub fn chunk_of_unit(&self, unit: usize) -> usize {
        self.chunks.iter().position(|r| r.contains(&unit)).unwrap_or(0)
    }

    /// Chunk texts, with each unit's text taken from `texts` (e.g. after masking).
    pub fn render_chunks(&self, texts: &[String]) -> Vec<String> {
        self.chunks
            .iter()
            .map(|r| crate::documents::chunk::render(r.clone().map(|i| (texts[i].as_str(), self.units[i].unit.starts_paragraph))))
            .collect()
    }
}

/// The entities of each unit of a context, found on first use: exercises need only the pivot's
/// and a few probed chunks', and tagging every unit was the largest cost of a build.
pub struct UnitEntities<'a> {
    ctx: &'a Context,
    tagger: &'a dyn EntityTagger,
    vocab: &'a Vocab,
    cache: Vec<Option<Vec<Entity>>>,
}

impl<'a> UnitEntities<'a> {
    pub fn new(ctx: &'a Context, tagger: &'a dyn EntityTagger, vocab: &'a Vocab) -> UnitEntities<'a> {
        UnitEntities { ctx, tagger, vocab, cache: vec![None; ctx.units.len()] }
    }

    pub fn get(&mut self, unit: usize) -> &[Entity] {
        let (ctx, tagger, vocab) = (self.ctx, self.tagger, self.vocab);
        self.cache[unit].get_or_insert_with(|| {
            let text = &ctx.units[unit].unit.text;
            entities::group(text, &tagger.tag(text, vocab))
        })
    }
}

/// Paragraphs of other documents (same split) to draw distractors from: a bounded reservoir
/// sample, so memory stays flat however large the corpus.
pub struct DistractorPool {
    units: Vec<Unit>,
    seen: u64,
    rng: ChaCha8Rng,
    capacity: usize,
}

impl DistractorPool {
    pub fn new(seed: u64, capacity: usize) -> DistractorPool {
        DistractorPool { units: Vec::new(), seen: 0, rng: ChaCha8Rng::seed_from_u64(seed), capacity }
    }

    /// Offers a finished document's units (reservoir sampling, algorithm R).
    pub fn offer(&mut self, units: &[Unit]) {
        for u in units {
            self.seen += 1;
            if self.units.len() < self.capacity {
                self.units.push(u.clone());
            } else {
                let j = self.rng.random_range(0..self.seen);
                if (j as usize) < self.capacity {
                    self.units[j as usize] = u.clone();
                }
            }
        }
    }
}

/// Cuts a document's paragraphs into units that fit one chunk after slack.
pub fn document_units<'a>(paragraphs: impl Iterator<Item = &'a str>, cfg: &Curriculum, counter: &dyn TokenCounter) -> Vec<Unit> {
    let max = unit_budget(cfg);
    let mut units = Vec::new();
    for p in paragraphs {
        split_paragraph(p, max, counter, &mut units);
    }
    units
}

fn unit_budget(cfg: &Curriculum) -> usize {
    cfg.chunk_tokens.saturating_sub(cfg.mask_slack_tokens).max(8)
}

/// Splits a document into contexts (see the module contract). `rng_for(index)` gives the RNG
/// of each context, so one context's choices never shift another's.
pub fn build_contexts(
    units: &[Unit],
    cfg: &Curriculum,
    pool: &DistractorPool,
    counter: &dyn TokenCounter,
    rng_for: impl FnMut(usize) -> ChaCha8Rng,
) -> Vec<Context> {
    let mut out = Vec::new();
    let _ = for_each_context(units, cfg, pool, counter, rng_for, |c| {
        out.push(c);
        Ok(())
    });
    out
}

/// [`build_contexts`] one context at a time, so a long document never holds all its contexts
/// in memory; stops at the first error of `f`. Returns the number of contexts.
pub fn for_each_context(
    units: &[Unit],
    cfg: &Curriculum,
    pool: &DistractorPool,
    counter: &dyn TokenCounter,
    mut rng_for: impl FnMut(usize) -> ChaCha8Rng,
    mut f: impl FnMut(Context) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let budget = unit_budget(cfg);
    let mut index = 0;
    let mut cursor = 0;
    while cursor < units.len() {
        let mut rng = rng_for(index);
        let stage: &Stage = &cfg.stages[rng.random_range(0..cfg.stages.len())];
        let n_chunks = rng.random_range(stage.min_chunks..=stage.max_chunks).max(1);
        let total = n_chunks * budget;
        let doc_share = total * (100 - stage.distractor_percent.min(95) as usize) / 100;
        // The document's share: consecutive units, at least one.
        let mut taken = 0;
        let mut used = 0;
        while cursor + taken < units.len() {
            let cost = units[cursor + taken].tokens + JOIN_TOKENS;
            if taken > 0 && used + cost > doc_share {
                break;
            }
            used += cost;
            taken += 1;
        }
        let mut seq: Vec<CtxUnit> = units[cursor..cursor + taken].iter().map(|u| CtxUnit { unit: u.clone(), distractor: false }).collect();
        // Distractors until the stage's chunk count is reached: random pool units, each at
        // most once per context (the pool is large; a context takes a few).
        let mut taken_from_pool: Vec<usize> = Vec::new();
        let mut next_from_pool = |rng: &mut ChaCha8Rng| -> Option<usize> {
            for _ in 0..8 {
                if pool.units.is_empty() || taken_from_pool.len() * 2 >= pool.units.len() {
                    return None;
                }
                let i = rng.random_range(0..pool.units.len());
                if !taken_from_pool.contains(&i) {
                    taken_from_pool.push(i);
                    return Some(i);
                }
            }
            None
        };
        let mut filler: Vec<Unit> = Vec::new();
        let mut distractor_tokens = 0;
        let mut guard = 0;
        while used + distractor_tokens < total && guard < 10_000 {
            guard += 1;
            let u = match next_from_pool(&mut rng) {
                Some(i) => pool.units[i].clone(),
                None => {
                    if filler.is_empty() {
                        split_paragraph(&synth::filler_paragraph(&mut rng), budget, counter, &mut filler);
                        filler.reverse();
                    }
                    match filler.pop() {
                        Some(u) => u,
                        None => break,
                    }
                }
            };
            distractor_tokens += u.tokens + JOIN_TOKENS;
            // Only between paragraphs: never between two sentence runs of one paragraph.
            let gaps: Vec<usize> = (0..=seq.len()).filter(|&g| g == seq.len() || seq[g].unit.starts_paragraph).collect();
            let at = gaps[rng.random_range(0..gaps.len())];
            // A distractor is a whole paragraph of its own.
            let unit = Unit { starts_paragraph: true, ..u };
            seq.insert(at, CtxUnit { unit, distractor: true });
        }
        // Packing may need more chunks than planned (seams, uneven units): drop distractors from
        // the end, then give document units back to the next context.
        loop {
            let chunks = pack_counts(seq.iter().map(|c| c.unit.tokens), budget);
            if chunks.len() <= n_chunks || seq.len() <= 1 {
                f(Context::new(index, stage.level, seq, chunks))?;
                break;
            }
            if let Some(pos) = seq.iter().rposition(|c| c.distractor) {
                seq.remove(pos);
            } else {
                seq.pop();
                taken -= 1;
            }
        }
        cursor += taken.max(1);
        index += 1;
    }
    Ok(index)
}
