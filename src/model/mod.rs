//! The model: config, rotary embeddings, KV cache and the Llama-family decoder.

pub mod attention;
pub mod config;
pub mod fused_projections;
pub mod host_decode;
pub mod kv_cache;
pub mod packed;
pub mod parameters;
pub mod precision;
pub mod llama;
pub mod lora_linear;
pub mod random;
pub mod recompute;
pub mod rope;
pub mod shared_prompts;
pub mod stem;
pub mod weights_out;

pub use config::{Architecture, ModelConfig};
pub use llama::{Llama, StepLayout, WeightSource};
