//! Launchers of our wgpu kernels for training (the backward passes of [`super::gpu`]'s
//! kernels, and attention's softmax): plain cube tensors in, plain cube tensors out, queued in
//! Burn's fusion stream like every kernel of [`super::gpu`]. [`super::gpu_train_ops`] makes
//! Burn autodiff ops of them.

use super::gpu::{self, QkvHeads, THREADS, elem, empty, fused, queue, queue_outputs, row_grid, rows_and_width, strided_grid, uniform};
use burn::prelude::*;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::CubeDim;

/// RMSNorm's backward over the last dimension: `(dx, dγ)` for the norm of `x` with `gamma`
/// and the output's gradient `dy`, in one launch and Burn's sum over the rows for dγ.
pub fn rms_norm_backward<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, dy: &Tensor<D>, eps: f64) -> Option<(Tensor<D>, Tensor<1>)> {
    let dims = x.dims();
    let (rows, width) = rows_and_width(dims);
    if dy.dims() != dims || width != gamma.dims()[0] || rows == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(x), fused(gamma), fused(dy)])?;
    let eps = eps as f32;
    let mut outs = queue_outputs("memtrain::rms_norm_backward", inputs, vec![dims, dims], move |t| {
        let [x, gamma, dy]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let (dx, dgamma_rows) = (empty(&x, x.meta.shape().to_vec()), empty(&x, x.meta.shape().to_vec()));
        gpu::rms_norm_shader::rms_norm_backward_rows::launch(&x.client, row_grid(rows), CubeDim::new_1d(THREADS as u32), x.clone().into_buffer_arg(), gamma.into_buffer_arg(), dy.into_buffer_arg(), dx.clone().into_buffer_arg(), dgamma_rows.clone().into_buffer_arg(), rows, width, eps, THREADS, elem(&x));
        vec![dx, dgamma_rows]
    });
    let dgamma = outs.pop()?.reshape([rows, width]).sum_dim(0).reshape([width]);
    Some((outs.pop()?, dgamma))
}

/// `(dgate, dup)` of `silu(gate) · up` for the output's gradient `dy`, in one launch.
pub fn swiglu_backward<const D: usize>(gate: &Tensor<D>, up: &Tensor<D>, dy: &Tensor<D>) -> Option<(Tensor<D>, Tensor<D>)> {
    let dims = gate.dims();
    let len = dims.iter().product::<usize>();
    if up.dims() != dims || dy.dims() != dims || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(gate), fused(up), fused(dy)])?;
    let mut outs = queue_outputs("memtrain::swiglu_backward", inputs, vec![dims, dims], move |t| {
        let [gate, up, dy]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let (dgate, dup) = (empty(&gate, gate.meta.shape().to_vec()), empty(&gate, gate.meta.shape().to_vec()));
        let (cubes, units, stride) = strided_grid(len);
        gpu::swiglu_shader::swiglu_backward::launch(&gate.client, cubes, units, gate.clone().into_buffer_arg(), up.into_buffer_arg(), dy.into_buffer_arg(), dgate.clone().into_buffer_arg(), dup.clone().into_buffer_arg(), len, stride, elem(&gate));
        vec![dgate, dup]
    });
    let dup = outs.pop()?;
    Some((outs.pop()?, dup))
}

/// The gradient of [`gpu::rope_to_heads`]' input `[batch, seq, heads, head_dim]` from its
/// output's `dout` `[batch, heads, seq, head_dim]`, in one launch.
pub fn rope_to_heads_backward(dout: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, heads, seq, head_dim] = dout.dims();
    let len = b * seq * heads * head_dim;
    if cos.dims() != [b, 1, seq, head_dim] || sin.dims() != cos.dims() || head_dim % 2 != 0 || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(dout), fused(cos), fused(sin)])?;
    Some(queue("memtrain::rope_to_heads_backward", inputs, [b, seq, heads, head_dim], move |t| {
        let [dout, cos, sin]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let dx = empty(&dout, vec![b, seq, heads, head_dim]);
        let (cubes, units, stride) = strided_grid(len);
        gpu::rope_shader::rope_to_heads_backward::launch(&dout.client, cubes, units, dout.clone().into_buffer_arg(), cos.into_buffer_arg(), sin.into_buffer_arg(), dx.clone().into_buffer_arg(), seq, heads, head_dim, len, stride, elem(&dout));
        dx
    }))
}

/// `softmax(scale · scores + bias)` along the last axis in one launch: `scores` `[batch, heads,
/// rows, cols]`, `bias` `[batch, 1, rows, cols]` shared by the heads.
pub fn softmax_bias(scores: &Tensor<4>, bias: &Tensor<4>, scale: f32) -> Option<Tensor<4>> {
    let dims @ [b, heads, rows, cols] = scores.dims();
    if bias.dims() != [b, 1, rows, cols] || cols == 0 || b * heads * rows == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(scores), fused(bias)])?;
    Some(queue("memtrain::softmax_bias", inputs, dims, move |t| {
        let [scores, bias]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let out = empty(&scores, scores.meta.shape().to_vec());
        gpu::softmax_shader::softmax_bias_rows::launch(&scores.client, row_grid(b * heads * rows), CubeDim::new_1d(THREADS as u32), scores.clone().into_buffer_arg(), bias.into_buffer_arg(), out.clone().into_buffer_arg(), scale, b * heads * rows, heads, rows, cols, THREADS, elem(&scores));
        out
    }))
}

