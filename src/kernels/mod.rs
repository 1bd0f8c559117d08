//! Kernels we write ourselves, where a profile showed the backend's general ops leave time on
//! the table (issue 7). CPU kernels here; GPU kernels are CubeCL sources in `shaders/`, queued
//! by [`gpu`].

pub mod cpu_matmul;
pub mod target_logprobs;
pub mod target_logprobs_op;
pub mod flex_glue;
pub mod causal_attention;
pub mod causal_attention_op;
pub mod cached_attention;
pub mod decode_attention;
pub mod head_layout;
pub mod fast_exp;
pub mod rms_norm;
pub mod rms_norm_op;
pub mod swiglu;
pub mod swiglu_op;
pub mod gpu;
pub mod gpu_head_op;
pub mod gpu_glue;
pub mod gpu_backward;
pub mod gpu_train_ops;
