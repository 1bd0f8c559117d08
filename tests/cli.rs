//! The CLI contract other tools rely on: `generate` prints only the generated text on stdout,
//! `info` describes the model.

mod common;

use std::process::Command;

fn memtrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memtrain"))
}

#[test]
fn generate_chat_prints_only_the_answer_on_stdout() {
    let Some(model) = common::real_model() else { return };
    let out = memtrain()
        .args(["generate", "--device", "cpu", "--max-tokens", "16", "--temperature", "0", "--chat", "What is the capital of Japan?", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stdout.contains("Tokyo"), "stdout: {stdout:?}");
    assert!(!stdout.contains("model:") && stderr.contains("model:"), "diagnostics belong on stderr");
}

#[test]
fn generate_prompt_continues_with_paris() {
    let Some(model) = common::real_model() else { return };
    let out = memtrain()
        .args(["generate", "--device", "cpu", "--max-tokens", "4", "--prompt", "The capital of France is", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(" Paris"));
}

#[test]
fn info_describes_the_tiny_qwen3_folder_and_the_real_gguf() {
    // The tiny folder has no tokenizer, so `info` must say so clearly.
    let tiny = common::fixtures().join("models/tiny-qwen3");
    let out = memtrain().args(["info", "--model"]).arg(&tiny).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokenizer.json"));
    let Some(model) = common::real_model() else { return };
    let out = memtrain().args(["info", "--model"]).arg(&model).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in ["llama", "Q4_1", "49152", "chat template:   yes", "parameters:      134515008"] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
}
