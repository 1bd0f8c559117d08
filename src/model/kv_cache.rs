//! Per-layer key/value cache for a batch of sequences that share one column layout:
//! column `c` of every sequence was written by the same forward call, so one length serves all.
//!
//! The buffers are preallocated to a bucketed capacity (a power of two) and written in place,
//! and attention always reads the whole buffer with the unwritten columns masked. Why: with a
//! buffer that grows by one column per decoded token, every step copies the whole history and
//! every step has new tensor shapes, so wgpu compiles (and autotunes) new kernels per token.
//! With buckets, shapes change only when the length crosses a power of two.
//!
//! On the CPU our attention op keeps the same buffers as plain host vectors instead
//! ([`LayerCache::host`]), writes the new columns in place and reads only the written ones.

use super::shared_prompts::PromptKv;
use super::stem::StemTap;
use crate::kernels::cached_attention::HostKv;
use burn::prelude::*;

/// Smallest capacity a cache is given: short prompts share one set of kernel shapes.
const MIN_CAPACITY: usize = 64;

/// The capacity that holds `columns`: the next power of two, at least [`MIN_CAPACITY`].
pub fn bucket(columns: usize) -> usize {
    columns.next_power_of_two().max(MIN_CAPACITY)
}

#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    /// `[batch, kv_heads, capacity, head_dim]`, after RoPE; columns past the written length are
    /// zeros or stale, and masked by the caller's attention bias.
    pub keys: Option<Tensor<4>>,
    pub values: Option<Tensor<4>>,
    /// The same buffers on the host, for CPU inference through our attention op
    /// ([`crate::kernels::cached_attention`]); a layer uses one form or the other.
    pub host: HostKv,
    /// Instead of a cache: a training forward's shared prompts
    /// ([`super::shared_prompts`]), recorded or read.
    pub prompts: Option<PromptKv>,
}

/// `buffer` grown (zero-filled) to `capacity` columns of `[b, h, _, d]`, or made.
fn grown(buffer: Option<Tensor<4>>, [b, h, d]: [usize; 3], capacity: usize, device: &Device) -> Tensor<4> {
    let zeros = |cols: usize| Tensor::<4>::zeros([b, h, cols, d], device);
    match buffer {
        None => zeros(capacity),
        Some(old) if old.dims()[2] < capacity => {
            let have = old.dims()[2];
            Tensor::cat(vec![old, zeros(capacity - have)], 2)
        }
        Some(old) => old,
    }
}

impl LayerCache {
    /// Writes this step's keys/values at columns `start..` and returns the whole buffers
    /// (`capacity` columns).
    pub fn write(&mut self, k: Tensor<4>, v: Tensor<4>, start: usize, capacity: usize) -> (Tensor<4>, Tensor<4>) {
        let [b, h, q, d] = k.dims();
        let (keys, values) = self.take_buffers([b, h, d], capacity, &k.device());
        let columns = [0..b, 0..h, start..start + q, 0..d];
        let (keys, values) = (keys.slice_assign(columns.clone(), k), values.slice_assign(columns, v));
        self.put(keys.clone(), values.clone());
        (keys, values)
    }

    /// Takes the key and value buffers out, grown to `capacity` columns of `[batch, kv_heads,
    /// _, head_dim]`, for a caller that writes them itself (our wgpu `qkv_to_cache` kernel,
    /// in place when it holds the only reference) and hands them back with [`Self::put`].
    pub fn take_buffers(&mut self, shape: [usize; 3], capacity: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        assert!(self.host.is_empty(), "this layer's cache is kept on the host by our CPU attention op; Burn's ops cannot extend it");
        (grown(self.keys.take(), shape, capacity, device), grown(self.values.take(), shape, capacity, device))
    }

    /// Stores the buffers written by the caller of [`Self::take_buffers`].
    pub fn put(&mut self, keys: Tensor<4>, values: Tensor<4>) {
        self.keys = Some(keys);
        self.values = Some(values);
    }

    /// Keeps only the sequences at `rows` (used when finished sequences leave the batch).
    pub fn select_rows(&mut self, rows: &Tensor<1, Int>, keep: &[usize]) {
        self.keys = self.keys.take().map(|k| k.select(0, rows.clone()));
        self.values = self.values.take().map(|v| v.select(0, rows.clone()));
        self.host.retain(keep);
    }
}

/// The cache of a whole model plus the left padding of each sequence.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Columns already written (same for every sequence in the batch).
    pub len: usize,
    /// Columns the buffers hold (see [`bucket`]); attention reads all of them.
    pub capacity: usize,
    /// Left-padding columns of each sequence: they are never attended to.
    pub pad: Vec<usize>,
    /// Where a call keeps the residual stream entering one layer ([`super::stem`]): generation
    /// hands the frozen layers' output to the update.
    pub stem_tap: Option<StemTap>,
}

impl KvCache {
    pub fn new(num_layers: usize, pad: Vec<usize>) -> Self {
        KvCache { layers: vec![LayerCache::default(); num_layers], len: 0, capacity: 0, pad, stem_tap: None }
    }

    pub fn batch(&self) -> usize {
        self.pad.len()
    }

    /// Makes room for `new_columns` more columns (the layers grow their buffers on next write).
    pub fn reserve(&mut self, new_columns: usize) {
        let needed = self.len + new_columns;
        if needed > self.capacity {
            self.capacity = bucket(needed);
        }
    }

    /// Drops every sequence not in `keep` (indices into the current batch).
    pub fn retain(&mut self, keep: &[usize], device: &Device) {
        let idx: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(idx, [keep.len()]), device);
        for layer in &mut self.layers {
            layer.select_rows(&rows, keep);
        }
        self.pad = keep.iter().map(|&i| self.pad[i]).collect();
    }
}
