//! The distinct prompts' common leading tokens, prefilled once for all of them.
//!
//! Why: a generation call's prompts are chat turns built from one template, so they share the
//! chat template's system turn, the instruction and often the problem: in a GRPO step of the
//! MemTrain agent on SmolLM2-135M, 80–138 leading tokens of 168–329-token prompts (30–53 %).
//! The CPU prefill runs near the machine's peak arithmetic rate and was ~60 % of generation
//! (README, Performance), so the only way to make it faster is to compute less.
//!
//! How: the prefix goes through the model once as a one-sequence call; its keys and values are
//! copied into every row of the batch's cache, each at its row's first prompt column (rows are
//! left-padded to the longest prompt, and a key's rotation depends on its position, not its
//! column). The first step then feeds only the columns after the prefix. A row padded by `pad`
//! columns has the prefix's last `min(pad, prefix)` positions among those columns: it recomputes
//! them, as the padding cost before, so the saving is the prefix's columns of every row.

use crate::kernels::cached_attention::HostKv;
use crate::model::kv_cache::KvCache;
use crate::model::packed::PackedLlama;
use crate::model::stem::StemTap;
use crate::model::{Llama, StepLayout};
use crate::model::weights_out::host;
use anyhow::{Context, Result};
use burn::prelude::*;

/// Below this many shared tokens the second call is not worth it.
const MIN_COLUMNS: usize = 16;

/// What [`prefill`] wrote.
pub(super) struct SharedPrefix {
    /// The prefix's length: every row's cache holds its prefix positions up to this column (from
    /// its first prompt column), and the first step starts here.
    pub columns: usize,
    /// With a stem tap, the prefix's stream entering the tapped layer `[columns, hidden]`.
    pub stem: Option<Vec<f32>>,
}

/// How many leading tokens `prompts` (distinct, left-padded to the longest) share that are worth
/// prefilling once: 0 for fewer than two prompts or a short prefix. At most the longest prompt
/// less one, so that every row feeds its last token to the first step.
pub fn columns(prompts: &[&[u32]]) -> usize {
    let Some((first, rest)) = prompts.split_first() else { return 0 };
    if rest.is_empty() {
        return 0;
    }
    let common = rest.iter().map(|p| first.iter().zip(*p).take_while(|(a, b)| a == b).count()).min().unwrap_or(0);
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let columns = common.min(longest.saturating_sub(1));
    if columns >= MIN_COLUMNS { columns } else { 0 }
}

/// Runs `prefix` through `model` alone and writes its keys and values into every row of the
/// empty `cache` (rows left-padded to `width` columns by `cache.pad`), leaving `cache.len` at the
/// prefix's length. `None`, with `cache` untouched but for its capacity, where the cache is not
/// kept on the host (our CPU ops off, or a model not in f32): the caller prefills whole prompts.
/// Both are checked before the prefix runs; the cache's form after it is checked too.
pub(super) fn prefill(model: &Llama, packed: Option<&PackedLlama>, inv_freq: &[f64], prefix: &[u32], cache: &mut KvCache, width: usize) -> Result<Option<SharedPrefix>> {
    assert_eq!(cache.len, 0, "the shared prefix goes into an empty cache");
    let weights = model.embed_tokens.weight.val();
    // Our cached-attention op (which keeps the cache on the host) runs only then.
    if !crate::kernels::flex_glue::enabled() || weights.dtype() != burn::tensor::DType::F32 {
        return Ok(None);
    }
    let device = weights.device();
    let columns = prefix.len();
    let mut alone = KvCache::new(model.layers.len(), vec![0]);
    alone.stem_tap = cache.stem_tap.as_ref().map(|t| StemTap { layer: t.layer, taken: None });
    alone.reserve(columns);
    let layout = StepLayout::with_columns(inv_freq, &[0], 0, columns, alone.capacity, &device);
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(prefix.iter().map(|&t| t as i64).collect(), [1, columns]), &device);
    model.forward_hidden_packed(tokens, &layout, Some(&mut alone), packed);
    cache.reserve(width);
    let rows: Option<Vec<HostKv>> = alone.layers.iter().map(|l| HostKv::shared_prefix(&l.host, &cache.pad, columns, cache.capacity)).collect();
    let Some(rows) = rows else { return Ok(None) };
    for (layer, host) in cache.layers.iter_mut().zip(rows) {
        layer.host = host;
    }
    cache.len = columns;
    let stem = alone.stem_tap.and_then(|t| t.taken).map(|s| host(s).context("the shared prefix's tapped stream")).transpose()?;
    Ok(Some(SharedPrefix { columns, stem }))
}
