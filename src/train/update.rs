//! One optimizer step over more conversations than fit one forward pass: the batch is cut into
//! micro-batches, each micro-batch's loss (already weighted by its share of the batch) is
//! back-propagated and its gradients accumulated, then the optimizer steps once.
//!
//! Contract: the accumulated gradient equals the gradient of the whole-batch loss (up to float
//! summation order), so `micro` is a memory knob, not a hyper-parameter. A non-finite
//! micro-batch loss abandons the step before any weight changes and hands the model back.

use super::loss_scale::{LossScale, MAX_RETRIES, unscale};
use crate::model::Llama;
use crate::model::recompute::LayerTape;
use anyhow::Result;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use std::time::Instant;

#[derive(Clone, Copy, Debug, Default)]
pub struct UpdateTimes {
    pub forward_backward: f32,
    pub optimizer: f32,
    /// Sum of the (weighted) micro-batch losses: the whole-batch loss before the step.
    pub loss: f32,
}

pub enum Update {
    Applied(Llama, UpdateTimes),
    /// The loss was NaN or infinite: nothing was changed; the reason says which.
    Skipped(Llama, String),
}

/// A micro-batch's loss, with what its backward needs when the layers are recomputed
/// ([`crate::model::recompute`]).
pub struct Loss {
    pub value: Tensor<1>,
    pub tape: Option<LayerTape>,
}

impl Loss {
    /// The loss times `share` (its weight in the whole batch); gradients scale with it.
    pub fn scaled(self, share: f32) -> Self {
        Loss { value: self.value.mul_scalar(share), tape: self.tape }
    }

    /// Adds the parameter gradients of the loss to `acc`: one backward, then the recomputed
    /// layers' if any, layer by layer.
    pub fn accumulate_gradients(self, model: &Llama, acc: &mut GradientsAccumulator<Llama>) {
        let grads = self.value.backward();
        match self.tape {
            Some(tape) => tape.backward(model, grads, acc),
            None => acc.accumulate(model, GradientsParams::from_grads(grads, model)),
        }
    }

    /// The parameter gradients of the loss alone.
    pub fn gradients(self, model: &Llama) -> GradientsParams {
        let mut acc = GradientsAccumulator::new();
        self.accumulate_gradients(model, &mut acc);
        acc.grads()
    }
}

/// Reads a scalar tensor back to the host.
pub fn scalar(t: &Tensor<1>) -> Result<f32> {
    let v = t.clone().detach().into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("reading a loss: {e:?}"))?;
    Ok(v.first().copied().unwrap_or(f32::NAN))
}

/// Accumulates the gradients of `loss_of(model, part)` over `items` in parts of `micro`, then
/// applies one optimizer step at `lr`. With `scale` on (mixed precision), the losses are scaled
/// before the backward and the gradients unscaled before the step; when they overflow, the step
/// is run again at half the scale ([`super::loss_scale`]), so `loss_of` may see the same parts
/// again.
pub fn accumulated_step<T>(model: Llama, optim: &mut ModuleOptimizer, scale: &mut LossScale, lr: f64, items: &[T], micro: usize, loss_of: impl FnMut(&Llama, &[T]) -> Result<Loss>) -> Result<Update> {
    let parts: Vec<&[T]> = items.chunks(micro.max(1)).collect();
    accumulated_step_over(model, optim, scale, lr, &parts, loss_of)
}

/// [`accumulated_step`] over micro-batches the caller cut (`parts`, e.g.
/// [`super::grpo::micro_batches`]).
pub fn accumulated_step_over<T>(model: Llama, optim: &mut ModuleOptimizer, scale: &mut LossScale, lr: f64, parts: &[&[T]], mut loss_of: impl FnMut(&Llama, &[T]) -> Result<Loss>) -> Result<Update> {
    let start = Instant::now();
    let mut retries = 0;
    let (grads, total) = loop {
        let factor = scale.factor();
        let mut acc = GradientsAccumulator::<Llama>::new();
        let mut total = 0.0;
        for &part in parts {
            let loss = loss_of(&model, part)?;
            let value = scalar(&loss.value)?;
            if !value.is_finite() {
                return Ok(Update::Skipped(model, format!("loss is {value}")));
            }
            total += value;
            let loss = if scale.is_on() { loss.scaled(factor) } else { loss };
            loss.accumulate_gradients(&model, &mut acc);
        }
        if !scale.is_on() {
            break (acc.grads(), total);
        }
        match unscale(acc.grads(), &model, factor) {
            Some(grads) => break (grads, total),
            None if retries < MAX_RETRIES && factor > 1.0 => {
                scale.back_off();
                retries += 1;
            }
            None => return Ok(Update::Skipped(model, format!("f16 gradients overflow even at loss scale {factor}"))),
        }
    };
    scale.stepped();
    let forward_backward = start.elapsed().as_secs_f32();
    let start = Instant::now();
    let model = optim.step(lr, model, grads);
    Ok(Update::Applied(model, UpdateTimes { forward_backward, optimizer: start.elapsed().as_secs_f32(), loss: total }))
}
