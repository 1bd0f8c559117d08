//! Collects each sequence's tapped stream step by step ([`super::generate_with`] with a
//! `stem_layer`; see [`crate::model::stem`]).

use super::Generation;
use super::shared_prefix::SharedPrefix;
use crate::model::stem::StemStates;
use crate::model::weights_out::host;
use anyhow::{Context, Result};
use burn::prelude::*;
use std::sync::Arc;

pub(super) struct StemRecorder {
    layer: Option<usize>,
    /// Per sequence, `[fed positions, hidden]` so far.
    values: Vec<Vec<f32>>,
    /// Before the first step: each sequence's row of the prefill (identical prompts share one)
    /// and prompt length; afterwards empty.
    prefill: Vec<(usize, usize)>,
    /// The prompts' common prefix prefilled apart: its column count and stream `[columns,
    /// hidden]` (empty when there is none or no tap).
    shared: (usize, Vec<f32>),
}

impl StemRecorder {
    /// Each sequence's buffer grows by doubling, so it may hold up to about twice its values.
    /// Reserved once for the prompt and `max_new_tokens` instead, a GRPO step's host peak was
    /// 130 MB lower but its generation took 60.2 / 61.3 s against 50.6–55.1 s (one run each, not
    /// understood; README, Performance).
    pub(super) fn new(layer: Option<usize>, prompts: &[Vec<u32>], copies: Option<&[usize]>, shared: Option<SharedPrefix>) -> Self {
        let prefill = prompts.iter().enumerate().map(|(i, p)| (copies.map_or(i, |c| c[i]), p.len())).collect();
        let shared = shared.map_or((0, vec![]), |s| (s.columns, s.stem.unwrap_or_default()));
        StemRecorder { layer, values: vec![vec![]; if layer.is_some() { prompts.len() } else { 0 }], prefill, shared }
    }

    /// Appends one step's stream `[rows, q_len, hidden]`: the prefill's (left-padded distinct
    /// prompts, from the column after the shared prefix) or a decode step's (one token per batch
    /// row; finished rows kept for their shape are skipped).
    pub(super) fn keep(&mut self, taken: Tensor<3>, batch: &[Option<usize>]) -> Result<()> {
        let [_, q, d] = taken.dims();
        let host = host(taken).context("the tapped stream")?;
        if !self.prefill.is_empty() {
            let (columns, prefix) = &self.shared;
            for ((row, len), values) in std::mem::take(&mut self.prefill).into_iter().zip(&mut self.values) {
                // The row's prompt starts at column `pad`: its positions before column `columns`
                // come from the shared prefix, the others from this step (which recomputed the
                // prefix's last `min(pad, columns)` positions for it).
                let pad = columns + q - len;
                values.extend_from_slice(&prefix[..columns.saturating_sub(pad) * d]);
                values.extend_from_slice(&host[(row * q + pad.saturating_sub(*columns)) * d..(row + 1) * q * d]);
            }
            return Ok(());
        }
        for (row, slot) in batch.iter().enumerate() {
            if let Some(seq) = *slot {
                self.values[seq].extend_from_slice(&host[row * q * d..(row + 1) * q * d]);
            }
        }
        Ok(())
    }

    pub(super) fn attach(self, out: &mut [Generation]) {
        let Some(layer) = self.layer else { return };
        for (g, values) in out.iter_mut().zip(self.values) {
            g.stem = Some(Arc::new(StemStates { layer, values }));
        }
    }
}
