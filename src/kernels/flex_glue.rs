//! What our CPU ops share to work on flex's buffers under Burn's dispatch: taking a tensor down
//! to its flex primitive (with or without autodiff) and building primitives from our results.

use burn::prelude::*;
use burn::tensor::{DType, GradientCheckpointingStrategy};
use burn_dispatch::backends::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn_dispatch::backends::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn_dispatch::backends::flex::{FlexTensor, Layout};
use burn_dispatch::backends::{Autodiff, Flex};
use burn_std::{Bytes, Shape};

/// An autodiff float primitive on flex (the flex tensor and its graph node); the same type
/// whatever the checkpointing strategy.
pub type AutodiffPrimitive = <Float as burn::tensor::BackendPrimitive<Autodiff<Flex>>>::Primitive;

/// The gradient-checkpointing strategy a training tensor carries (Burn's dispatch keeps it per
/// tensor, and the backend type depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpointing {
    Off,
    Balanced,
}

/// Whether our fused CPU ops may run: any value of [`crate::model::packed::DISABLE_ENV`] keeps
/// Burn's own ops everywhere (before/after measurements).
pub fn enabled() -> bool {
    std::env::var_os(crate::model::packed::DISABLE_ENV).is_none()
}

/// `t` on flex autodiff with its strategy, or `None` (another device, or not f32).
pub fn autodiff<const D: usize>(t: &Tensor<D>) -> Option<(AutodiffPrimitive, Checkpointing)> {
    if t.dtype() != DType::F32 {
        return None;
    }
    match t.gradient_checkpointing_strategy()? {
        GradientCheckpointingStrategy::Disabled => t.clone().try_into_primitive::<Autodiff<Flex, NoCheckpointing>>().ok().map(|p| (p, Checkpointing::Off)),
        GradientCheckpointingStrategy::Balanced => t.clone().try_into_primitive::<Autodiff<Flex, BalancedCheckpointing>>().ok().map(|p| (p, Checkpointing::Balanced)),
    }
}

/// Two inputs of one op on flex autodiff under the same strategy: their graph nodes, their
/// contiguous flex tensors and the strategy, or `None` (another device, dtype or strategy).
pub fn autodiff_pair<const A: usize, const B: usize>(a: &Tensor<A>, b: &Tensor<B>) -> Option<([NodeGuard; 2], [FlexTensor; 2], Checkpointing)> {
    let ((a, strategy), (b, b_strategy)) = (autodiff(a)?, autodiff(b)?);
    (strategy == b_strategy).then(|| ([a.node(), b.node()], [contiguous(a.into_primitive()), contiguous(b.into_primitive())], strategy))
}

/// The tensor of an autodiff result, on the backend of `strategy`.
pub fn lift<const D: usize>(p: AutodiffPrimitive, strategy: Checkpointing) -> Tensor<D> {
    match strategy {
        Checkpointing::Off => Tensor::from_primitive::<Autodiff<Flex, NoCheckpointing>>(p),
        Checkpointing::Balanced => Tensor::from_primitive::<Autodiff<Flex, BalancedCheckpointing>>(p),
    }
}

/// Records `out` as the result of `op` on the inputs behind `nodes`: with `state` for its
/// backward when a gradient is wanted, as a leaf of no gradient otherwise. Compute-bound, as
/// Burn's matmul: the output is kept, never recomputed.
pub fn record<T: Backward<Flex, N>, const N: usize>(op: T, nodes: [NodeGuard; N], strategy: Checkpointing, state: impl FnOnce() -> T::State, out: FlexTensor) -> AutodiffPrimitive {
    fn with<C: CheckpointStrategy, T: Backward<Flex, N>, const N: usize>(op: T, nodes: [NodeGuard; N], state: impl FnOnce() -> T::State, out: FlexTensor) -> AutodiffPrimitive {
        match op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
    match strategy {
        Checkpointing::Off => with::<NoCheckpointing, T, N>(op, nodes, state, out),
        Checkpointing::Balanced => with::<BalancedCheckpointing, T, N>(op, nodes, state, out),
    }
}

/// `t` on plain flex, contiguous, or `None`.
pub fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    (t.dtype() == DType::F32).then(|| t.clone().try_into_primitive::<Flex>().ok().map(contiguous)).flatten()
}

/// `t` with its values in one row-major run (copies only strided or offset views).
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    match t.as_slice::<f32>() {
        Some(_) => t,
        None => t.to_contiguous(),
    }
}

/// The values of a contiguous f32 tensor.
pub fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("an f32 tensor made contiguous")
}

/// A contiguous f32 flex tensor of `shape` holding `values`.
pub fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}
