//! Exports of the real SmolLM2 GGUF: the HF folder reloads bit-identically, and the GGUF F16 and
//! Q8_0 files reload in our loader to the logits llama.cpp computes from the same files
//! (tests/fixtures/export/llamacpp.json, made by scripts/make_export_fixtures.py), so llama.cpp
//! and we read our exports the same way.

mod common;

use burn::prelude::*;
use memtrain::checkpoint::export::{ExportFormat, export};
use memtrain::checkpoint;

fn out_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("memtrain-export-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gguf_exports_read_back_as_llama_cpp_reads_them() {
    let Some(model) = common::real_model() else { return };
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(common::fixtures().join("export/llamacpp.json")).unwrap()).unwrap();
    let ids: Vec<u32> = serde_json::from_value(fixture["input_ids"].clone()).unwrap();
    let dir = out_dir();
    let original = common::last_logits(&checkpoint::load(&model, &Device::flex()).unwrap(), &ids);
    // llama.cpp multiplies Q8_0 weights with activations quantized to 8 bits as well (we keep
    // them in f32), which moves its logits by a few tenths over 30 layers; F16 stays close.
    for (format, name, tolerance, drift) in [(ExportFormat::GgufF16, "gguf-f16", 0.05f32, 0.05f32), (ExportFormat::GgufQ8_0, "gguf-q8_0", 0.6, 0.3)] {
        let path = dir.join(format!("{name}.gguf"));
        export(&model, format, &path).unwrap();
        let lm = checkpoint::load(&path, &Device::flex()).unwrap();
        assert_eq!(lm.info.config, checkpoint::inspect(&model).unwrap().config, "{name}: hyper-parameters survive");
        assert_eq!(lm.tokenizer.encode("The capital of France is", false).unwrap(), ids, "{name}: tokenizer survives");
        let logits = common::last_logits(&lm, &ids);
        let top_ids: Vec<usize> = serde_json::from_value(fixture[name]["top_ids"].clone()).unwrap();
        let top_logits: Vec<f32> = serde_json::from_value(fixture[name]["top_logits"].clone()).unwrap();
        let worst = top_ids.iter().zip(&top_logits).map(|(&i, &e)| (logits[i] - e).abs()).fold(0.0f32, f32::max);
        eprintln!("{name}: {} bytes, max |Δlogit| vs llama.cpp over its top 20 = {worst:.3e}", std::fs::metadata(&path).unwrap().len());
        assert!(worst < tolerance, "{name}: our reading differs from llama.cpp's by {worst}");
        let moved = top_ids.iter().map(|&i| (logits[i] - original[i]).abs()).fold(0.0f32, f32::max);
        eprintln!("{name}: max |Δlogit| vs the original model = {moved:.3e}");
        assert!(moved < drift, "{name}: the export moved the logits by {moved}");
        assert_eq!(memtrain::generate::sampler::argmax(&logits) as usize, top_ids[0], "{name}: next token");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn safetensors_export_reloads_bit_identically() {
    let Some(model) = common::real_model() else { return };
    let dir = out_dir().join("hf");
    export(&model, ExportFormat::Safetensors, &dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let (a, b) = (checkpoint::load(&model, &Device::flex()).unwrap(), checkpoint::load(&dir, &Device::flex()).unwrap());
    let ids = a.tokenizer.encode("Memory is what we keep.", false).unwrap();
    assert_eq!(b.tokenizer.encode("Memory is what we keep.", false).unwrap(), ids);
    assert_eq!(a.tokenizer.stop_ids, b.tokenizer.stop_ids);
    assert_eq!(a.tokenizer.chat_template, b.tokenizer.chat_template);
    assert_eq!(common::last_logits(&a, &ids), common::last_logits(&b, &ids), "F32 export must be lossless");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gguf_export_without_gguf_tokenizer_metadata_is_a_clear_error() {
    let e = export(&out_dir().join("nope"), ExportFormat::Safetensors, &out_dir().join("y")).err().expect("must fail").to_string();
    assert!(e.contains("no such run"), "{e}");
    let Some(model) = common::real_model() else { return };
    let hf = out_dir().join("hf-only");
    export(&model, ExportFormat::Safetensors, &hf).unwrap();
    let e = export(&hf, ExportFormat::GgufQ8_0, &out_dir().join("x.gguf")).err().expect("must fail").to_string();
    assert!(e.contains("hf-only") && e.contains("Hugging Face folder"), "{e}");
    assert!(!out_dir().join("x.gguf").exists(), "no half-written file");
    let _ = std::fs::remove_dir_all(&hf);
}
