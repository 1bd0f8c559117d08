//! Rotary position embeddings in Hugging Face's `rotate_half` convention: the first and second
//! halves of each head are the two coordinates of a rotation (not adjacent pairs, as in Burn's
//! `RotaryEncoding` or llama.cpp's GGUF layout, which the GGUF reader undoes).

use super::config::{ModelConfig, RopeScaling};
use burn::prelude::*;

/// Inverse frequencies per rotation pair, with the config's scaling applied (HF semantics).
pub fn inverse_frequencies(cfg: &ModelConfig) -> Vec<f64> {
    let half = cfg.head_dim / 2;
    let base: Vec<f64> =
        (0..half).map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / cfg.head_dim as f64)).collect();
    match &cfg.rope_scaling {
        None => base,
        Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
        Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position }) => {
            let low_wavelen = original_max_position / low_freq_factor;
            let high_wavelen = original_max_position / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

/// cos and sin tables `[batch, 1, seq, head_dim]` for the given positions (`positions[b][s]`).
/// Computed on the host in f64 then cast, as HF computes them in f32 from exact positions.
pub fn cos_sin(inv_freq: &[f64], positions: &[Vec<usize>], device: &Device) -> (Tensor<4>, Tensor<4>) {
    let b = positions.len();
    let s = positions.first().map_or(0, |p| p.len());
    let half = inv_freq.len();
    let hd = 2 * half;
    let mut cos = Vec::with_capacity(b * s * hd);
    let mut sin = Vec::with_capacity(b * s * hd);
    for row in positions {
        for &p in row {
            for _ in 0..2 {
                for &f in inv_freq {
                    // HF computes `position * inv_freq` in f32; matching that keeps logits within 1e-5.
                    let angle = (p as f32) * (f as f32);
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
    }
    let shape = [b, 1, s, hd];
    (
        Tensor::from_data(TensorData::new(cos, shape), device),
        Tensor::from_data(TensorData::new(sin, shape), device),
    )
}

/// Applies the rotation to `x: [batch, heads, seq, head_dim]`.
pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let hd = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, hd / 2);
    let x2 = x.clone().narrow(3, hd / 2, hd / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
