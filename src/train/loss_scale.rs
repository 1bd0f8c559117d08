//! Dynamic loss scaling for mixed-precision training ([`crate::model::precision`]).
//!
//! Why: in f16 the matmuls' backward carries gradients of ~1e-6 (a token's share of a mean
//! loss, times the chain rule), below f16's normal range (6e-5), where they lose their digits or
//! become 0. The loss is multiplied by a factor before the backward, so the f16 gradients sit
//! in range, and the f32 parameter gradients divided by it before the optimizer step.
//! Too large a factor overflows f16 (inf); then the step is run again at half the factor, so no
//! step is lost and the weights never see an inf. After [`GROWTH_INTERVAL`] clean steps the
//! factor doubles again (PyTorch's `GradScaler` does the same, but skips the overflowing step).

use crate::model::Llama;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// The factor a run starts at: 2¹², with room below f16's largest value (65,504) for gradients
/// up to ~16 before scaling.
pub const INITIAL: f32 = 4096.0;
/// Clean steps before the factor doubles.
pub const GROWTH_INTERVAL: usize = 50;
/// The factor never grows past this.
const MAX: f32 = 65536.0;
/// Halvings tried on one step before it is given up as non-finite.
pub const MAX_RETRIES: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScale {
    /// `None` (the default): f32 training, no scaling and no check.
    factor: Option<f32>,
    clean_steps: usize,
}

impl LossScale {
    /// No scaling (f32 training).
    pub fn off() -> Self {
        LossScale { factor: None, clean_steps: 0 }
    }

    /// What a run in `precision` starts with: dynamic for mixed f16, off for f32.
    pub fn for_precision(precision: crate::model::precision::Precision) -> Self {
        match precision {
            crate::model::precision::Precision::MixedF16 => Self::dynamic(),
            crate::model::precision::Precision::F32 => Self::off(),
        }
    }

    /// Dynamic scaling from [`INITIAL`].
    pub fn dynamic() -> Self {
        Self::starting_at(INITIAL)
    }

    /// Dynamic scaling from `factor` (tests start it where it must overflow).
    pub fn starting_at(factor: f32) -> Self {
        LossScale { factor: Some(factor), clean_steps: 0 }
    }

    /// The factor losses are multiplied by (1 when off).
    pub fn factor(&self) -> f32 {
        self.factor.unwrap_or(1.0)
    }

    pub fn is_on(&self) -> bool {
        self.factor.is_some()
    }

    /// After an overflow: halves the factor (not below 1).
    pub fn back_off(&mut self) {
        if let Some(f) = &mut self.factor {
            *f = (*f / 2.0).max(1.0);
        }
        self.clean_steps = 0;
    }

    /// After a step whose gradients were finite: doubles the factor every [`GROWTH_INTERVAL`].
    pub fn stepped(&mut self) {
        let Some(f) = &mut self.factor else { return };
        self.clean_steps += 1;
        if self.clean_steps >= GROWTH_INTERVAL {
            *f = (*f * 2.0).min(MAX);
            self.clean_steps = 0;
        }
    }
}

/// `grads` (of `model`'s parameters) divided by `factor`, or `None` when any of them is inf or
/// NaN. One read from the device: the sum of every gradient, which is finite only when all are.
pub fn unscale(mut grads: GradientsParams, model: &Llama, factor: f32) -> Option<GradientsParams> {
    let mut visitor = Unscale { grads: &mut grads, inverse: 1.0 / factor, total: None };
    model.visit(&mut visitor);
    let total = match visitor.total {
        Some(t) => t.into_data().convert::<f32>().try_to_vec::<f32>().ok()?.first().copied().unwrap_or(f32::NAN),
        None => 0.0,
    };
    total.is_finite().then_some(grads)
}

struct Unscale<'a> {
    grads: &'a mut GradientsParams,
    inverse: f32,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for Unscale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.remove::<D>(param.id) else { return };
        let sum = g.clone().sum();
        self.total = Some(match self.total.take() {
            Some(t) => t + sum,
            None => sum,
        });
        self.grads.register(param.id, g.mul_scalar(self.inverse));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_halves_on_overflow_and_doubles_after_clean_steps() {
        let mut s = LossScale::dynamic();
        s.back_off();
        assert_eq!(s.factor(), INITIAL / 2.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.stepped();
        }
        assert_eq!(s.factor(), INITIAL / 2.0);
        s.stepped();
        assert_eq!(s.factor(), INITIAL);
        let mut low = LossScale::starting_at(1.0);
        low.back_off();
        assert_eq!(low.factor(), 1.0);
        let mut off = LossScale::off();
        off.stepped();
        off.back_off();
        assert_eq!((off.factor(), off.is_on()), (1.0, false));
    }

    /// The scale travels in a checkpoint's `state.ron`; a state written before it existed reads
    /// back as off.
    #[test]
    fn the_scale_round_trips_through_a_checkpoint_state() {
        use crate::train::run_dir::TrainState;
        let mut scale = LossScale::dynamic();
        scale.back_off();
        scale.stepped();
        let state = TrainState { step: 7, bad_in_row: 0, loss_scale: scale };
        let back: TrainState = ron::from_str(&ron::to_string(&state).unwrap()).unwrap();
        assert_eq!(back, state);
        let old: TrainState = ron::from_str("(step: 3, bad_in_row: 1)").unwrap();
        assert!(!old.loss_scale.is_on());
    }
}
