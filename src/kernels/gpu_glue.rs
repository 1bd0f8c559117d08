//! What our wgpu training ops share to plug into Burn's autodiff on the cube backend (as
//! [`super::flex_glue`] does on flex): taking a training tensor apart into its graph node and
//! its plain cube tensor (on which [`super::gpu`]'s kernels run), and recording a result as one
//! autodiff op with a hand-written backward.

pub use super::flex_glue::Checkpointing;
use burn::prelude::*;
use burn::tensor::{DType, GradientCheckpointingStrategy};
use burn_dispatch::backends::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn_dispatch::backends::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn_dispatch::backends::{Autodiff, Cube};

/// A float primitive of the plain cube backend (a fusion tensor on wgpu).
pub type CubeFloat = <Float as burn::tensor::BackendPrimitive<Cube>>::Primitive;
/// An autodiff float primitive on the cube backend: one type whatever the checkpointing
/// strategy, which Burn's dispatch keeps per tensor (and picks the backend type by).
pub type TrackedFloat = <Float as burn::tensor::BackendPrimitive<Autodiff<Cube>>>::Primitive;

/// The checkpointing strategy of an f32 or f16 (mixed precision) autodiff tensor on wgpu, or
/// `None` (another device, no autodiff, another dtype, or our GPU kernels turned off).
pub fn strategy<const D: usize>(t: &Tensor<D>) -> Option<Checkpointing> {
    // The tensor checks before the environment lookup: inference asks for every projection.
    if !t.is_autodiff() || !matches!(t.dtype(), DType::F32 | DType::F16) || !super::gpu::enabled() {
        return None;
    }
    match t.gradient_checkpointing_strategy()? {
        GradientCheckpointingStrategy::Disabled => Some(Checkpointing::Off),
        GradientCheckpointingStrategy::Balanced => Some(Checkpointing::Balanced),
    }
}

/// `t`'s autodiff primitive on the cube backend under `strategy`, or `None`.
pub fn tracked<const D: usize>(t: &Tensor<D>, strategy: Checkpointing) -> Option<TrackedFloat> {
    match strategy {
        Checkpointing::Off => t.clone().try_into_primitive::<Autodiff<Cube, NoCheckpointing>>().ok(),
        Checkpointing::Balanced => t.clone().try_into_primitive::<Autodiff<Cube, BalancedCheckpointing>>().ok(),
    }
}

/// `t`'s graph node and its plain cube tensor (no graph), or `None`. A tensor that wants no
/// gradient (a frozen weight, a mask) still has a node, which records no parent.
pub fn split<const D: usize>(t: &Tensor<D>, strategy: Checkpointing) -> Option<(NodeGuard, Tensor<D>)> {
    let p = tracked(t, strategy)?;
    let node = p.node();
    Some((node, plain(p.into_primitive())))
}

/// The tensor of an autodiff result, on the backend of `strategy`.
pub fn lift<const D: usize>(p: TrackedFloat, strategy: Checkpointing) -> Tensor<D> {
    match strategy {
        Checkpointing::Off => Tensor::from_primitive::<Autodiff<Cube, NoCheckpointing>>(p),
        Checkpointing::Balanced => Tensor::from_primitive::<Autodiff<Cube, BalancedCheckpointing>>(p),
    }
}

/// Records `out` as the result of `op` over the inputs behind `nodes`, with `state` for its
/// backward when a gradient is wanted: compute-bound, as Burn's matmul (kept, never recomputed
/// by Burn's checkpointing).
pub fn record<T: Backward<Cube, N>, const N: usize>(op: T, nodes: [NodeGuard; N], strategy: Checkpointing, state: impl FnOnce() -> T::State, out: CubeFloat) -> TrackedFloat {
    fn with<C: CheckpointStrategy, T: Backward<Cube, N>, const N: usize>(op: T, nodes: [NodeGuard; N], state: impl FnOnce() -> T::State, out: CubeFloat) -> TrackedFloat {
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

/// A plain cube tensor of a primitive.
pub fn plain<const D: usize>(p: CubeFloat) -> Tensor<D> {
    Tensor::from_primitive::<Cube>(p)
}

/// The primitive of a plain cube tensor.
pub fn cube<const D: usize>(t: &Tensor<D>) -> CubeFloat {
    t.clone().try_into_primitive::<Cube>().expect("a plain wgpu tensor")
}
