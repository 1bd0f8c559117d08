//! GGUF writer (version 3): the export path to llama.cpp and back into our own loader.
//!
//! Contract: the file has the model's `{arch}.*` hyper-parameters, the `tokenizer.*` metadata
//! given by the caller (copied from the model the run started from), and every tensor under its
//! llama.cpp name: 1-D tensors in F32, matrices in F16 or Q8_0 (F16 for rows that are not whole
//! Q8_0 blocks). Llama q/k rows are permuted to llama.cpp's RoPE layout, as its converter does.
//! The file is written to a temporary name and renamed, so a failed export never leaves half a
//! model under the requested name.

use super::dequant::quantize_q8_0;
use super::gguf::{GgmlType, MetaValue};
use super::gguf_weights::{gguf_name, permute_rope_rows};
use crate::model::weights_out::NamedTensor;
use crate::model::{Architecture, ModelConfig};
use anyhow::{Context, Result, bail};
use half::f16;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

const ALIGNMENT: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixType {
    F16,
    Q8_0,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::Str(s) => put_str(out, s),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
        MetaValue::Array(items) => {
            out.extend(items.first().map_or(0, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

/// The `{arch}.*` and `general.*` keys llama.cpp needs to run the model.
fn model_metadata(cfg: &ModelConfig, name: &str, file_type: u32) -> BTreeMap<String, MetaValue> {
    let arch = cfg.architecture.name();
    let k = |s: &str| format!("{arch}.{s}");
    let u = |v: usize| MetaValue::U32(v as u32);
    let mut m = BTreeMap::new();
    m.insert("general.architecture".into(), MetaValue::Str(arch.into()));
    m.insert("general.name".into(), MetaValue::Str(name.into()));
    m.insert("general.file_type".into(), MetaValue::U32(file_type));
    m.insert("general.alignment".into(), MetaValue::U32(ALIGNMENT as u32));
    m.insert(k("context_length"), u(cfg.max_position_embeddings));
    m.insert(k("embedding_length"), u(cfg.hidden_size));
    m.insert(k("block_count"), u(cfg.num_layers));
    m.insert(k("feed_forward_length"), u(cfg.intermediate_size));
    m.insert(k("attention.head_count"), u(cfg.num_heads));
    m.insert(k("attention.head_count_kv"), u(cfg.num_kv_heads));
    m.insert(k("attention.key_length"), u(cfg.head_dim));
    m.insert(k("attention.value_length"), u(cfg.head_dim));
    m.insert(k("rope.dimension_count"), u(cfg.head_dim));
    m.insert(k("rope.freq_base"), MetaValue::F32(cfg.rope_theta as f32));
    m.insert(k("attention.layer_norm_rms_epsilon"), MetaValue::F32(cfg.rms_norm_eps as f32));
    m.insert(k("vocab_size"), u(cfg.vocab_size));
    m
}

/// Tensor payload in GGUF layout and its type.
fn encode_tensor(cfg: &ModelConfig, hf: &str, data: &[f32], shape: &[usize], matrix: MatrixType) -> (Vec<u8>, GgmlType) {
    if shape.len() == 1 {
        return (data.iter().flat_map(|v| v.to_le_bytes()).collect(), GgmlType::F32);
    }
    let (rows, cols) = (shape[0], shape[1]);
    let heads = match hf {
        _ if cfg.architecture != Architecture::Llama => None,
        n if n.ends_with("self_attn.q_proj.weight") => Some(cfg.num_heads),
        n if n.ends_with("self_attn.k_proj.weight") => Some(cfg.num_kv_heads),
        _ => None,
    };
    let permuted;
    let data = match heads {
        Some(h) => {
            permuted = permute_rope_rows(data, h, rows, cols);
            &permuted[..]
        }
        None => data,
    };
    if matrix == MatrixType::Q8_0 && cols % 32 == 0 {
        (quantize_q8_0(data), GgmlType::Q8_0)
    } else {
        (data.iter().flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes()).collect(), GgmlType::F16)
    }
}

/// Writes `tensors` (HF names, as from [`crate::model::weights_out::hf_tensors`]) as a GGUF file.
pub fn write_gguf(path: &Path, cfg: &ModelConfig, name: &str, tensors: &[NamedTensor], tokenizer_meta: &BTreeMap<String, MetaValue>, matrix: MatrixType) -> Result<()> {
    if !tokenizer_meta.keys().any(|k| k == "tokenizer.ggml.model") {
        bail!("GGUF export needs the tokenizer.* metadata of a GGUF model (none was given)");
    }
    let file_type = match matrix {
        MatrixType::F16 => 1,
        MatrixType::Q8_0 => 7,
    };
    let mut meta = model_metadata(cfg, name, file_type);
    meta.extend(tokenizer_meta.iter().filter(|(k, _)| k.starts_with("tokenizer.")).map(|(k, v)| (k.clone(), v.clone())));

    let mut infos = Vec::new();
    let mut payload: Vec<u8> = Vec::new();
    for (hf, data, shape) in tensors {
        let gname = gguf_name(hf).with_context(|| format!("no GGUF name for tensor {hf}"))?;
        let (bytes, ty) = encode_tensor(cfg, hf, data, shape, matrix);
        while payload.len() % ALIGNMENT != 0 {
            payload.push(0);
        }
        infos.push((gname, shape.iter().rev().map(|&d| d as u64).collect::<Vec<_>>(), ty, payload.len() as u64));
        payload.extend(bytes);
    }

    let mut head = Vec::new();
    head.extend(b"GGUF");
    head.extend(3u32.to_le_bytes());
    head.extend((infos.len() as u64).to_le_bytes());
    head.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        put_str(&mut head, k);
        head.extend(type_id(v).to_le_bytes());
        put_value(&mut head, v);
    }
    for (n, dims, ty, offset) in &infos {
        put_str(&mut head, n);
        head.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            head.extend(d.to_le_bytes());
        }
        head.extend(ty.id().to_le_bytes());
        head.extend(offset.to_le_bytes());
    }
    while head.len() % ALIGNMENT != 0 {
        head.push(0);
    }
    super::atomic_write(path, |f| {
        f.write_all(&head)?;
        f.write_all(&payload)
    })
}
