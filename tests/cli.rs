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

/// Also with `--f16`, which on the CPU packs the decode kernels' weights in f16.
#[test]
fn generate_prompt_continues_with_paris() {
    let Some(model) = common::real_model() else { return };
    for f16 in [None, Some("--f16")] {
        let out = memtrain()
            .args(["generate", "--device", "cpu", "--max-tokens", "4", "--prompt", "The capital of France is"])
            .args(f16)
            .arg("--model")
            .arg(&model)
            .output()
            .unwrap();
        assert!(out.status.success(), "{f16:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(" Paris"), "{f16:?}");
    }
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

/// `memtrain agent` reads a document chunk by chunk: the memory after each chunk goes to
/// stderr, the answer alone to stdout. SmolLM2 keeps the one fact the question needs.
#[test]
fn agent_prints_the_memories_on_stderr_and_the_answer_on_stdout() {
    let Some(model) = common::real_model() else { return };
    let dir = std::env::temp_dir().join(format!("memtrain-cli-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("harbour.txt");
    std::fs::write(&doc, "The harbour of Lunmere was built in 1921 by the engineer Marta Corrigan.\n\nFishing boats came and went every morning. The winters were long and cold.\n\nIn 1950 a storm destroyed the old pier, and the town built a new one of stone.").unwrap();
    let out = memtrain()
        .args(["agent", "--device", "cpu", "--chunk-tokens", "24", "--memory-tokens", "48", "--answer-tokens", "48", "--question", "Who built the harbour of Lunmere?", "--doc"])
        .arg(&doc)
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("memory after chunk 1") && stderr.contains("memory after chunk 3"), "one memory per chunk on stderr: {stderr}");
    assert!(!stdout.contains("memory after"), "stdout holds the answer only: {stdout:?}");
    assert!(stdout.contains("Corrigan"), "answer: {stdout:?}\nstderr: {stderr}");
}

#[test]
fn train_config_prints_a_preset_that_reads_back() {
    let out = memtrain().args(["train-config", "--preset", "smollm2-135m"]).output().unwrap();
    assert!(out.status.success());
    let cfg = memtrain::train::TrainConfig::from_ron(&String::from_utf8_lossy(&out.stdout), std::path::Path::new("stdout")).unwrap();
    assert_eq!(cfg, memtrain::train::TrainConfig::smollm2_135m());
    let bad = memtrain().args(["train-config", "--preset", "huge"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("tiny-cpu"));
}

#[test]
fn eval_compare_without_an_output_folder_is_refused_before_loading_anything() {
    let out = memtrain().args(["eval", "--data", "nowhere", "--compare", "also-nowhere"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--compare needs --out"), "{stderr}");
}
