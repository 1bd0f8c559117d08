//! What our CPU ops share to work on flex's buffers under Burn's dispatch: taking a tensor down
//! to its flex primitive (with or without autodiff) and building primitives from our results.

use burn::prelude::*;
use burn::tensor::DType;
use burn_dispatch::backends::autodiff::checkpoint::strategy::NoCheckpointing;
use burn_dispatch::backends::flex::{FlexTensor, Layout};
use burn_dispatch::backends::{Autodiff, Flex};
use burn_std::{Bytes, Shape};

/// The autodiff backend our training runs on (no gradient checkpointing); tensors of another
/// strategy are declined and take Burn's ops.
pub type FlexAutodiff = Autodiff<Flex, NoCheckpointing>;

/// An autodiff float primitive on flex: the flex tensor and its graph node.
pub type AutodiffPrimitive = <Float as burn::tensor::BackendPrimitive<FlexAutodiff>>::Primitive;

/// Whether our fused CPU ops may run: any value of [`crate::model::packed::DISABLE_ENV`] keeps
/// Burn's own ops everywhere (before/after measurements).
pub fn enabled() -> bool {
    std::env::var_os(crate::model::packed::DISABLE_ENV).is_none()
}

/// `t` on flex autodiff, or `None` (another device, strategy, or dtype).
pub fn autodiff<const D: usize>(t: &Tensor<D>) -> Option<AutodiffPrimitive> {
    (t.dtype() == DType::F32).then(|| t.clone().try_into_primitive::<FlexAutodiff>().ok()).flatten()
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
