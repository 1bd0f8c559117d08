//! Per-layer key/value cache for a batch of sequences that share one column layout:
//! column `c` of every sequence was written by the same forward call, so one length serves all.

use burn::prelude::*;

#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    /// `[batch, kv_heads, len, head_dim]`, after RoPE.
    pub keys: Option<Tensor<4>>,
    pub values: Option<Tensor<4>>,
}

impl LayerCache {
    /// Appends this step's keys/values and returns the whole history.
    pub fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let k = match self.keys.take() {
            Some(old) => Tensor::cat(vec![old, k], 2),
            None => k,
        };
        let v = match self.values.take() {
            Some(old) => Tensor::cat(vec![old, v], 2),
            None => v,
        };
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        (k, v)
    }

    /// Keeps only the sequences at `rows` (used when finished sequences leave the batch).
    pub fn select_rows(&mut self, rows: &Tensor<1, Int>) {
        self.keys = self.keys.take().map(|k| k.select(0, rows.clone()));
        self.values = self.values.take().map(|v| v.select(0, rows.clone()));
    }
}

/// The cache of a whole model plus the left padding of each sequence.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Columns already written (same for every sequence in the batch).
    pub len: usize,
    /// Left-padding columns of each sequence: they are never attended to.
    pub pad: Vec<usize>,
}

impl KvCache {
    pub fn new(num_layers: usize, pad: Vec<usize>) -> Self {
        KvCache { layers: vec![LayerCache::default(); num_layers], len: 0, pad }
    }

    pub fn batch(&self) -> usize {
        self.pad.len()
    }

    /// Drops every sequence not in `keep` (indices into the current batch).
    pub fn retain(&mut self, keep: &[usize], device: &Device) {
        let idx: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(idx, [keep.len()]), device);
        for layer in &mut self.layers {
            layer.select_rows(&rows);
        }
        self.pad = keep.iter().map(|&i| self.pad[i]).collect();
    }
}