/// The scores' gradient `scale · p·(dp − Σ p·dp)` of [`softmax_bias`] from its output `p` and
/// the output's gradient `dp`, in one launch.
pub fn softmax_backward<const D: usize>(p: &Tensor<D>, dp: &Tensor<D>, scale: f32) -> Option<Tensor<D>> {
    let dims = p.dims();
    let (rows, cols) = rows_and_width(dims);
    if dp.dims() != dims || rows == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(p), fused(dp)])?;
    Some(queue("memtrain::softmax_backward", inputs, dims, move |t| {
        let [p, dp]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let ds = empty(&p, p.meta.shape().to_vec());
        gpu::softmax_shader::softmax_backward_rows::launch(&p.client, row_grid(rows), CubeDim::new_1d(THREADS as u32), p.clone().into_buffer_arg(), dp.into_buffer_arg(), ds.clone().into_buffer_arg(), scale, rows, cols, THREADS, elem(&p));
        ds
    }))
}

/// From one fused q/k/v projection `qkv` `[batch, seq, (heads + 2·kv_heads)·head_dim]` to
/// attention's head-major inputs in one launch: `(scale · rope(q), rope(k), v)`, q
/// `[batch, heads, seq, head_dim]`, k and v `[batch, kv_heads, seq, head_dim]`.
pub fn qkv_to_heads(qkv: &Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>, heads: QkvHeads, q_scale: f32) -> Option<(Tensor<4>, Tensor<4>, Tensor<4>)> {
    let QkvHeads { heads, kv_heads, head_dim } = heads;
    let [b, seq, width] = qkv.dims();
    let len = b * seq * width;
    if width != (heads + 2 * kv_heads) * head_dim || cos.dims() != [b, 1, seq, head_dim] || sin.dims() != cos.dims() || head_dim % 2 != 0 || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(qkv), fused(cos), fused(sin)])?;
    let shapes = vec![[b, heads, seq, head_dim], [b, kv_heads, seq, head_dim], [b, kv_heads, seq, head_dim]];
    let mut outs = queue_outputs("memtrain::qkv_to_heads", inputs, shapes.clone(), move |t| {
        let [qkv, cos, sin]: [CubeTensor; 3] = t.try_into().expect("three inputs");
        let [q, k, v] = [0, 1, 2].map(|i| empty(&qkv, shapes[i].to_vec()));
        let (cubes, units, stride) = strided_grid(len);
        // The decode kernel's move, its cache being exactly this step's columns.
        gpu::qkv_to_cache_shader::qkv_to_cache::launch(&qkv.client, cubes, units, qkv.clone().into_buffer_arg(), cos.into_buffer_arg(), sin.into_buffer_arg(), q.clone().into_buffer_arg(), k.clone().into_buffer_arg(), v.clone().into_buffer_arg(), q_scale, seq, heads, kv_heads, head_dim, seq, 0, len, stride, elem(&qkv));
        vec![q, k, v]
    });
    let v = outs.pop()?;
    let k = outs.pop()?;
    Some((outs.pop()?, k, v))
}

/// The gradient of [`qkv_to_heads`]' input `[batch, seq, (heads + 2·kv_heads)·head_dim]` from
/// its outputs' `dq`, `dk`, `dv`, in one launch.
pub fn qkv_to_heads_backward(dq: &Tensor<4>, dk: &Tensor<4>, dv: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>, q_scale: f32) -> Option<Tensor<3>> {
    let [b, heads, seq, head_dim] = dq.dims();
    let kv_heads = dk.dims()[1];
    let width = (heads + 2 * kv_heads) * head_dim;
    let len = b * seq * width;
    if dk.dims() != [b, kv_heads, seq, head_dim] || dv.dims() != dk.dims() || cos.dims() != [b, 1, seq, head_dim] || sin.dims() != cos.dims() || head_dim % 2 != 0 || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(dq), fused(dk), fused(dv), fused(cos), fused(sin)])?;
    Some(queue("memtrain::qkv_to_heads_backward", inputs, [b, seq, width], move |t| {
        let [dq, dk, dv, cos, sin]: [CubeTensor; 5] = t.try_into().expect("five inputs");
        let dqkv = empty(&dq, vec![b, seq, width]);
        let (cubes, units, stride) = strided_grid(len);
        gpu::qkv_heads_shader::qkv_to_heads_backward::launch(&dq.client, cubes, units, dq.clone().into_buffer_arg(), dk.into_buffer_arg(), dv.into_buffer_arg(), cos.into_buffer_arg(), sin.into_buffer_arg(), dqkv.clone().into_buffer_arg(), q_scale, seq, heads, kv_heads, head_dim, len, stride, elem(&dq));
        dqkv
    }))
}

/// The gradient of [`gpu::swiglu_halves`]' input `x` `[.., 2·width]` (gate's columns, then
/// up's) from its output's `dy` `[.., width]`, in one launch.
pub fn swiglu_halves_backward<const D: usize>(x: &Tensor<D>, dy: &Tensor<D>) -> Option<Tensor<D>> {
    let dims = x.dims();
    let (rows, width) = rows_and_width(dy.dims());
    let len = rows * width;
    let mut halved = dims;
    halved[D - 1] /= 2;
    if dims[D - 1] % 2 != 0 || dy.dims() != halved || len == 0 {
        return None;
    }
    let inputs = uniform(vec![fused(x), fused(dy)])?;
    Some(queue("memtrain::swiglu_halves_backward", inputs, dims, move |t| {
        let [x, dy]: [CubeTensor; 2] = t.try_into().expect("two inputs");
        let dx = empty(&x, x.meta.shape().to_vec());
        let (cubes, units, stride) = strided_grid(len);
        gpu::swiglu_shader::swiglu_halves_backward::launch(&x.client, cubes, units, x.clone().into_buffer_arg(), dy.into_buffer_arg(), dx.clone().into_buffer_arg(), width, len, stride, elem(&x));
        dx
    }))
}
