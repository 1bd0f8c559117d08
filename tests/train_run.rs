//! The training loop end to end on synthetic documents with a small from-scratch model (the
//! SmolLM2 tokenizer from the fixtures, so no download is needed):
//! - a run killed at a random moment (SIGKILL, no chance to clean up) and resumed repeats the
//!   uninterrupted run exactly: the same losses, rewards and final weights, bit for bit;
//! - a config that cannot work is refused before any model is loaded, naming the field;
//! - a run folder is never silently overwritten.

mod common;

use memtrain::exercises::{DatasetOptions, Preset, build};
use memtrain::train::config::ModelSource;
use memtrain::train::metrics::read_records;
use memtrain::train::{Outcome, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memtrain-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tokenizer_dir() -> PathBuf {
    common::fixtures().join("tokenizer/smollm2_hf")
}

/// Exercises from seeded synthetic documents, counted with the SmolLM2 tokenizer.
fn exercises(dir: &Path, docs: usize) -> PathBuf {
    let src = dir.join("docs");
    memtrain::exercises::synth::write_documents(&src, docs, 3).unwrap();
    let out = dir.join("exercises");
    let mut opts = DatasetOptions::new(vec![src], out.clone());
    opts.preset = Preset::Tiny;
    opts.counter = Some(memtrain::exercises::dataset::counter_from_model(&tokenizer_dir()).unwrap());
    build(&opts, &mut |_| true).unwrap();
    out
}

/// A hand-made exercises file whose every answer is "Oslo": a tiny model learns it within a
/// few SFT steps, so that its sampled answers are sometimes right and sometimes wrong, GRPO
/// groups have rewards that differ, and the GRPO steps really update the model.
fn learnable_exercises(dir: &Path) -> PathBuf {
    let out = dir.join("oslo");
    std::fs::create_dir_all(&out).unwrap();
    let difficulty = r#"{"level":1,"chunks":2,"distance":1,"distractors":0,"pivot_in_first_chunk":true,"answer_words":1,"masked_occurrences":1}"#;
    let mut lines = String::new();
    for (i, split) in ["train", "train", "train", "held_out"].iter().enumerate() {
        let chunks = format!(r#"["Anna {i} sailed to Oslo in May.","Later [MASK] was cold."]"#);
        lines += &format!(r#"{{"id":"e{i}","doc_id":"d{i}","split":"{split}","objective":"masked_entity","chunks":{chunks},"question":"Which entity is [MASK]?","answer":"Oslo","entity_type":"place","difficulty":{difficulty},"pivot_chunk":1}}"#);
        lines += "\n";
        lines += &format!(r#"{{"id":"e{i}-r0","doc_id":"d{i}","split":"{split}","objective":"memory_recall","chunks":{chunks},"question":"Which entity is [TARGET]?","answer":"Oslo","entity_type":"place","difficulty":{difficulty},"probe_chunk":0,"probe_text":"Anna {i} sailed to [TARGET] in May.","parent":"e{i}"}}"#);
        lines += "\n";
    }
    std::fs::write(out.join("exercises.jsonl"), lines).unwrap();
    out
}

/// A small, fast config: 45 SFT steps, 3 GRPO steps with recall, a checkpoint every step.
fn small_config() -> TrainConfig {
    let mut c = TrainConfig::scratch_cpu();
    if let ModelSource::Scratch { config, tokenizer_from, .. } = &mut c.model {
        config.hidden_size = 32;
        config.intermediate_size = 64;
        config.num_layers = 2;
        config.head_dim = 8;
        *tokenizer_from = Some(tokenizer_dir());
    }
    c.sft.steps = 45;
    c.sft.batch = 8;
    c.sft.lr = 1e-2;
    c.grpo_steps = 3;
    c.grpo.group = 4;
    c.grpo.batch_docs = 1;
    c.grpo.micro_batch = 4;
    c.objectives.recall_group = 2;
    // Dense reward so that some groups differ and GRPO really updates.
    c.objectives.partial_credit = 1.0;
    c.agent.memory_tokens = 12;
    c.agent.answer_tokens = 10;
    c.checkpoint.every = 1;
    c.checkpoint.keep = 2;
    c.eval.every = 0;
    c
}

fn run_to_end(cfg: TrainConfig, data: &Path, out: &Path, resume: bool) -> Outcome {
    let mut t = Trainer::open(cfg, data, out, resume).unwrap();
    t.run(&AtomicBool::new(false), &mut |_| {}).unwrap()
}

#[test]
fn a_run_killed_at_a_random_moment_resumes_exactly() {
    let dir = temp("resume");
    let data = learnable_exercises(&dir);
    let mut cfg = small_config();
    // The student's greedy rollouts, corrected by the teacher, join every SFT batch: resume
    // must replay them too.
    cfg.sft.student_rollouts = 1;
    let cfg_path = dir.join("config.ron");
    std::fs::write(&cfg_path, cfg.to_ron()).unwrap();

    // Uninterrupted reference run, in-process.
    let straight = dir.join("straight");
    assert_eq!(run_to_end(cfg.clone(), &data, &straight, false), Outcome::Finished);

    // The same run as a process, killed at a random moment after its first checkpoint.
    let killed = dir.join("killed");
    let bin = env!("CARGO_BIN_EXE_memtrain");
    let args = |resume: bool| {
        let mut a = vec!["train".to_string(), "--data".into(), data.display().to_string(), "--out".into(), killed.display().to_string(), "--config".into(), cfg_path.display().to_string(), "--device".into(), "cpu".into()];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    // A CPU run must not touch wgpu at all, resume included (Burn loads an optimizer record onto
    // its default device, wgpu unless told otherwise): here wgpu's default adapter is one that
    // does not exist, so opening it would fail the run.
    let no_gpu = |c: &mut Command| {
        c.env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(7)").env_remove("BURN_DEVICE");
    };
    let mut child = Command::new(bin);
    no_gpu(&mut child);
    let mut child = child.args(args(false)).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !killed.join("checkpoints/step-000001/state.ron").exists() {
        assert!(Instant::now() < deadline, "no checkpoint within 5 minutes");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A pseudo-random delay from the clock: somewhere inside a later step (or a save).
    let jitter = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64) % 1500;
    std::thread::sleep(Duration::from_millis(jitter));
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed: make it longer");
    let _ = child.kill();
    let _ = child.wait();
    let before = read_records(&killed.join("metrics.jsonl")).map(|r| r.len()).unwrap_or(0);
    eprintln!("killed after {jitter} ms with {before} step records written");

    let mut resume = Command::new(bin);
    no_gpu(&mut resume);
    let status = resume.args(args(true)).status().unwrap();
    assert!(status.success(), "resume failed: {status}");

    let a = read_records(&straight.join("metrics.jsonl")).unwrap();
    let b = read_records(&killed.join("metrics.jsonl")).unwrap();
    assert_eq!(a.len(), cfg.total_steps());
    assert_eq!(b.len(), a.len(), "the resumed history has one record per step");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.step, &x.phase, x.loss, x.reward_end_to_end, x.recall, x.dropped_groups, &x.skipped), (y.step, &y.phase, y.loss, y.reward_end_to_end, y.recall, y.dropped_groups, &y.skipped), "step {} differs", x.step);
    }
    assert!(a.iter().any(|r| r.phase.as_deref() == Some("grpo") && r.skipped.is_none()), "no GRPO step updated the model, so the test would not cover it: {a:?}");
    assert!(a.iter().filter(|r| r.phase.as_deref() == Some("sft")).all(|r| r.seconds_generation > 0.0), "every SFT step rolled the student out");
    let weights = |run: &Path| std::fs::read(run.join("final/model.safetensors")).unwrap();
    assert!(weights(&straight) == weights(&killed), "final weights differ after resume");
    assert_ne!(weights(&straight), std::fs::read(straight.join("initial/model.safetensors")).unwrap(), "training changed nothing");
    assert!(std::fs::read_dir(straight.join("checkpoints")).unwrap().count() <= 2, "old checkpoints are pruned");
}

/// `trainable_layers`: every GRPO update of the run starts above the frozen layer, from the
/// stream its rollouts kept (`memtrain::model::stem`), and its record says so.
#[test]
fn grpo_with_a_frozen_layer_starts_its_updates_from_the_rollouts_stream() {
    let dir = temp("stem");
    let data = learnable_exercises(&dir);
    let mut cfg = small_config();
    cfg.trainable_layers = Some(1);
    // With the tied embedding frozen too, one layer learns too little for any group's rewards to
    // differ: an untied head learns with it, and SFT runs longer.
    if let ModelSource::Scratch { config, .. } = &mut cfg.model {
        config.tie_word_embeddings = false;
    }
    cfg.sft.steps = 150;
    let out = dir.join("run");
    assert_eq!(run_to_end(cfg, &data, &out, false), Outcome::Finished);
    let records = read_records(&out.join("metrics.jsonl")).unwrap();
    let updates: Vec<_> = records.iter().filter(|r| r.phase.as_deref() == Some("grpo") && r.skipped.is_none()).collect();
    assert!(!updates.is_empty(), "no GRPO step updated the model, so the test would not cover it: {records:?}");
    eprintln!("{} of 3 GRPO steps updated", updates.len());
    assert!(updates.iter().all(|r| r.update_from_layer == Some(1) && r.loss.is_some_and(f32::is_finite)), "{updates:?}");
    assert!(records.iter().filter(|r| r.phase.as_deref() == Some("sft")).all(|r| r.update_from_layer.is_none()), "SFT trains on the teacher's tokens, not on rollouts");
}

#[test]
fn impossible_configs_are_refused_before_loading_anything() {
    let dir = temp("invalid");
    let mut cfg = small_config();
    cfg.grpo.group = 1;
    cfg.optim.lr = -1.0;
    cfg.model = ModelSource::Path(dir.join("missing.gguf"));
    // The data folder does not exist either: the config is checked first.
    let e = Trainer::open(cfg, &dir.join("no-data"), &dir.join("run"), false).err().expect("must fail").to_string();
    assert!(e.contains("grpo.group = 1") && e.contains("optim.lr = -1") && e.contains("missing.gguf"), "{e}");
    assert!(!dir.join("run").exists(), "nothing is written for a refused config");
}

#[test]
fn an_existing_run_is_never_overwritten_and_a_missing_one_cannot_resume() {
    let dir = temp("exists");
    let data = exercises(&dir, 3);
    let mut cfg = small_config();
    cfg.sft.steps = 1;
    cfg.grpo_steps = 0;
    let out = dir.join("run");
    run_to_end(cfg.clone(), &data, &out, false);
    let e = Trainer::open(cfg.clone(), &data, &out, false).err().expect("must refuse").to_string();
    assert!(e.contains("already holds a run") && e.contains("--resume"), "{e}");
    let e = Trainer::open(cfg, &data, &dir.join("nothing"), true).err().expect("must refuse").to_string();
    assert!(e.contains("no run to resume"), "{e}");
}

#[test]
fn lora_trains_only_the_adapters_merges_them_on_export_and_resumes_exactly() {
    use memtrain::checkpoint::safetensors::SafetensorsWeights;
    use memtrain::model::WeightSource;
    let dir = temp("lora");
    let data = learnable_exercises(&dir);
    let mut cfg = small_config();
    cfg.grpo_steps = 0;
    cfg.sft.steps = 20;
    cfg.lora = Some(memtrain::train::config::LoraConfig { rank: 4, alpha: 8.0, targets: ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map(String::from).to_vec() });
    let straight = dir.join("straight");
    run_to_end(cfg.clone(), &data, &straight, false);
    let records = read_records(&straight.join("metrics.jsonl")).unwrap();
    let (first, last) = (records[0].loss.unwrap(), records.last().unwrap().loss.unwrap());
    eprintln!("LoRA SFT loss {first:.3} → {last:.3}");
    // Slow on a random frozen base (its LM head is near zero), but clearly moving.
    assert!(last < first - 0.2, "LoRA did not learn: {first} → {last}");

    let tensor = |run: &Path, part: &str, name: &str| SafetensorsWeights::open_dir(&run.join(part)).unwrap().take(name).unwrap().unwrap().0;
    for frozen in ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.self_attn.k_proj.weight"] {
        assert!(tensor(&straight, "initial", frozen) == tensor(&straight, "final", frozen), "{frozen} is not a LoRA target but changed");
    }
    let q = "model.layers.0.self_attn.q_proj.weight";
    assert!(tensor(&straight, "initial", q) != tensor(&straight, "final", q), "the merged adapter did not reach the exported {q}");

    // Half the steps, then a resume to the full count: the same weights as the straight run.
    let halves = dir.join("halves");
    let mut half = cfg.clone();
    half.sft.steps = 10;
    run_to_end(half, &data, &halves, false);
    run_to_end(cfg, &data, &halves, true);
    assert!(tensor(&straight, "final", q) == tensor(&halves, "final", q), "LoRA adapters were not restored exactly on resume");
}

/// `precision: MixedF16` through the whole loop on wgpu (lavapipe in CI): the SFT losses follow
/// the f32 run's on the same device step by step (f16 rounding only), a GRPO step applies, and
/// the run's losses fall (by over a nat in 12 steps).
#[test]
fn a_mixed_precision_run_on_wgpu_follows_the_f32_run() {
    use memtrain::device::DeviceChoice;
    use memtrain::model::precision::Precision;
    if common::wgpu_device().is_none() {
        return;
    }
    let dir = temp("mixed");
    let data = learnable_exercises(&dir);
    let losses = |precision: Precision| {
        let mut cfg = small_config();
        cfg.device = DeviceChoice::Wgpu;
        cfg.precision = precision;
        cfg.sft.steps = 12;
        // Three GRPO steps: after 12 SFT steps the tiny model's rewards are mostly equal, so a
        // single step may be skipped for equal rewards (the draws depend on the sampler).
        cfg.grpo_steps = 3;
        cfg.checkpoint.every = 100;
        let out = dir.join(format!("{precision:?}"));
        assert_eq!(run_to_end(cfg, &data, &out, false), Outcome::Finished);
        // The final checkpoint's state carries the loss scale exactly when the run was mixed:
        // the trainer took the precision from the config (f32 losses alone cannot show it).
        let state = std::fs::read_to_string(out.join("checkpoints/step-000015/state.ron")).unwrap();
        assert_eq!(state.contains("factor:Some") || state.contains("factor: Some"), precision == Precision::MixedF16, "{state}");
        read_records(&out.join("metrics.jsonl")).unwrap()
    };
    let (full, mixed) = (losses(Precision::F32), losses(Precision::MixedF16));
    let sft = |r: &[memtrain::train::metrics::StepRecord]| r.iter().filter(|r| r.phase.as_deref() == Some("sft")).map(|r| r.loss.expect("no SFT step skipped")).collect::<Vec<f32>>();
    let (f, m) = (sft(&full), sft(&mixed));
    eprintln!("SFT losses f32 {f:?}\nmixed {m:?}");
    assert_eq!(f.len(), 12);
    assert!(f.iter().zip(&m).all(|(a, b)| (a - b).abs() < 0.02 * a.abs()), "mixed SFT losses left the f32 run's");
    assert!(m[11] < m[0] - 1.0, "the mixed run did not learn: {} → {}", m[0], m[11]);
    let grpo: Vec<_> = mixed.iter().filter(|r| r.phase.as_deref() == Some("grpo")).map(|r| r.skipped.clone()).collect();
    eprintln!("mixed GRPO steps (skipped?): {grpo:?}");
    assert_eq!(grpo.len(), 3);
    assert!(grpo.iter().any(Option::is_none), "no mixed GRPO step applied: {grpo:?}");
}
