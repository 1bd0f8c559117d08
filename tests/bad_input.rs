//! Broken or hostile model folders give errors that name the file and the problem.

mod common;

use burn::prelude::*;
use memtrain::checkpoint::{self, load_hf_weights};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memtrain-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny() -> PathBuf {
    common::fixtures().join("models/tiny-llama")
}

fn copy_tiny(to: &Path) {
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny().join(f), to.join(f)).unwrap();
    }
}

fn error_of(dir: &Path) -> String {
    match load_hf_weights(dir, &Device::flex()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_safetensors_header_that_claims_more_bytes_than_the_file_has() {
    let d = scratch("header-len");
    copy_tiny(&d);
    let mut bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(d.join("model.safetensors"), &bytes).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("model.safetensors") && msg.contains("invalid safetensors"), "{msg}");
}

#[test]
fn a_safetensors_header_whose_offsets_lie() {
    let d = scratch("offsets");
    copy_tiny(&d);
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    // Point one tensor past the end of the data while keeping the header length.
    let lied = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[9,", 1);
    assert_ne!(lied, header, "fixture header layout changed");
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(lied.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(d.join("model.safetensors"), &out).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn a_truncated_safetensors_file() {
    let d = scratch("truncated");
    copy_tiny(&d);
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("model.safetensors") && msg.contains("invalid"), "{msg}");
}

#[test]
fn a_config_missing_a_field_or_with_impossible_heads() {
    let d = scratch("config");
    copy_tiny(&d);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap()).unwrap();
    let mut missing = cfg.clone();
    missing.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(d.join("config.json"), missing.to_string()).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("config.json") && msg.contains("hidden_size"), "{msg}");

    let mut heads = cfg.clone();
    heads["num_key_value_heads"] = 3.into();
    std::fs::write(d.join("config.json"), heads.to_string()).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("config.json") && msg.contains("num_key_value_heads"), "{msg}");

    std::fs::write(d.join("config.json"), "{ not json").unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("config.json") && msg.contains("JSON"), "{msg}");
}

#[test]
fn a_shape_that_disagrees_with_the_config() {
    let d = scratch("shape");
    copy_tiny(&d);
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = 100.into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let msg = error_of(&d);
    assert!(msg.contains("mlp.gate_proj.weight") && msg.contains("shape"), "{msg}");
}

#[test]
fn a_path_that_does_not_exist_or_is_not_a_model() {
    let err = checkpoint::load(Path::new("/nonexistent/model.gguf"), &Device::flex()).err().unwrap();
    assert!(format!("{err:#}").contains("/nonexistent/model.gguf"));
    let d = scratch("empty-dir");
    let err = checkpoint::load(&d, &Device::flex()).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("config.json"), "{msg}");
    let f = d.join("notes.gguf");
    std::fs::write(&f, b"hello, this is not a model").unwrap();
    let msg = format!("{:#}", checkpoint::load(&f, &Device::flex()).err().unwrap());
    assert!(msg.contains("notes.gguf"), "{msg}");
}
