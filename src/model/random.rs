//! Seeded random weights for any config: the "random-weight twin" of a real model for
//! benchmarks where the real file cannot travel, and a from-scratch start for tiny models.

use super::llama::WeightSource;
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct RandomWeights {
    pub config: super::ModelConfig,
    rng: ChaCha8Rng,
}

impl RandomWeights {
    pub fn new(config: super::ModelConfig, seed: u64) -> Self {
        RandomWeights { config, rng: ChaCha8Rng::seed_from_u64(seed) }
    }
}

impl WeightSource for RandomWeights {
    /// Norm weights are 1, biases 0, matrices uniform with std 0.02 (HF's initializer range).
    fn take(&mut self, name: &str) -> Result<Option<(Vec<f32>, Vec<usize>)>> {
        let c = &self.config;
        let (d, f, hd) = (c.hidden_size, c.intermediate_size, c.head_dim);
        let shape: Vec<usize> = if name.ends_with("norm.weight") {
            if name.contains("q_norm") || name.contains("k_norm") { vec![hd] } else { vec![d] }
        } else if name.ends_with(".bias") {
            let out = if name.contains("q_proj") { c.num_heads * hd } else { c.num_kv_heads * hd };
            vec![out]
        } else if name.contains("q_proj") {
            vec![c.num_heads * hd, d]
        } else if name.contains("k_proj") || name.contains("v_proj") {
            vec![c.num_kv_heads * hd, d]
        } else if name.contains("o_proj") {
            vec![d, c.num_heads * hd]
        } else if name.contains("gate_proj") || name.contains("up_proj") {
            vec![f, d]
        } else if name.contains("down_proj") {
            vec![d, f]
        } else if name.contains("embed_tokens") || name.starts_with("lm_head") {
            vec![c.vocab_size, d]
        } else {
            return Ok(None);
        };
        let n: usize = shape.iter().product();
        let data = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let a = 0.02 * 3f32.sqrt();
            (0..n).map(|_| self.rng.random_range(-a..a)).collect()
        };
        Ok(Some((data, shape)))
    }
}
